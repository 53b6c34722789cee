"""Bank files: 24-bit WAV + smpl, sustain loops, SFZ text, Decent Sampler XML, Open NSynth Super pads."""

import json
import struct
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
import soundfile

from nsynth_live.export.riff import (
    pcm24_wav_bytes,
    read_riff_chunks,
    read_smpl,
    smpl_payload,
    write_pcm24_wav,
)
from nsynth_live.export.sample_loop import LoopPoints, find_sustain_loop
from nsynth_live.export.sampler_formats import (
    ONS_FADE_SAMPLES,
    ONS_NOTE_SAMPLES,
    ons_bin_rows,
    ons_process_note,
    ons_velocity_layer,
    write_decent_sampler,
    write_ons_bins,
)
from nsynth_live.export.sfz import (
    grid_cc_values,
    key_ranges,
    sfz_voice_cost,
    velocity_ranges,
    write_sfz,
)
from tests.export.bank_fixtures import make_synthetic_bank, midi_to_hz, parse_sfz, tiles

SAMPLE_RATE = 48_000  # Hz
C4_HZ = 261.63


# ------------------------------------------------------------------------------------- WAV and smpl

def test_smpl_payload_layout_and_round_trip():
    payload = smpl_payload(sample_rate=SAMPLE_RATE, root_key=60, loop_start=1000, loop_end=2000)
    assert len(payload) == 36 + 24
    header = struct.unpack("<9I", payload[:36])
    assert header == (0, 0, round(1e9 / SAMPLE_RATE), 60, 0, 0, 0, 1, 0)
    assert struct.unpack("<6I", payload[36:]) == (0, 0, 1000, 1999, 0, 0)  # end stored inclusive
    parsed = read_smpl(payload)
    assert parsed["root_key"] == 60 and parsed["sample_period_ns"] == 20833
    assert parsed["loops"] == [{"start": 1000, "end": 2000, "end_inclusive": 1999, "type": 0, "play_count": 0}]
    no_loop = smpl_payload(sample_rate=44_100, root_key=0, loop_start=0, loop_end=0)
    assert len(no_loop) == 36 and read_smpl(no_loop)["loops"] == []
    assert read_smpl(smpl_payload(sample_rate=44_100, root_key=127))["sample_period_ns"] == 22676


@pytest.mark.parametrize("kwargs, message", [
    ({"root_key": 128, "loop_start": None, "loop_end": None}, "root_key"),
    ({"root_key": 60, "loop_start": 10, "loop_end": None}, "both"),
    ({"root_key": 60, "loop_start": 10, "loop_end": 10}, "loop_start < loop_end"),
])
def test_smpl_payload_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        smpl_payload(sample_rate=SAMPLE_RATE, **kwargs)


@pytest.mark.parametrize("channels", [1, 2])
def test_pcm24_wav_reads_back_within_one_lsb_with_smpl_before_data(tmp_path, rng, channels):
    audio = rng.uniform(-1.0, 1.0, size=(4801, channels)) if channels > 1 else rng.uniform(-1.0, 1.0, size=4801)
    audio[:3] = 1.0  # full scale clips to the largest code
    smpl = smpl_payload(sample_rate=SAMPLE_RATE, root_key=64, loop_start=100, loop_end=4000)
    path = write_pcm24_wav(tmp_path / "note.wav", audio, sample_rate=SAMPLE_RATE, extra_chunks=[(b"smpl", smpl)])
    info = soundfile.info(str(path))
    assert (info.subtype, info.channels, info.frames, info.samplerate) == ("PCM_24", channels, 4801, SAMPLE_RATE)
    back, _ = soundfile.read(str(path), dtype="float64")
    assert np.max(np.abs(back - audio)) <= 2.0**-23
    raw = path.read_bytes()
    assert [chunk_id for chunk_id, _ in read_riff_chunks(raw)] == [b"fmt ", b"smpl", b"data"]
    assert read_smpl(raw)["loops"][0]["end"] == 4000 and read_smpl(raw)["root_key"] == 64
    with pytest.raises(FileExistsError, match="force"):
        write_pcm24_wav(path, audio, sample_rate=SAMPLE_RATE)


