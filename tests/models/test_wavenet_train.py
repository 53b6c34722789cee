import json
import math

import numpy as np
import pytest
import torch

from nsynth_live.data.nsynth import NSynthDataset
from nsynth_live.models.wavenet_ae import WaveNetAutoencoder
from nsynth_live.train.wavenet import (
    LOG_FILE, MODEL_FILE, TRAIN_STATE_FILE, WaveNetTrainConfig, ema_decay_at, evaluate_reconstructions,
    holdout_split, linear_prediction_losses, load_trained_model, loss_by_past_length, select_notes,
    teacher_forced_losses, train_wavenet, update_ema_,
)
from tests.nsynth_fixtures import harmonic_note, write_tiny_dataset


@pytest.fixture
def dataset_root(tmp_path):
    root = tmp_path / "nsynth"
    write_tiny_dataset(root, pitches=(48, 55, 60, 67), velocities=(100,))
    return root


def _config(**overrides):
    values = dict(model="tiny", batch_size=2, crop_samples=256, max_steps=6, checkpoint_every_steps=3,
                  log_every_steps=1, learning_rate_scale=10.0, holdout_fraction=0.2, seed=3)
    values.update(overrides)
    return WaveNetTrainConfig(**values)


def test_magenta_learning_rate_schedule():
    config = WaveNetTrainConfig()
    assert config.learning_rate(0) == 2e-4
    assert config.learning_rate(89_999) == 2e-4
    assert config.learning_rate(90_000) == pytest.approx(4e-4 / 3)
    assert config.learning_rate(150_000) == 4e-5
    assert config.learning_rate(10**6) == 2e-6
    assert WaveNetTrainConfig(learning_rate_scale=5).learning_rate(0) == pytest.approx(1e-3)
    assert config.crop_samples == 6144 and config.adam_epsilon == 1e-8


def test_train_config_validation():
    with pytest.raises(ValueError, match="multiple of the hop"):
        WaveNetTrainConfig(crop_samples=6000)
    with pytest.raises(ValueError, match="starting at 0"):
        WaveNetTrainConfig(learning_rate_schedule=((10, 1e-3),))
    with pytest.raises(ValueError, match="model must be one of"):
        WaveNetTrainConfig(model="huge")
    config = _config()
    assert WaveNetTrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_holdout_split_is_disjoint_and_seeded():
    names = [f"n{i}" for i in range(50)]
    train, held = holdout_split(names, holdout_fraction=0.1, seed=1)
    assert len(held) == 5 and not set(train) & set(held) and sorted(train + held) == sorted(names)
    assert holdout_split(names, holdout_fraction=0.1, seed=1) == (train, held)


def test_training_lowers_the_loss_and_resumes_exactly(dataset_root, tmp_path):
    straight = train_wavenet(dataset_root, tmp_path / "a", config=_config(), progress=False)
    assert straight.step == 6
    losses = [loss for _, loss in straight.losses]
    assert losses[-1] < losses[0]
    assert (tmp_path / "a" / MODEL_FILE).exists() and (tmp_path / "a" / TRAIN_STATE_FILE).exists()
    assert len((tmp_path / "a" / LOG_FILE).read_text().splitlines()) == 6

    first = train_wavenet(dataset_root, tmp_path / "b", config=_config(max_steps=3), progress=False)
    assert first.step == 3
    resumed = train_wavenet(dataset_root, tmp_path / "b", config=_config(), progress=False)
    assert resumed.step == 6
    a = WaveNetAutoencoder.load(tmp_path / "a" / MODEL_FILE).state_dict()
    b = WaveNetAutoencoder.load(tmp_path / "b" / MODEL_FILE).state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)

    with pytest.raises(ValueError, match=r"another training config \(batch_size: saved 2, now 3\)"):
        train_wavenet(dataset_root, tmp_path / "b", config=_config(batch_size=3), progress=False)
    # the learning rate and the checkpoint/log cadence may change on resume (the rate is logged per
    # step); the data may not
    lowered = train_wavenet(dataset_root, tmp_path / "b",
                            config=_config(max_steps=7, learning_rate_scale=2.0, checkpoint_every_steps=5),
                            progress=False)
    assert lowered.step == 7
    logged = [json.loads(line) for line in (tmp_path / "b" / LOG_FILE).read_text().splitlines()]
    assert logged[-1]["step"] == 7 and logged[-1]["learning_rate"] == pytest.approx(4e-4)
    assert logged[-2]["learning_rate"] == pytest.approx(2e-3)
    with pytest.raises(ValueError, match="another training config"):
        train_wavenet(dataset_root, tmp_path / "b", config=_config(max_steps=8, instruments=("organ_electronic_001",)),
                      progress=False)


