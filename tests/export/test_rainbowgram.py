"""Rainbowgrams: physics on synthetic tones and chirps, PNG shapes, the grid map's layout, safe file names."""

import io
import struct

import numpy as np
import pytest

from nsynth_live.export.rainbowgram import (
    MAGNITUDE_FLOOR_DB,
    grid_map_png_bytes,
    rainbowgram,
    rainbowgram_png_bytes,
    sanitized_file_stem,
    save_bank_pictures,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # PNG spec, section 5.2
FMIN_HZ = 32.7  # Hz, the default lowest CQT bin (C1)
BINS_PER_OCTAVE = 48
HOP = 256  # samples
# A steady tone's phase advance per hop matches 2 pi f hop / sr to ~1e-4 rad; 0.5 Hz (2 cents at 440 Hz)
# of frequency error is ~0.05 rad at 16 kHz and hop 256: a wide margin that still catches a wrong hop,
# sign or normalisation.
IF_TOLERANCE_HZ = 0.5


def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk (PNG spec, section 11.2.2)."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _tone(frequency_hz, *, sample_rate, duration_seconds):
    t = np.arange(int(duration_seconds * sample_rate)) / sample_rate
    return 0.5 * np.sin(2 * np.pi * frequency_hz * t)


@pytest.mark.parametrize("sample_rate", [16_000, 44_100, 48_000])
@pytest.mark.parametrize("bin_index", [150, 200])
def test_tone_peaks_in_its_bin_with_matching_instantaneous_frequency(sample_rate, bin_index):
    frequency_hz = FMIN_HZ * 2 ** (bin_index / BINS_PER_OCTAVE)  # a CQT bin centre (~285 Hz, ~584 Hz)
    magnitude_db, instantaneous = rainbowgram(
        _tone(frequency_hz, sample_rate=sample_rate, duration_seconds=1.0), sample_rate=sample_rate
    )
    assert magnitude_db.dtype == np.float32 and instantaneous.dtype == np.float32
    assert magnitude_db.shape == instantaneous.shape == (7 * BINS_PER_OCTAVE, magnitude_db.shape[1])
    middle = slice(magnitude_db.shape[1] // 4, 3 * magnitude_db.shape[1] // 4)  # away from the edges
    assert int(np.argmax(magnitude_db[:, middle].mean(axis=1))) == bin_index
    assert magnitude_db.max() == pytest.approx(0.0, abs=1e-4)  # dB re the loudest bin
    assert np.all(np.abs(instantaneous) <= 1.0 + 1e-6)
    # IF = phase advance per hop / pi; the tone advances 2 pi f hop / sr (mod 2 pi)
    expected_rad = 2 * np.pi * frequency_hz * HOP / sample_rate
    error_rad = np.angle(np.exp(1j * (np.pi * instantaneous[bin_index, middle] - expected_rad)))
    error_hz = np.abs(error_rad) * sample_rate / (2 * np.pi * HOP)
    assert error_hz.max() < IF_TOLERANCE_HZ


def test_chirp_peak_bin_rises_over_time():
    sample_rate, duration_seconds, f0_hz, f1_hz = 16_000, 2.0, 100.0, 2_000.0
    t = np.arange(int(duration_seconds * sample_rate)) / sample_rate
    growth = np.log(f1_hz / f0_hz)  # exponential chirp: f(t) = f0 * (f1/f0) ** (t / T)
    chirp = np.sin(2 * np.pi * f0_hz * duration_seconds / growth * np.expm1(growth * t / duration_seconds))
    magnitude_db, _ = rainbowgram(chirp, sample_rate=sample_rate)
    n_frames = magnitude_db.shape[1]
    frames = np.linspace(0.15, 0.85, 8) * n_frames
    peak_bins = [int(np.argmax(magnitude_db[:, int(frame)])) for frame in frames]
    assert all(later > earlier for earlier, later in zip(peak_bins, peak_bins[1:])), peak_bins
    for frame, peak in zip(frames, peak_bins):  # and it follows the sweep within a semitone (4 bins)
        expected_hz = f0_hz * (f1_hz / f0_hz) ** (frame * HOP / sample_rate / duration_seconds)
        assert abs(peak - BINS_PER_OCTAVE * np.log2(expected_hz / FMIN_HZ)) <= 4


def test_octaves_are_clamped_below_nyquist():
    magnitude_db, _ = rainbowgram(np.ones(4000) * 0.1, sample_rate=8_000)  # 4 kHz / 32.7 Hz: 6.9 octaves
    assert magnitude_db.shape[0] == 6 * BINS_PER_OCTAVE


def test_silence_reads_the_floor():
    magnitude_db, _ = rainbowgram(np.zeros(4000), sample_rate=16_000)
    assert np.all(magnitude_db == MAGNITUDE_FLOOR_DB)


@pytest.mark.parametrize(
    "audio, match",
    [
        (np.zeros(0), "empty"),
        (np.array([0.0, np.nan, 0.1]), "non-finite"),
        (np.zeros((2, 100)), r"shape \(2, 100\)"),
    ],
)
def test_bad_audio_is_refused_naming_the_value(audio, match):
    with pytest.raises(ValueError, match=match):
        rainbowgram(audio, sample_rate=16_000)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="sample_rate"):
        rainbowgram(np.ones(100), sample_rate=0)
    with pytest.raises(ValueError, match="fmin_hz"):
        rainbowgram(np.ones(100), sample_rate=16_000, fmin_hz=5_000)
    with pytest.raises(ValueError, match="hop_length_samples"):
        rainbowgram(np.ones(100), sample_rate=16_000, hop_length_samples=0)


def test_rainbowgram_png_has_signature_and_two_to_one_size():
    data = rainbowgram_png_bytes(_tone(440.0, sample_rate=16_000, duration_seconds=0.5), sample_rate=16_000,
                                 title="A4")
    width, height = _png_size(data)
    assert (width, height) == (1000, 500)


def _cells(grid_size, *, sample_rate, lit=None):
    """Silent cells except ``lit``, which holds a 440 Hz tone."""
    cells = {(i, j): np.zeros(sample_rate // 4) for i in range(grid_size) for j in range(grid_size)}
    if lit is not None:
        cells[lit] = _tone(440.0, sample_rate=sample_rate, duration_seconds=0.25)
    return cells


def test_grid_map_is_square_and_puts_y0_at_the_bottom():
    from matplotlib.image import imread

    data = grid_map_png_bytes(_cells(3, sample_rate=16_000, lit=(0, 0)), sample_rate=16_000, grid_size=3)
    width, height = _png_size(data)
    assert width == height
    pixels = imread(io.BytesIO(data))[..., :3]
    # silent cells draw black, the tone draws colour: colour lies only in the bottom-left cell (x=0, y=0)
    coloured = pixels.max(axis=-1) - pixels.min(axis=-1) > 0.3
    rows, columns = np.nonzero(coloured)
    assert rows.size > 0
    assert rows.min() > height / 2 and columns.max() < width / 2


def test_grid_map_refuses_missing_and_outside_cells():
    cells = _cells(3, sample_rate=16_000)
    del cells[(1, 2)]
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        grid_map_png_bytes(cells, sample_rate=16_000, grid_size=3)
    cells[(3, 0)] = np.zeros(100)
    with pytest.raises(ValueError, match=r"\(3, 0\)"):
        grid_map_png_bytes(cells, sample_rate=16_000, grid_size=3)
    with pytest.raises(ValueError, match="grid_size"):
        grid_map_png_bytes({(0, 0): np.zeros(100)}, sample_rate=16_000, grid_size=1)


@pytest.mark.parametrize(
    "name, stem",
    [("../../evil", "_.._evil"), ("flute 1", "flute_1"), (".hidden", "hidden"), ("...", "unnamed"),
     ("a/b\\c:d", "a_b_c_d")],
)
def test_sanitized_file_stem(name, stem):
    assert sanitized_file_stem(name) == stem


def test_save_bank_pictures_writes_inside_out_dir_and_refuses_overwrite(tmp_path):
    out_dir = tmp_path / "bank" / "pictures"
    tone = _tone(330.0, sample_rate=16_000, duration_seconds=0.25)
    kwargs = dict(
        corner_audio={"../../evil": tone, "flute": tone},
        cells=_cells(3, sample_rate=16_000, lit=(1, 1)),
        sample_rate=16_000,
        grid_size=3,
    )
    written = save_bank_pictures(out_dir, **kwargs)
    assert [path.name for path in written] == ["rainbowgram__.._evil.png", "rainbowgram_flute.png", "grid_map.png"]
    for path in written:
        assert path.resolve().parent == out_dir.resolve()
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(p.name for p in written)

    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_bank_pictures(out_dir, **kwargs)
    assert save_bank_pictures(out_dir, overwrite=True, **kwargs) == written


def test_save_bank_pictures_refuses_colliding_names(tmp_path):
    tone = np.zeros(1000)
    with pytest.raises(ValueError, match="rename"):
        save_bank_pictures(tmp_path, corner_audio={"a b": tone, "a_b": tone}, cells=_cells(2, sample_rate=16_000),
                           sample_rate=16_000, grid_size=2)
    assert not any(tmp_path.iterdir())
