"""The bank player: a rendered bank played through the streaming-synth protocol and the live engine.

The bank is synthetic (tests/export/bank_fixtures.py): cell (x, y) plays a harmonic tone at its
root's exact f0 with H2/H1 = x and H3/H1 = 2/3 y, all cells in phase, so pitch and timbre can be
read from the audio exactly.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from nsynth_live import app
from nsynth_live.data.bank_index import BankFormatError
from nsynth_live.functional.midi import cents_between, midi_to_hz
from nsynth_live.functional.pitch import estimate_f0_hz
from nsynth_live.runtime.bank_player import BANK_CORNER_NAMES, BankPlayer
from tests.export.bank_fixtures import make_synthetic_bank

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "bach_bwv66_6.mid"


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bank")
    index = make_synthetic_bank(folder, grid_size=3, pitches=(60, 64), velocities=(64, 127), note_seconds=1.5)
    return folder, index


@pytest.fixture(scope="module")
def player(bank):
    return BankPlayer(bank[0])


def play(player, *, xy, pitch_midi=60, velocity=127, hops=20, first_hop=0, state=None):
    """Step one voice for ``hops`` hops from ``first_hop``; returns (audio (samples,), state)."""
    state = player.new_state(1) if state is None else state
    out = []
    xy = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
    for t in range(first_hop, first_hop + hops):
        position = xy[min(t - first_hop, len(xy) - 1)][None]
        audio, state = player.step(position, np.array([pitch_midi]), np.array([float(velocity)]), np.array([t]), state)
        out.append(audio[0])
    return np.concatenate(out).astype(np.float64), state


def harmonic_amplitudes(audio, *, f0_hz, sample_rate, count=3):
    """Amplitudes of harmonics 1..count by projection on the exact frequencies (whole periods)."""
    t = np.arange(audio.shape[0]) / sample_rate
    return np.array([2 * abs(np.mean(audio * np.exp(-2j * np.pi * k * f0_hz * t))) for k in range(1, count + 1)])


def test_the_corners_embed_as_their_pad_coordinates(player):
    corners = np.stack([player.instrument_embedding(name) for name in BANK_CORNER_NAMES])
    np.testing.assert_array_equal(corners, [[0, 0], [1, 0], [0, 1], [1, 1]])
    assert player.spec.preroll_steps == 0 and player.spec.embedding_dims == 2
    with pytest.raises(KeyError, match="x0y0"):
        player.instrument_embedding("organ_acoustic_005")


def test_a_root_key_on_a_cell_plays_that_cell_s_wav(bank, player):
    folder, index = bank
    sample = index.sample(2, 1, 64, 127)  # x = 1, y = 0.5
    wav, _ = soundfile.read(str(folder / sample.path), dtype="float64")
    audio, _ = play(player, xy=(1.0, 0.5), pitch_midi=64, velocity=127, hops=30)
    peak = np.max(np.abs(wav[: sample.loop_end]))
    np.testing.assert_allclose(audio, wav[: audio.shape[0]], atol=2 * peak / 32767)


@pytest.mark.parametrize("pitch", [60, 62, 63, 64, 67])
def test_keys_between_roots_are_resampled_from_the_root_below_and_in_tune(player, pitch):
    audio, _ = play(player, xy=(0.5, 0.5), pitch_midi=pitch, hops=40)
    steady = audio[int(0.2 * 48_000):]
    f0 = estimate_f0_hz(steady, sample_rate=48_000, fmin_hz=100, fmax_hz=1000)
    assert abs(float(cents_between(f0, midi_to_hz(pitch)))) < 2.0


def test_timbre_follows_x_continuously_between_cells_at_constant_power(player):
    f0 = float(midi_to_hz(60))
    ratios, levels = [], []
    for x in np.linspace(0.0, 1.0, 9):
        audio, _ = play(player, xy=(x, 0.0), hops=30)
        window = audio[int(0.2 * 48_000): int(0.2 * 48_000) + 48_000 // 4]
        h = harmonic_amplitudes(window, f0_hz=f0, sample_rate=48_000)
        ratios.append(h[1] / h[0])
        levels.append(np.sqrt(np.mean(window ** 2)))
    np.testing.assert_allclose(ratios, np.linspace(0.0, 1.0, 9), atol=0.02)  # H2/H1 = x: the blend is linear
    # the power follows the cells' powers linearly (no dip between cells)
    expected = np.sqrt(np.interp(np.linspace(0, 1, 9), [0, 0.5, 1], np.square(levels)[[0, 4, 8]]))
    np.testing.assert_allclose(20 * np.log10(np.array(levels) / expected), 0.0, atol=0.25)


def test_a_held_note_morphs_without_a_click_when_xy_moves(player):
    path = np.concatenate([np.zeros((10, 2)), np.stack([np.linspace(0, 1, 20), np.linspace(0, 1, 20)], 1),
                           np.ones((10, 2))])
    audio, _ = play(player, xy=path, hops=40)
    steps = np.abs(np.diff(audio[int(0.05 * 48_000):]))
    still, _ = play(player, xy=(0.0, 0.0), hops=40)
    brightest, _ = play(player, xy=(1.0, 1.0), hops=40)
    largest_natural_step = max(np.abs(np.diff(still)).max(), np.abs(np.diff(brightest)).max())
    assert steps.max() <= 1.05 * largest_natural_step


def test_a_note_held_past_its_sample_loops_without_a_click(bank, player):
    _, index = bank
    sample = index.sample(0, 0, 60, 127)
    hop = player.spec.hop_length_samples
    hops = int(np.ceil(2.5 * sample.frames / hop))  # 2.5 x the sample's length
    audio, _ = play(player, xy=(0.0, 0.0), hops=hops)
    tail = audio[sample.frames:]
    assert np.sqrt(np.mean(tail ** 2)) > 0.1  # still sounding
    loop = audio[sample.loop_start: sample.loop_end]
    assert np.abs(np.diff(audio[sample.loop_start:])).max() <= 1.5 * np.abs(np.diff(loop)).max()


def test_velocity_picks_the_layer_above_and_scales_within_it(player):
    loud, _ = play(player, xy=(0, 0), velocity=127, hops=20)
    soft_layer, _ = play(player, xy=(0, 0), velocity=64, hops=20)
    softer, _ = play(player, xy=(0, 0), velocity=32, hops=20)
    rms = [np.sqrt(np.mean(a[4800:] ** 2)) for a in (loud, soft_layer, softer)]
    assert rms[1] / rms[0] == pytest.approx(64 / 127, rel=0.01)  # the layer's own level
    assert rms[2] / rms[1] == pytest.approx(32 / 64, rel=0.01)  # velocity / layer inside the layer, as the SFZ


def test_a_foreign_or_damaged_bank_is_refused_with_what_to_do(tmp_path, bank):
    with pytest.raises(BankFormatError, match="not a bank folder"):
        BankPlayer(tmp_path)
    folder, index = bank
    data = json.loads((folder / "bank.json").read_text())
    data["format_version"] = 99
    (tmp_path / "bank.json").write_text(json.dumps(data))
    with pytest.raises(BankFormatError, match="format_version 99"):
        BankPlayer(tmp_path)
    data["format_version"] = 1
    (tmp_path / "bank.json").write_text(json.dumps(data))  # samples missing here
    with pytest.raises(BankFormatError, match="unreadable"):
        BankPlayer(tmp_path)


def test_run_live_plays_a_bank_offline_through_the_engine(tmp_path, bank, capsys):
    out = tmp_path / "take.wav"
    assert app.main(["--bank", str(bank[0]), "--offline", "--play", str(EXAMPLE), "--record", str(out),
                     "--xy", "0.3", "0.7"]) == 0
    audio, sample_rate = soundfile.read(out, dtype="float32")
    assert sample_rate == 48_000 and np.all(np.isfinite(audio)) and 0.05 < np.abs(audio).max() <= 1.0
    assert "bank 'synthetic'" in capsys.readouterr().out


def test_run_live_names_a_missing_bank(tmp_path, capsys):
    assert app.main(["--bank", str(tmp_path / "nowhere"), "--offline", "--play", str(EXAMPLE),
                     "--record", str(tmp_path / "x.wav")]) == app.EXIT_BAD_INPUT
    assert "bank folder" in capsys.readouterr().err


def test_a_preset_may_name_a_bank_relative_to_its_folder(tmp_path, bank, monkeypatch, capsys):
    from nsynth_live.presets import BANK_CORNER_NAMES, PresetError, load_preset

    presets = tmp_path / "presets"
    presets.mkdir()
    relative = os.path.relpath(bank[0], presets)  # e.g. ../../bank0
    (presets / "mine.toml").write_text(f'format_version = 1\nname = "mine"\nbank = "{relative}"\nxy = [0.2, 0.9]\n')
    preset = load_preset("mine", presets_dir=presets)
    assert preset.corners == BANK_CORNER_NAMES and Path(preset.bank).resolve() == bank[0].resolve()
    monkeypatch.setattr(app, "load_preset_or_explain", lambda name: preset)
    out = tmp_path / "take.wav"
    assert app.main(["--preset", "mine", "--offline", "--play", str(EXAMPLE), "--record", str(out)]) == 0
    assert "bank 'synthetic'" in capsys.readouterr().out and out.is_file()
    (presets / "bad.toml").write_text('format_version = 1\nname = "bad"\nbank = ""\n')
    with pytest.raises(PresetError, match="missing 'corners'"):
        load_preset("bad", presets_dir=presets)


def test_presets_switch_release_and_gain_of_a_bank_while_it_plays(player):
    from nsynth_live.engine.engine import Engine, EngineConfig
    from nsynth_live.engine.events import SelectPreset
    from nsynth_live.presets import BANK_CORNER_NAMES, load_preset

    from nsynth_live.app import bank_sustain_loop

    config = EngineConfig(sustain_loop=bank_sustain_loop(player.spec), corner_names=BANK_CORNER_NAMES)
    engine = Engine(player, "default", output_sample_rate=48_000, config=config)
    keys = load_preset("keys")  # model instruments at its corners
    engine.post(SelectPreset("keys"))
    engine.render_hop()
    assert engine.preset.name == "keys" and engine.preset.release_seconds == keys.release_seconds
    assert engine.preset.corners == BANK_CORNER_NAMES