def test_instrument_filter_trains_on_those_instruments_only(dataset_root, tmp_path):
    dataset = NSynthDataset(dataset_root)
    organ = "organ_electronic_001"
    assert organ in dataset.instruments() and len(dataset.instruments()) == 2
    picked = select_notes(dataset, (organ,))
    assert picked and all(dataset.note(n).instrument_str == organ for n in picked)
    assert len(picked) == len(dataset) // 2
    assert select_notes(dataset) == [n.note_str for n in dataset]
    with pytest.raises(ValueError, match="not in .* it has"):
        select_notes(dataset, ("brass_acoustic_009",))

    config = _config(instruments=(organ,), max_steps=2)
    train_wavenet(dataset_root, tmp_path / "r", config=config, progress=False)
    from nsynth_live.models.checkpoint import load_checkpoint

    extra = load_checkpoint(tmp_path / "r" / TRAIN_STATE_FILE, model="wavenet_autoencoder")["extra"]
    assert extra["held_out_notes"] and all(n.startswith(organ) for n in extra["held_out_notes"])
    assert WaveNetTrainConfig.from_dict(extra["train_config"]).instruments == (organ,)


def test_bfloat16_autocast_training_runs_and_lowers_the_loss(dataset_root, tmp_path):
    with pytest.raises(ValueError, match="precision must be one of"):
        _config(precision="float16x")
    result = train_wavenet(dataset_root, tmp_path / "r", config=_config(precision="bfloat16", max_steps=8),
                           progress=False)
    losses = [loss for _, loss in result.losses]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    # weights stay float32: the checkpoint is the same format as a float32 run's
    model = WaveNetAutoencoder.load(tmp_path / "r" / MODEL_FILE)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_ema_decay_warms_up_like_tensorflow_and_averages_in_place():
    # tf.train.ExponentialMovingAverage(decay, num_updates): min(decay, (1 + n) / (10 + n))
    assert ema_decay_at(0.9999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.9999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.9999, 10**6) == 0.9999
    assert ema_decay_at(0.0, 50) == 0.0
    with pytest.raises(ValueError, match="ema_decay must be in"):
        _config(ema_decay=1.0)
    average, model = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = average.weight.detach().clone()
    update_ema_(average, model, 0.75)
    torch.testing.assert_close(average.weight, 0.75 * before + 0.25 * model.weight, rtol=0, atol=1e-7)


def test_model_file_holds_the_weight_average_and_raw_weights_stay_loadable(dataset_root, tmp_path):
    train_wavenet(dataset_root, tmp_path / "plain", config=_config(ema_decay=0.0), progress=False)
    raw = load_trained_model(tmp_path / "plain", weights="raw").state_dict()
    for name, value in load_trained_model(tmp_path / "plain").state_dict().items():
        torch.testing.assert_close(value, raw[name], rtol=0, atol=0, msg=name)  # decay 0: average == raw

    train_wavenet(dataset_root, tmp_path / "ema", config=_config(), progress=False)
    raw = load_trained_model(tmp_path / "ema", weights="raw").state_dict()
    averaged = load_trained_model(tmp_path / "ema").state_dict()
    assert any(not torch.equal(averaged[name], raw[name]) for name in raw)
    with pytest.raises(ValueError, match="weights must be one of"):
        load_trained_model(tmp_path / "ema", weights="best")

    # a run saved before the average existed resumes, starting the average from its weights
    from nsynth_live.models.checkpoint import load_checkpoint, save_checkpoint

    train_wavenet(dataset_root, tmp_path / "old", config=_config(max_steps=3), progress=False)
    state_path = tmp_path / "old" / TRAIN_STATE_FILE
    payload = load_checkpoint(state_path, model="wavenet_autoencoder")
    del payload["extra"]["ema_state_dict"]
    save_checkpoint(state_path, model="wavenet_autoencoder", config=payload["config"],
                    state_dict=payload["state_dict"], sample_rate=payload["sample_rate"],
                    hop_length_samples=payload["hop_length_samples"], extra=payload["extra"])
    assert train_wavenet(dataset_root, tmp_path / "old", config=_config(), progress=False).step == 6
    raw = load_trained_model(tmp_path / "old", weights="raw").state_dict()
    averaged = load_trained_model(tmp_path / "old").state_dict()
    assert any(not torch.equal(averaged[name], raw[name]) for name in raw)


