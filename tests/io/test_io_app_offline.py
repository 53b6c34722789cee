"""nsynth_live.app without a sound card: --offline, and --play falling back to an offline render.

The model is the engine's additive test double (tests/engine/additive_synth.py), so these tests
check the app's logic (paths, atomic writes, stats, messages) without the trained ONNX model.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from nsynth_live import app
from nsynth_live.render.offline import midi_file_events
from tests.engine.additive_synth import AdditiveTestSynth

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "bach_bwv66_6.mid"


@pytest.fixture
def test_double(monkeypatch):
    monkeypatch.setattr(app, "load_model_or_explain", lambda path: AdditiveTestSynth())


@pytest.fixture
def no_audio_device(monkeypatch):
    import nsynth_live.io.audio as audio

    monkeypatch.setattr(audio, "list_output_devices", lambda: [])
    monkeypatch.setattr(audio, "set_jack_client_name", lambda name: False)


def test_offline_render_writes_the_piece_and_stats(tmp_path, test_double, capsys):
    out, stats_path = tmp_path / "take.wav", tmp_path / "stats.json"
    assert app.main(["--offline", "--play", str(EXAMPLE), "--record", str(out), "--stats-json", str(stats_path),
                     "--sample-rate", "44100"]) == 0
    audio, sample_rate = soundfile.read(out, dtype="float32")
    assert sample_rate == 44100 and audio.ndim == 2 and audio.shape[1] == 2
    last_event_seconds = midi_file_events(EXAMPLE)[-1][0]  # the last note-off
    expected_seconds = last_event_seconds + app.TAIL_SECONDS
    assert abs(audio.shape[0] / sample_rate - expected_seconds) < 0.05
    assert 0.01 < np.abs(audio).max() <= 1.0
    stats = json.loads(stats_path.read_text())
    assert stats["format_version"] == app.STATS_FORMAT_VERSION and stats["mode"] == "offline"
    assert stats["startup_seconds"] > 0 and stats["max_rss_mib"] > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json", "take.wav"], "no temporary files left"
    printed = capsys.readouterr().out
    assert str(out) in printed and "nsynth-live stats: " in printed


def test_play_without_audio_device_renders_to_out_and_never_overwrites(tmp_path, monkeypatch, test_double,
                                                                       no_audio_device, capsys):
    monkeypatch.chdir(tmp_path)
    assert app.main(["--play", str(EXAMPLE), "--no-midi", "--no-osc"]) == 0
    first = tmp_path / "out" / "bach_bwv66_6.wav"
    printed = capsys.readouterr().out
    assert first.is_file() and "no usable audio output device" in printed and "out/bach_bwv66_6.wav" in printed
    assert app.main(["--play", str(EXAMPLE), "--no-midi", "--no-osc"]) == 0
    assert (tmp_path / "out" / "bach_bwv66_6-2.wav").is_file(), "a second run keeps the first file"


def test_no_audio_device_without_play_is_an_error(tmp_path, test_double, no_audio_device, capsys):
    assert app.main(["--no-midi", "--no-osc"]) == app.EXIT_RUNTIME
    assert "no audio output device" in capsys.readouterr().err


def test_named_device_is_never_replaced_by_an_offline_render(tmp_path, monkeypatch, test_double, no_audio_device,
                                                             capsys):
    monkeypatch.chdir(tmp_path)
    assert app.main(["--play", str(EXAMPLE), "--audio-device", "JACK"]) == app.EXIT_RUNTIME
    assert "'JACK'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_xy_argument_reaches_the_engine(tmp_path, test_double):
    """Rendering at two XY corners gives different spectra (the morph is wired through)."""
    spectra = []
    for xy in (("0", "0"), ("1", "1")):
        out = tmp_path / f"xy{xy[0]}.wav"
        assert app.main(["--offline", "--play", str(EXAMPLE), "--record", str(out), "--xy", *xy]) == 0
        audio, _ = soundfile.read(out, dtype="float32")
        spectrum = np.abs(np.fft.rfft(audio[: 48000 * 4, 0]))
        spectra.append(spectrum / spectrum.sum())
    assert np.abs(spectra[0] - spectra[1]).sum() > 0.1


def _midi_file(path, messages):
    """A type-0 MIDI file of ``(delta_ticks, mido message kwargs)`` at 480 ticks per beat, 120 bpm."""
    import mido

    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for delta, kwargs in messages:
        track.append(mido.Message(time=delta, **kwargs))
    midi.save(str(path))
    return path


def test_program_changes_in_a_file_select_presets_unless_ignored(tmp_path):
    """As live: program N selects the N-th preset by name; --ignore-program-changes drops them. The
    bundled chorale has none (music21's General MIDI program 0 is stripped, examples/PROVENANCE.md)."""
    from nsynth_live.engine.events import ProgramChange

    assert not any(isinstance(event, ProgramChange) for _, event in midi_file_events(EXAMPLE))
    path = _midi_file(tmp_path / "pc.mid", [(0, dict(type="note_on", note=60, velocity=90)),
                                            (480, dict(type="program_change", program=2)),
                                            (480, dict(type="note_off", note=60))])
    assert (0.5, ProgramChange(2)) in app.load_midi_events_or_explain(path)
    assert not any(isinstance(e, ProgramChange) for _, e in app.load_midi_events_or_explain(path, ignore_program_changes=True))


def test_automation_and_cc_moves_render_offline(tmp_path, test_double):
    """--automation and a file's CC 12/13 both move XY in an offline render (same engine path as
    live): the renders differ from a render without them, and a bad CSV is one clear error."""
    path = _midi_file(tmp_path / "n.mid", [(0, dict(type="note_on", note=60, velocity=90)),
                                           (1920, dict(type="note_off", note=60))])
    with_cc = _midi_file(tmp_path / "cc.mid", [(0, dict(type="note_on", note=60, velocity=90)),
                                               (480, dict(type="control_change", control=12, value=127)),
                                               (0, dict(type="control_change", control=13, value=127)),
                                               (1440, dict(type="note_off", note=60))])
    csv = tmp_path / "xy.csv"
    csv.write_text("time,x,y\n0,0.5,0.5\n0.25,0.5,0.5\n0.25,1,1\n")
    renders = {}
    for name, extra in (("plain", ["--play", str(path)]), ("cc", ["--play", str(with_cc)]),
                        ("csv", ["--play", str(path), "--automation", str(csv)])):
        out = tmp_path / f"{name}.wav"
        assert app.main(["--offline", "--record", str(out), *extra]) == 0
        renders[name] = soundfile.read(out, dtype="float32")[0][:, 0]
    early, late = slice(0, 48000 // 5), slice(48000, 96000)
    for name in ("cc", "csv"):
        assert np.array_equal(renders[name][early], renders["plain"][early]), "nothing moves before the move"
        assert np.abs(renders[name][late] - renders["plain"][late]).max() > 0.01
    # the same position reached by CC or CSV sounds the same once both have settled
    np.testing.assert_allclose(renders["cc"][late], renders["csv"][late], atol=1e-4)
    csv.write_text("time,x,y\n0,0.5,2\n")
    assert app.main(["--offline", "--record", str(tmp_path / "bad.wav"), "--play", str(path),
                     "--automation", str(csv)]) != 0


def test_realtime_priority_refused_is_a_warning_not_a_failure(monkeypatch, caplog):
    import logging
    import os

    def refuse(pid, policy, param):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with caplog.at_level(logging.WARNING, logger="nsynth_live"):
        assert app._request_realtime_priority(5) is False
    assert "rtprio" in caplog.text and "Operation not permitted" in caplog.text


def test_realtime_priority_out_of_range_is_refused(capsys):
    with pytest.raises(SystemExit):
        app.build_parser().parse_args(["--realtime-priority", "99"])
    assert "1..89" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_getscheduler"), reason="Linux scheduling calls")
def test_thread_scheduling_names_each_python_thread_and_its_policy():
    import os
    import threading

    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="nsynth-test-worker", daemon=True)
    worker.start()
    try:
        found = app._thread_scheduling()
    finally:
        release.set()
        worker.join()
    assert "nsynth-test-worker" in found and "MainThread" in found, found
    if os.sched_getscheduler(0) == os.SCHED_OTHER:  # (a real-time parent would make both SCHED_FIFO)
        assert found["MainThread"] == found["nsynth-test-worker"] == "SCHED_OTHER"


def test_channels_one_renders_the_centred_mono_mix(tmp_path, test_double):
    stereo_path, mono_path = tmp_path / "stereo.wav", tmp_path / "mono.wav"
    assert app.main(["--offline", "--play", str(EXAMPLE), "--record", str(stereo_path)]) == 0
    assert app.main(["--offline", "--play", str(EXAMPLE), "--record", str(mono_path), "--channels", "1"]) == 0
    stereo, _ = soundfile.read(stereo_path, dtype="float32", always_2d=True)
    mono, _ = soundfile.read(mono_path, dtype="float32", always_2d=True)
    assert stereo.shape[1] == 2 and mono.shape[1] == 1
    assert np.abs(stereo[:, 0] - stereo[:, 1]).max() > 0.01, "the chorale's voices are spread"
    n = min(len(mono), len(stereo))
    mono_sum = (stereo[:n, 0] + stereo[:n, 1]) / 2
    loss_db = 10 * np.log10(np.mean(mono_sum ** 2) / np.mean(mono[:n, 0] ** 2))
    assert -1.0 <= loss_db <= 0.2