def test_pcm24_wav_refuses_non_finite_and_read_smpl_needs_the_chunk():
    with pytest.raises(ValueError, match="NaN"):
        pcm24_wav_bytes(np.array([0.0, np.nan]), sample_rate=SAMPLE_RATE)
    with pytest.raises(ValueError, match="no 'smpl' chunk"):
        read_smpl(pcm24_wav_bytes(np.zeros(10), sample_rate=SAMPLE_RATE))


# --------------------------------------------------------------------------------------- sustain loop

def harmonic_note(*, f0_hz=C4_HZ, seconds=1.5, decay_db_per_second=0.5):
    """3 harmonics with a slow exponential decay: (time,) float64."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * f0_hz * t) + 0.3 * np.sin(2 * np.pi * 2 * f0_hz * t + 0.4)
            + 0.15 * np.sin(2 * np.pi * 3 * f0_hz * t + 1.1))
    return tone * 10.0 ** (-decay_db_per_second * t / 20)


def test_sustain_loop_is_whole_periods_between_rising_zero_crossings_and_seamless():
    audio = harmonic_note()
    loop = find_sustain_loop(audio, sample_rate=SAMPLE_RATE, f0_hz=C4_HZ, search_start_seconds=0.3,
                             search_end_seconds=1.2)
    assert isinstance(loop, LoopPoints)
    assert 0.3 * SAMPLE_RATE <= loop.start < loop.end <= 1.2 * SAMPLE_RATE
    assert loop.length_frames >= 0.25 * SAMPLE_RATE
    period = SAMPLE_RATE / C4_HZ
    assert abs(loop.length_frames - loop.periods * period) <= 0.005 * loop.periods * period
    for frame in (loop.start, loop.end):  # rising zero crossings
        assert audio[frame - 1] < 0 <= audio[frame]
    assert loop.seam_db < -30.0

    # playing the loop three times: the seam's step is no larger than the steps inside the loop
    cycle = audio[loop.start : loop.end]
    played = np.concatenate([cycle, cycle, cycle])
    seam_step = abs(played[cycle.size] - played[cycle.size - 1])
    assert seam_step <= 2.0 * np.max(np.abs(np.diff(cycle)))


def test_sustain_loop_errors_are_clear():
    audio = harmonic_note(seconds=0.5)
    with pytest.raises(ValueError, match="widen the window or lower min_loop_seconds"):
        find_sustain_loop(audio, sample_rate=SAMPLE_RATE, f0_hz=C4_HZ, search_start_seconds=0.2,
                          search_end_seconds=0.4)
    with pytest.raises(ValueError, match="silent"):
        find_sustain_loop(np.zeros(SAMPLE_RATE), sample_rate=SAMPLE_RATE, f0_hz=C4_HZ,
                          search_start_seconds=0.1, search_end_seconds=0.9)
    with pytest.raises(ValueError, match="inside the note"):
        find_sustain_loop(audio, sample_rate=SAMPLE_RATE, f0_hz=C4_HZ, search_start_seconds=0.1,
                          search_end_seconds=2.0)
    with pytest.raises(ValueError, match="f0_hz"):
        find_sustain_loop(audio, sample_rate=SAMPLE_RATE, f0_hz=0.0, search_start_seconds=0.0,
                          search_end_seconds=0.5)


# ---------------------------------------------------------------------------------------------- SFZ

@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """A 3 x 3 bank, roots 60 and 64, velocity layers 64 and 127: (bank_dir, index)."""
    bank_dir = tmp_path_factory.mktemp("bank")
    return bank_dir, make_synthetic_bank(bank_dir, velocities=(64, 127))


def test_key_and_velocity_ranges_tile_the_midi_range():
    assert key_ranges([60, 64]) == [(0, 63, 60), (64, 127, 64)]
    assert key_ranges([24, 28, 84])[-1] == (84, 127, 84)
    assert velocity_ranges([64, 127]) == [(1, 64, 64), (65, 127, 127)]
    assert velocity_ranges([100]) == [(1, 127, 100)]
    assert grid_cc_values(9) == [0, 16, 32, 48, 64, 79, 95, 111, 127]
    with pytest.raises(ValueError, match="ascending"):
        key_ranges([64, 60])


@pytest.mark.parametrize("layout, per_group", [("quad", 16), ("nearest", 9), ("full", 9)])
def test_sfz_regions_tile_keys_velocities_and_cc(bank, layout, per_group):
    bank_dir, index = bank
    path = write_sfz(bank_dir, index, layout=layout, overwrite=True)
    text = path.read_text()
    assert path.name == "synthetic.sfz"
    assert f"layout={layout}" in text and f"voice cost {sfz_voice_cost(index, layout)}" in text
    regions = parse_sfz(text)
    assert len(regions) == per_group * 2 * 2  # x 2 roots x 2 velocity layers
    for region in regions:
        assert region["ampeg_release"] == "0.3"
        assert (bank_dir / region["sample"]).is_file() and "\\" not in region["sample"]
        sample_key = next(k for k, s in index.samples.items() if s.path == region["sample"])
        sample = index.samples[sample_key]
        assert int(region["pitch_keycenter"]) == sample.pitch_midi
        assert region["loop_mode"] == "loop_continuous"
        assert (int(region["loop_start"]), int(region["loop_end"])) == (sample.loop_start, sample.loop_end - 1)
    keys = {(int(r["lokey"]), int(r["hikey"])) for r in regions}
    assert tiles(keys)
    velocities = {(int(r["lovel"]), int(r["hivel"])) for r in regions}
    assert tiles(velocities, lo=1)
    one_group = [r for r in regions if r["lokey"] == "0" and r["lovel"] == "1"]
    assert len(one_group) == per_group
    if layout == "full":
        assert all("locc12" not in r for r in one_group)
        return
    for cc in (12, 13):
        gates = {(int(r[f"locc{cc}"]), int(r[f"hicc{cc}"])) for r in one_group}
        assert tiles(gates)
    if layout == "quad":
        # each quad: 4 distinct corner cells, X fades in on the right column and out on the left
        quads = {}
        for r in one_group:
            quads.setdefault((r["locc12"], r["locc13"]), []).append(r)
        assert len(quads) == 4 and all(len(q) == 4 for q in quads.values())
        for q in quads.values():
            assert len({r["sample"] for r in q}) == 4
            assert sorted(("xfin_locc12" in r, "xfin_locc13" in r) for r in q) == [
                (False, False), (False, True), (True, False), (True, True)]
        assert "xf_cccurve=power" in text


def test_sfz_refuses_unknown_layout_and_existing_file(bank):
    bank_dir, index = bank
    with pytest.raises(ValueError, match="quad, nearest, full"):
        write_sfz(bank_dir, index, layout="bilinear")
    write_sfz(bank_dir, index, overwrite=True)
    with pytest.raises(FileExistsError):
        write_sfz(bank_dir, index)
    assert [sfz_voice_cost(index, layout) for layout in ("quad", "nearest", "full")] == [4, 1, 9]


# ---------------------------------------------------------------------------------- Decent Sampler

def test_decent_sampler_preset_parses_and_names_existing_samples(bank):
    bank_dir, index = bank
    path = write_decent_sampler(bank_dir, index, overwrite=True)
    root = ElementTree.parse(path).getroot()
    assert root.tag == "DecentSampler"
    knobs = root.findall("./ui/tab/labeled-knob")
    assert [k.get("label") for k in knobs] == ["X", "Y"]
    for knob, axis in zip(knobs, "xy"):
        bindings = knob.findall("binding")
        assert [b.get("identifier") for b in bindings] == [f"{axis}{k}" for k in range(3)]
        assert all(b.get("parameter") == "TAG_VOLUME" and b.get("level") == "tag" for b in bindings)
        # column 1 of 3: silent at both edges, full at the centre, equal power halfway
        table = dict(tuple(map(float, pair.split(","))) for pair in bindings[1].get("translationTable").split(";"))
        assert table[0.0] == 0.0 and table[0.5] == 1.0 and table[1.0] == 0.0
        assert table[0.25] == pytest.approx(np.sqrt(0.5), abs=1e-5)
    groups = root.findall("./groups/group")
    assert len(groups) == 9
    assert {g.get("tags") for g in groups} == {f"x{i},y{j}" for i in range(3) for j in range(3)}
    samples = root.findall("./groups/group/sample")
    assert len(samples) == 9 * 2 * 2
    for sample in samples:
        assert (bank_dir / sample.get("path")).is_file()
        assert sample.get("loopEnabled") == "true"
        entry = next(s for s in index.samples.values() if s.path == sample.get("path"))
        assert int(sample.get("loopEnd")) == entry.loop_end - 1 and int(sample.get("rootNote")) == entry.pitch_midi
    assert tiles({(int(s.get("loNote")), int(s.get("hiNote"))) for s in samples})
    assert tiles({(int(s.get("loVel")), int(s.get("hiVel"))) for s in samples}, lo=1)
    ccs = {cc.get("number"): cc.find("binding").get("position") for cc in root.findall("./midi/cc")}
    assert ccs == {"12": "0", "13": "1"}


# ------------------------------------------------------------------------------- Open NSynth Super

def test_ons_process_note_normalises_aligns_and_fades():
    rate = 48_000
    note = np.zeros(rate)
    t = np.arange(rate // 2) / rate
    note[4800 : 4800 + t.size] = 0.9 * np.sin(2 * np.pi * 220.0 * t) * np.exp(-t)
    row = ons_process_note(note, sample_rate=rate)
    assert row.dtype == np.int16 and row.shape == (ONS_NOTE_SAMPLES,)
    peak = np.abs(row).max()
    assert abs(20 * np.log10(peak / 32767) - (-12.0)) < 0.2
    onset = int(np.argmax(np.abs(row) > 0.1 * peak))
    assert 14 <= onset <= 18  # 16 samples of lead before the onset (rounding of the resampler aside)
    assert row[0] == 0 and row[-1] == 0 and np.all(np.abs(row[:ONS_FADE_SAMPLES]) <= peak)
    assert np.all(ons_process_note(np.zeros(100), sample_rate=16_000) == 0)

    # a lone spike (jumps of more than 1.0 up and down) is replaced by the mean of its neighbours
    tone = 0.3 * np.sin(2 * np.pi * 200.0 * np.arange(16_000) / 16_000)
    spiked = tone.copy()
    spiked[5000] += 1.2
    np.testing.assert_array_equal(ons_process_note(spiked, sample_rate=16_000),
                                  ons_process_note(_repaired(tone, 5000), sample_rate=16_000))
    assert ons_velocity_layer([64, 127]) == 127 and ons_velocity_layer([25, 50, 75, 100, 127]) == 100


def _repaired(audio, index):
    fixed = audio.copy()
    fixed[index] = 0.5 * (audio[index - 1] + audio[index + 1])
    return fixed


def test_ons_bin_layout_row_order_and_refusals(tmp_path, bank):
    bank_dir = tmp_path / "ons"
    index = make_synthetic_bank(bank_dir, grid_size=9, pitches=(48, 60), velocities=(100,), note_seconds=0.5,
                                with_loops=False, name="ons9")
    bin_path, settings_path = write_ons_bins(bank_dir, index)
    assert bin_path.name == "a_b_c_d.bin"  # the device's "<corner>_<corner>_<corner>_<corner>" pad name
    assert bin_path.stat().st_size == 81 * 2 * 60_000 * 2
    settings = json.loads(settings_path.read_text())
    assert settings["nsynth"] == {"resolution": 9, "pitches": [48, 60], "length": 60_000, "sampleRate": 16_000}
    rows = ons_bin_rows(bin_path, n_pitches=2)
    for i, j, p in [(0, 0, 0), (8, 0, 1), (3, 5, 0), (0, 8, 1), (8, 8, 1)]:
        audio, rate = soundfile.read(str(bank_dir / index.sample(i, j, index.pitches[p], 100).path))
        expected = ons_process_note(audio, sample_rate=rate)
        np.testing.assert_array_equal(rows[(j * 9 + i) * 2 + p], expected)
    # rows differ where the timbre differs (x along i): brightness shows as harmonic 2 of the row
    spectrum = np.abs(np.fft.rfft(rows[(0 * 9 + 8) * 2 + 1][:8000].astype(float)))
    bin_h2 = round(2 * midi_to_hz(60) * 8000 / 16_000)
    assert spectrum[bin_h2 - 2 : bin_h2 + 3].max() > 0.1 * spectrum.max()
    with pytest.raises(FileExistsError):
        write_ons_bins(bank_dir, index)
    small_dir, small_index = bank
    with pytest.raises(ValueError, match="9 x 9"):
        write_ons_bins(small_dir, small_index)