def test_wall_clock_limit_stops_after_checkpointing(dataset_root, tmp_path):
    result = train_wavenet(dataset_root, tmp_path / "r", config=_config(max_steps=1000), max_wall_seconds=0.0,
                           progress=False)
    assert result.stopped_by == "max_wall_seconds" and result.step == 0
    assert (tmp_path / "r" / TRAIN_STATE_FILE).exists()


def test_evaluate_reconstructions_reports_measures(dataset_root):
    dataset = NSynthDataset(dataset_root)
    torch.manual_seed(0)
    model = WaveNetAutoencoder.from_name("tiny")
    notes = [n.note_str for n in dataset][:2]
    results = evaluate_reconstructions(model, dataset, notes, duration_seconds=0.25, progress=False)
    assert [r["note_str"] for r in results] == notes
    for r in results:
        assert r["audio"].shape == (4000,)
        assert abs(r["original_pitch_error_cents"]) < 5  # the fixture notes are in tune
        if np.isfinite(r["f0_reconstruction_hz"]):  # errors are against the original's f0 and the MIDI pitch
            assert r["pitch_error_cents"] == pytest.approx(1200 * np.log2(r["f0_reconstruction_hz"] / r["f0_original_hz"]))
            assert np.isfinite(r["pitch_error_vs_midi_cents"])
        else:
            assert np.isnan(r["pitch_error_cents"]) and np.isnan(r["pitch_error_vs_midi_cents"])
        assert r["spectral_distance"] > 0 and r["spectral_distance_silence"] > 0
        assert r["harmonic_energy_ratio_original"] > 0.9  # the fixture notes are harmonic tones
        assert 0.0 <= r["harmonic_energy_ratio"] <= 1.0 and r["harmonic_energy_ratio_noise"] < 0.5


def test_teacher_forced_losses_break_one_decoder_input_at_a_time():
    torch.manual_seed(0)
    model = WaveNetAutoencoder.from_name("tiny").train()
    hop = model.config.hop_length_samples
    note = torch.from_numpy(harmonic_note(57, 100, 0.5, samples=4 * hop)[None])
    other = torch.from_numpy(harmonic_note(64, 100, 0.5, samples=4 * hop)[None])
    losses = teacher_forced_losses(model, torch.cat([note, other]))
    assert set(losses) == {"true", "true_per_note", "past_zeroed", "past_shifted", "other_notes_embeddings"}
    assert len(losses["true_per_note"]) == 2
    assert np.mean(losses["true_per_note"]) == pytest.approx(losses["true"], rel=1e-5)
    assert model.training  # restored
    with torch.inference_mode():
        assert losses["true"] == pytest.approx(float(model.eval().loss(torch.cat([note, other]))), abs=1e-5)
    assert losses["other_notes_embeddings"] != pytest.approx(losses["true"], abs=1e-6)
    # two copies of one note: swapping their embeddings changes nothing
    same = teacher_forced_losses(model, torch.cat([note, note]))
    assert same["other_notes_embeddings"] == pytest.approx(same["true"], abs=1e-6)
    with pytest.raises(ValueError, match="batch >= 2"):
        teacher_forced_losses(model, note)


