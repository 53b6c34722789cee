from dataclasses import replace

import pytest
import torch

from nsynth_live.data.nsynth import NSynthDataset
from nsynth_live.models.checkpoint import CheckpointError
from nsynth_live.models.sing_configs import SingConfig
from nsynth_live.train.sing import SingTrainConfig, SingTrainer, pitch_completion_split
from tests.nsynth_fixtures import write_tiny_dataset

TINY = SingConfig(name="tiny", conv_channels=32, lstm_hidden=16, embedding_dims=16, num_instruments=2)
RECIPE = SingTrainConfig(autoencoder_epochs=2, sequence_epochs=1, end_to_end_epochs=1, batch_size=8, threads=1)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_nsynth")
    write_tiny_dataset(root)
    return root


def test_pitch_completion_split(dataset_dir):
    ds = NSynthDataset(dataset_dir)
    train, heldout = pitch_completion_split(ds, holdout_fraction=0.1, seed=0)
    assert sorted(train + heldout) == list(range(len(ds)))
    for instrument in ds.instruments():
        held = {ds.notes[i].pitch for i in heldout if ds.notes[i].instrument_str == instrument}
        trained = {ds.notes[i].pitch for i in train if ds.notes[i].instrument_str == instrument}
        assert len(held) == 1 and not held & trained  # 10% of 10 pitches, never also in training
        # every velocity of a held-out pitch is held out
        assert sum(1 for i in heldout if ds.notes[i].instrument_str == instrument) == 2
    assert pitch_completion_split(ds, holdout_fraction=0.1, seed=0) == (train, heldout)


def test_recipe_trains_all_stages_and_resumes(dataset_dir, tmp_path):
    torch.manual_seed(0)
    trainer = SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY, train_config=RECIPE)
    trainer.run()
    stages = [h["stage"] for h in trainer.history]
    assert stages == ["autoencoder", "autoencoder", "sequence", "end_to_end"]
    assert trainer.history[1]["train_loss"] < trainer.history[0]["train_loss"]
    # A new trainer on the same run folder resumes: nothing left to do, same weights.
    again = SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY, train_config=RECIPE)
    assert again.stage == "done" and again.history == trainer.history
    for a, b in zip(trainer.sing.state_dict().values(), again.sing.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="another model or training config"):
        SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY,
                    train_config=replace(RECIPE, learning_rate=1e-2))
    with pytest.raises(CheckpointError, match="stage autoencoder finished after 2 epochs, 3 asked"):
        SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY,
                    train_config=replace(RECIPE, autoencoder_epochs=3))
    # A finished run can be given more end-to-end epochs: it goes back to stage 3 for them.
    longer = SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY,
                         train_config=replace(RECIPE, end_to_end_epochs=2))
    assert (longer.stage, longer.epoch) == ("end_to_end", 1)
    longer.run()
    assert [h["stage"] for h in longer.history][-2:] == ["end_to_end", "end_to_end"] and longer.stage == "done"


def test_interrupted_run_continues_where_it_stopped(dataset_dir, tmp_path):
    first = SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY, train_config=RECIPE)
    first.run(max_epochs=1)  # stops after one checkpointed epoch, as a kill after it would
    resumed = SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY, train_config=RECIPE)
    assert (resumed.stage, resumed.epoch) == ("autoencoder", 1)
    assert resumed.history == first.history
    resumed.run()
    assert [h["stage"] for h in resumed.history] == ["autoencoder", "autoencoder", "sequence", "end_to_end"]


def test_instrument_count_must_match(dataset_dir, tmp_path):
    with pytest.raises(ValueError, match="2 instruments"):
        SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=replace(TINY, num_instruments=5),
                    train_config=RECIPE)


def test_spectral_n_ffts_is_checked_and_a_run_from_before_it_resumes(dataset_dir, tmp_path):
    with pytest.raises(ValueError, match="spectral_n_ffts"):
        SingTrainConfig(spectral_n_ffts=())
    with pytest.raises(ValueError, match="spectral_n_ffts"):
        SingTrainConfig(spectral_n_ffts=(1024, 2))
    assert SingTrainConfig(spectral_n_ffts=[1024, 4096]).spectral_n_ffts == (1024, 4096)
    # a run folder written before the option existed trained with SING's 1024-sample window alone
    first = SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY, train_config=RECIPE)
    first.run(max_epochs=1)
    state = torch.load(first.state_path, weights_only=False)
    del state["train_config"]["spectral_n_ffts"]
    torch.save(state, first.state_path)
    resumed = SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY, train_config=RECIPE)
    assert (resumed.stage, resumed.epoch) == ("autoencoder", 1)
    with pytest.raises(CheckpointError, match="another model or training config"):
        SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY,
                    train_config=replace(RECIPE, spectral_n_ffts=(1024, 4096)))


def test_training_with_a_long_window_runs(dataset_dir, tmp_path):
    trainer = SingTrainer(dataset_dir=dataset_dir, run_dir=tmp_path, model_config=TINY,
                          train_config=replace(RECIPE, spectral_n_ffts=(1024, 4096)))
    trainer.run(max_epochs=2)
    losses = [h["train_loss"] for h in trainer.history]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_recipe_window_lengths_option():
    from nsynth_live.train.sing_recipe import RECIPE_SPECTRAL_N_FFTS, parse_args

    assert parse_args([]).spectral_n_ffts == RECIPE_SPECTRAL_N_FFTS == (1024, 4096, 8192)
    assert parse_args(["--spectral-n-ffts", "1024"]).spectral_n_ffts == (1024,)
    for bad in ("1024,x", "1024,2"):
        with pytest.raises(SystemExit):
            parse_args(["--spectral-n-ffts", bad])
