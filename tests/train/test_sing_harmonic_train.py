"""Model v3's trainer: it learns, resumes to the same weights, refuses a foreign run folder."""

from dataclasses import replace

import pytest
import torch

from nsynth_live.models.checkpoint import CheckpointError
from nsynth_live.models.sing_configs import SingHarmonicConfig
from nsynth_live.train.sing_harmonic import HarmonicTrainConfig, HarmonicTrainer, ddsp_spectral_loss
from tests.nsynth_fixtures import write_tiny_dataset

TINY = SingHarmonicConfig(name="tiny-v3", sample_rate=16000, hop_length_samples=128, note_samples=64000,
                          lstm_hidden=16, lstm_layers=1, num_instruments=2, n_harmonics=8, n_noise_bands=4,
                          noise_table_samples=4096)
RECIPE = HarmonicTrainConfig(steps=40, batch_size=8, crop_frames=16, spectral_n_ffts=(1024, 256, 64),
                             save_every_steps=10, threads=1, learning_rate=1e-2)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_nsynth")
    write_tiny_dataset(root)
    return root


def test_ddsp_loss_is_zero_for_equal_signals_and_grows_with_the_difference():
    torch.manual_seed(0)
    a = torch.randn(2, 4096)
    assert float(ddsp_spectral_loss(a, a)) == 0.0
    near, far = ddsp_spectral_loss(a, 1.1 * a), ddsp_spectral_loss(a, 2.0 * a)
    assert 0 < float(near) < float(far)
    with pytest.raises(ValueError, match="one shape"):
        ddsp_spectral_loss(a, a[:, :2048])
    with pytest.raises(ValueError, match="shorter"):
        ddsp_spectral_loss(a[:, :1000], a[:, :1000])


def test_trains_and_resumes_to_the_same_weights(dataset_dir, tmp_path):
    straight = HarmonicTrainer(dataset_dir=dataset_dir, run_dir=tmp_path / "a", model_config=TINY, train_config=RECIPE)
    straight.run()
    losses = [h["loss"] for h in straight.history]
    assert [h["step"] for h in straight.history] == [10, 20, 30, 40]
    assert losses[-1] < 0.8 * losses[0]  # it learns the tones
    interrupted = HarmonicTrainer(dataset_dir=dataset_dir, run_dir=tmp_path / "b", model_config=TINY,
                                  train_config=RECIPE)
    interrupted.run(max_steps_this_call=13)
    assert interrupted.step == 13
    resumed = HarmonicTrainer(dataset_dir=dataset_dir, run_dir=tmp_path / "b", model_config=TINY, train_config=RECIPE)
    assert resumed.step == 13
    resumed.run()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(CheckpointError, match="other settings.*batch_size"):
        HarmonicTrainer(dataset_dir=dataset_dir, run_dir=tmp_path / "b", model_config=TINY,
                        train_config=replace(RECIPE, batch_size=4))
    longer = HarmonicTrainer(dataset_dir=dataset_dir, run_dir=tmp_path / "b", model_config=TINY,
                             train_config=replace(RECIPE, steps=50, threads=2))  # more steps: trains on
    assert longer.step == 40
    with pytest.raises(CheckpointError, match="another model config"):
        HarmonicTrainer(dataset_dir=dataset_dir, run_dir=tmp_path / "b", model_config=replace(TINY, lstm_hidden=8),
                        train_config=RECIPE)


def test_refuses_a_dataset_at_another_sample_rate(dataset_dir, tmp_path):
    with pytest.raises(ValueError, match="--sample-rate 48000"):
        HarmonicTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=replace(TINY, sample_rate=48000),
                        train_config=RECIPE)