def test_loss_by_past_length_bins_windows_of_truncated_past():
    torch.manual_seed(0)
    model = WaveNetAutoencoder.from_name("tiny").eval()
    hop, field = model.config.hop_length_samples, model.config.decoder_receptive_field_samples
    window = (-(-field // hop) + 1) * hop
    audio = torch.from_numpy(np.stack([harmonic_note(p, 100, 0.5, samples=8 * hop) for p in (57, 64)]))
    result = loss_by_past_length(model, audio)
    edges = result["edges_samples"]
    assert edges[0] == 0 and edges[-2:] == [field, window] and edges == sorted(set(edges))
    per_note = np.array(result["per_note"])
    assert per_note.shape == (2, len(edges) - 1)
    np.testing.assert_allclose(result["mean"], per_note.mean(axis=0), rtol=1e-9)
    # independent computation from one full forward over each note and from hop-long crops
    with torch.inference_mode():
        x_scaled, targets = model.quantize(audio)
        encoding = model.encoder(x_scaled)
        full = torch.nn.functional.cross_entropy(model.decoder(x_scaled, encoding), targets, reduction="none")
        # a past of one sample: a one-hop crop starting one sample before the target, as in training
        one_back = [torch.nn.functional.cross_entropy(
            model.decoder(x_scaled[:, s: s + hop], encoding[:, s // hop: s // hop + 1]), targets[:, s: s + hop],
            reduction="none")[:, 1] for s in range(0, 8 * hop - window + 1, hop)]
    starts = range(0, 8 * hop - window + 1, hop)
    # past of at least one receptive field: the window's edge is out of sight
    expected_full = np.mean([full[:, s + field: s + window].numpy().mean(axis=1) for s in starts], axis=0)
    np.testing.assert_allclose(per_note[:, -1], expected_full, rtol=1e-4)
    assert edges[1:3] == [1, 2]
    np.testing.assert_allclose(per_note[:, 1], torch.stack(one_back).mean(dim=0).numpy(), rtol=1e-4)
    assert model.training is False
    with pytest.raises(ValueError, match="at least"):
        loss_by_past_length(model, audio[:, : window - hop])


def test_linear_prediction_losses_gain_from_the_period_only_where_the_note_repeats(rng):
    from nsynth_live.functional.mu_law import mu_law_decode, mu_law_encode

    # a low note whose waveform repeats every 173 samples (any shape: a random cycle) over a little noise
    cycle = rng.standard_normal(173)
    periodic = 0.3 * np.tile(cycle / np.abs(cycle).max(), 48)[:8192] + 0.002 * rng.standard_normal(8192)
    lp = linear_prediction_losses(periodic, period_samples=173.0)
    assert lp["period_lags"] == [171, 172, 173, 174, 175]
    assert lp["short_term_and_period"] < lp["short_term"] - 1.0
    # a smooth, unpitched signal (AR(1) noise): nothing to gain one "period" back
    smooth = np.zeros(8192)
    innovations = 0.02 * rng.standard_normal(8192)
    for t in range(1, 8192):
        smooth[t] = 0.95 * smooth[t - 1] + innovations[t]
    lp = linear_prediction_losses(smooth, period_samples=173.0)
    assert 0 <= lp["short_term"] - lp["short_term_and_period"] < 0.01
    assert lp["short_term"] < 4.0

    # white noise: no lag predicts it, so both cost a zero-mean Gaussian's probability of each mu-law
    # bin; the bins computed here independently, from where mu_law_encode changes code on a fine grid
    white = np.clip(0.1 * rng.standard_normal(20000), -1, 1)
    lp = linear_prediction_losses(white, period_samples=50.0, short_term_order=4)
    assert lp["period_lags"] == [48, 49, 50, 51, 52]
    grid = np.linspace(-1, 1, 4_000_001)
    codes = mu_law_encode(grid)
    changes = grid[1:][np.diff(codes) != 0]  # first grid point of each code after the lowest
    edges = np.concatenate([[-np.inf], changes, [np.inf]])
    values = mu_law_decode(mu_law_encode(white)).astype(np.float64)
    scale = values.std()
    target = mu_law_encode(white)[52:] + 128  # scored from the largest lag on (period lags 48-52)
    cdf = np.vectorize(lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2))))
    expected = -np.mean(np.log(cdf(edges[target + 1] / scale) - cdf(edges[target] / scale)))
    assert lp["short_term"] == pytest.approx(expected, abs=0.01)
    assert lp["short_term_and_period"] == pytest.approx(expected, abs=0.01)

    with pytest.raises(ValueError, match="period_samples"):
        linear_prediction_losses(white, period_samples=1.5)
    with pytest.raises(ValueError, match="period_taps"):
        linear_prediction_losses(white, period_samples=50.0, period_taps=4)
    with pytest.raises(ValueError, match="too short"):
        linear_prediction_losses(white[:300], period_samples=250.0)
    with pytest.raises(ValueError, match="shape"):
        linear_prediction_losses(white.reshape(2, -1), period_samples=50.0)


def test_train_cli_trains_resumes_and_evaluates(dataset_root, tmp_path, capsys):
    import runpy
    from pathlib import Path

    main = runpy.run_path(str(Path(__file__).resolve().parents[2] / "export" / "train_wavenet.py"))["main"]
    args = [str(dataset_root), "--run-dir", str(tmp_path / "run"), "--model", "tiny", "--batch-size", "2",
            "--crop-samples", "256", "--max-steps", "2", "--holdout-fraction", "0.5", "--evaluate", "2",
            "--evaluate-seconds", "0.25", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trained to step 2" in out and "median |pitch error|" in out
    summary = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert summary["format_version"] == 2 and len(summary["notes"]) == 2
    assert summary["step"] == 2 and summary["weights"] == "ema" and summary["temperature"] == 1.0
    losses = summary["teacher_forced_loss_nats"]
    assert "true_per_note" not in losses  # stored once, per note
    assert np.mean([n["teacher_forced_loss_nats"] for n in summary["notes"]]) == pytest.approx(losses["true"], rel=1e-5)
    for note in summary["notes"]:
        fitted = note["linear_prediction_nats"]
        assert 0 < fitted["short_term_and_period"] <= fitted["short_term"] + 1e-9
    assert "linear predictors fitted to each note itself" in out
    assert losses["past_zeroed"] > 0 and "teacher-forced loss on these notes" in out
    by_past = summary["teacher_forced_loss_by_past_samples"]
    assert len(by_past["per_note"]) == 2 and len(by_past["mean"]) == len(by_past["edges_samples"]) - 1
    assert "by the samples of past the decoder sees" in out
    assert 0 <= summary["harmonic_at_least_half"] <= 2 and summary["mean_harmonic_energy_ratio_original"] > 0.9
    assert len(list((tmp_path / "run" / "reconstructions").glob("*.wav"))) == 2
    assert main(args[:-5] + ["--max-steps", "3", "--evaluate", "0", "--no-progress"]) == 0
    assert "trained to step 3" in capsys.readouterr().out
    assert main([str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r2"), "--no-progress"]) == 2


def test_sigterm_checkpoints_the_run_and_the_same_command_resumes(dataset_root, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from nsynth_live.models.checkpoint import load_checkpoint

    repo = Path(__file__).resolve().parents[2]
    run_dir = tmp_path / "run"
    command = [sys.executable, str(repo / "export" / "train_wavenet.py"), str(dataset_root), "--run-dir", str(run_dir),
               "--model", "tiny", "--batch-size", "2", "--crop-samples", "256", "--max-steps", "1000000",
               "--checkpoint-every", "1000000", "--holdout-fraction", "0.25", "--evaluate", "0", "--device", "cpu",
               "--threads", "1", "--no-progress"]
    process = subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((run_dir / LOG_FILE).exists() and (run_dir / LOG_FILE).read_text().count("\n") >= 2):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "training logged nothing in 120 s"
            time.sleep(0.05)
        assert not (run_dir / TRAIN_STATE_FILE).exists()  # no periodic checkpoint yet: the next one is SIGTERM's
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "the same command resumes it" in err
    saved = load_checkpoint(run_dir / TRAIN_STATE_FILE, model="wavenet_autoencoder")["extra"]["step"]
    logged = [json.loads(line)["step"] for line in (run_dir / LOG_FILE).read_text().splitlines()]
    assert saved >= logged[-1] >= 20  # every step it logged is in the checkpoint

    resumed = subprocess.run([*command[:command.index("--max-steps") + 1], str(saved + 3),
                              *command[command.index("--max-steps") + 2:]],
                             cwd=repo, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"trained to step {saved + 3}" in resumed.stdout


def test_log_spectral_distance(rng):
    from nsynth_live.train.wavenet import log_spectral_distance_db

    tone = harmonic_note(57, 100, 0.5, samples=8000).astype(np.float64)
    assert log_spectral_distance_db(tone, tone) == 0.0
    assert log_spectral_distance_db(0.5 * tone, tone) == pytest.approx(20 * np.log10(2), abs=1.0)
    noise = rng.normal(0, tone.std(), tone.shape)
    detuned = harmonic_note(58, 100, 0.5, samples=8000).astype(np.float64)
    # a semitone off is closer than noise of the same loudness, and both are far from zero
    assert 3.0 < log_spectral_distance_db(detuned, tone) < log_spectral_distance_db(noise, tone)


def test_harmonic_energy_ratio(rng):
    from nsynth_live.train.wavenet import harmonic_energy_ratio

    rate, t = 16000, np.arange(12000) / 16000
    tone = harmonic_note(57, 100, 0.5, samples=12000).astype(np.float64)  # A3, 220 Hz
    assert harmonic_energy_ratio(tone, 220.0, sample_rate=rate) > 0.95
    # a reconstruction 30 cents sharp still counts (f0 is searched within 50 cents); 150 cents off does not
    def partials(f0):
        return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
    assert harmonic_energy_ratio(partials(220.0 * 2 ** (30 / 1200)), 220.0, sample_rate=rate) > 0.95
    assert harmonic_energy_ratio(partials(220.0 * 2 ** (150 / 1200)), 220.0, sample_rate=rate) < 0.05
    # the wrong f0 (a minor third up: no shared harmonic below 1.3 kHz) and white noise score low
    assert harmonic_energy_ratio(np.sin(2 * np.pi * 220 * t), 261.6, sample_rate=rate) < 0.01
    assert harmonic_energy_ratio(rng.normal(size=12000), 220.0, sample_rate=rate) < 0.2
    # partly noisy: in between, and it grows with the tone's share of the energy
    noise = rng.normal(0, tone.std(), tone.shape)
    half = harmonic_energy_ratio(tone + noise, 220.0, sample_rate=rate)
    quarter = harmonic_energy_ratio(tone + 2 * noise, 220.0, sample_rate=rate)
    assert 0.2 < quarter < half < 0.9
    assert harmonic_energy_ratio(np.zeros(12000), 220.0, sample_rate=rate) == 0.0
    with pytest.raises(ValueError, match="f0_hz must be in"):
        harmonic_energy_ratio(tone, 9000.0, sample_rate=rate)
    with pytest.raises(ValueError, match="1-D"):
        harmonic_energy_ratio(tone[:10], 220.0, sample_rate=rate)


class _NonFiniteGradient(torch.autograd.Function):
    """Identity forward, NaN gradient backward: a finite loss whose step would poison the weights."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@pytest.mark.parametrize("poison", ["loss", "gradient"])
def test_a_non_finite_step_stops_before_the_weights_change(dataset_root, tmp_path, monkeypatch, poison):
    run = tmp_path / "run"
    train_wavenet(dataset_root, run, config=_config(max_steps=2), progress=False)
    before = {k: v.clone() for k, v in load_trained_model(run, weights="raw").state_dict().items()}
    real_loss = WaveNetAutoencoder.loss

    def poisoned(self, audio):
        loss = real_loss(self, audio)
        return loss * float("nan") if poison == "loss" else _NonFiniteGradient.apply(loss)

    monkeypatch.setattr(WaveNetAutoencoder, "loss", poisoned)
    with pytest.raises(FloatingPointError, match=f"{poison} (norm )?nan at step 3; the run is checkpointed at step 2"):
        train_wavenet(dataset_root, run, config=_config(max_steps=4), progress=False)
    after = load_trained_model(run, weights="raw").state_dict()
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=0, msg=name)
    average = load_trained_model(run).state_dict()
    assert all(bool(torch.isfinite(v).all()) for v in average.values())
    monkeypatch.setattr(WaveNetAutoencoder, "loss", real_loss)
    assert train_wavenet(dataset_root, run, config=_config(max_steps=3), progress=False).step == 3


def test_train_cli_reports_a_non_finite_loss_without_a_traceback(dataset_root, tmp_path, capsys, monkeypatch):
    import runpy
    from pathlib import Path

    main = runpy.run_path(str(Path(__file__).resolve().parents[2] / "export" / "train_wavenet.py"))["main"]
    real_loss = WaveNetAutoencoder.loss
    monkeypatch.setattr(WaveNetAutoencoder, "loss", lambda self, audio: real_loss(self, audio) * float("inf"))
    args = [str(dataset_root), "--run-dir", str(tmp_path / "run"), "--model", "tiny", "--batch-size", "2",
            "--crop-samples", "256", "--max-steps", "2", "--evaluate", "0", "--device", "cpu", "--no-progress"]
    assert main(args) == 2
    assert "error: loss inf at step 1; the run is checkpointed at step 0" in capsys.readouterr().err
