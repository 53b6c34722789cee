"""Wavetable files: Serum WAV (clm chunk), Vital .vitaltable, Surge .wt read back to the same frames."""

import base64
import json
import struct

import numpy as np
import pytest
import soundfile

from nsynth_live.export.riff import read_riff_chunks
from nsynth_live.export.wavetable_formats import (
    read_serum_wav,
    read_surge_wt,
    read_vitaltable,
    serum_clm_payload,
    vital_positions,
    write_serum_wav,
    write_surge_wt,
    write_vitaltable,
    write_wavetable,
)
from nsynth_live.export.wavetable_plot import save_wavetable_png


@pytest.fixture
def table(rng):
    """Five random-ish frames of 2048 samples with a peak of 0.98, float32."""
    frames = rng.standard_normal((5, 2048)).cumsum(axis=1)
    frames -= frames.mean(axis=1, keepdims=True)
    return (0.98 * frames / np.abs(frames).max()).astype(np.float32)


@pytest.mark.parametrize("interpolation", [0, 1, 2, 4])
def test_serum_wav_reads_back_with_soundfile_and_clm_is_byte_exact(tmp_path, table, interpolation):
    path = write_serum_wav(tmp_path / "table.wav", table, interpolation=interpolation)
    info = soundfile.info(str(path))
    assert (info.channels, info.subtype, info.frames) == (1, "FLOAT", 5 * 2048)
    samples, _ = soundfile.read(str(path), dtype="float32")
    np.testing.assert_array_equal(samples.reshape(5, 2048), table)

    raw = path.read_bytes()
    chunks = read_riff_chunks(raw)
    assert [chunk_id for chunk_id, _ in chunks] == [b"fmt ", b"clm ", b"data"]  # clm before data
    expected = f"<!>2048 {interpolation}0000000 wavetable (nsynth-live)".encode("ascii")
    assert dict(chunks)[b"clm "] == expected
    offset = raw.index(b"clm ")
    assert raw[offset + 4 : offset + 8] == struct.pack("<I", len(expected))
    assert raw[offset + 8 : offset + 8 + len(expected)] == expected
    assert len(expected) % 2 == 0 or raw[offset + 8 + len(expected)] == 0  # RIFF pad byte
    frames, payload = read_serum_wav(path)
    np.testing.assert_array_equal(frames, table)
    assert payload[:3] == b"<!>" and payload[3:7] == b"2048" and payload[7:8] == b" "
    assert payload[8:9] == str(interpolation).encode() and payload[9:10] == b"0"  # factory flag 0


def test_clm_with_odd_length_is_padded(tmp_path, table):
    payload = serum_clm_payload(maker="abcd")  # 29 fixed bytes + 4 -> an odd payload
    assert len(payload) % 2 == 1
    path = write_serum_wav(tmp_path / "odd.wav", table, maker="abcd")
    chunks = read_riff_chunks(path.read_bytes())
    assert dict(chunks)[b"clm "] == payload
    samples, _ = soundfile.read(str(path), dtype="float32")
    np.testing.assert_array_equal(samples.reshape(5, 2048), table)


def test_surge_wt_header_and_frames_round_trip(tmp_path, table):
    path = write_surge_wt(tmp_path / "table.wt", table)
    raw = path.read_bytes()
    assert raw[:4] == b"vawt"
    assert struct.unpack("<IHH", raw[4:12]) == (2048, 5, 0)
    assert len(raw) == 12 + 5 * 2048 * 4
    frames, flags = read_surge_wt(path)
    assert flags == 0
    np.testing.assert_array_equal(frames, table)


def test_vitaltable_json_round_trip(tmp_path, table):
    path = write_vitaltable(tmp_path / "table.vitaltable", table, name="piano C3")
    document = json.loads(path.read_text())
    assert document["name"] == "piano C3" and document["remove_all_dc"] is True
    (component,) = document["groups"][0]["components"]
    assert component["type"] == "Wave Source"
    assert [k["position"] for k in component["keyframes"]] == [0, 64, 128, 192, 256]
    first = np.frombuffer(base64.b64decode(component["keyframes"][0]["wave_data"]), dtype="<f4")
    np.testing.assert_array_equal(first, table[0])
    frames, positions, _ = read_vitaltable(path)
    np.testing.assert_array_equal(frames, table)
    assert positions == [0, 64, 128, 192, 256]


def test_vital_positions_are_distinct_up_to_256_frames():
    assert vital_positions(1) == [0]
    positions = vital_positions(256)
    assert positions[0] == 0 and positions[-1] == 256 and len(set(positions)) == 256


@pytest.mark.parametrize("table_format", ["serum", "vital", "surge"])
def test_writers_refuse_to_overwrite_and_keep_the_old_file(tmp_path, table, table_format):
    path = tmp_path / "out.bin"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="--force"):
        write_wavetable(path, table, table_format=table_format, name="t")
    assert path.read_bytes() == b"precious"
    write_wavetable(path, table, table_format=table_format, name="t", overwrite=True)
    assert path.read_bytes() != b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left


@pytest.mark.parametrize(
    "frames, message",
    [
        (np.zeros((3, 1024), np.float32), "2048"),
        (np.zeros((257, 2048), np.float32), "256"),
        (np.zeros((0, 2048), np.float32), "1..256"),
        (np.full((2, 2048), 1.5, np.float32), "full scale"),
        (np.full((2, 2048), np.nan, np.float32), "finite"),
    ],
)
def test_bad_tables_are_refused(tmp_path, frames, message):
    for table_format in ("serum", "vital", "surge"):
        with pytest.raises(ValueError, match=message):
            write_wavetable(tmp_path / f"x.{table_format}", frames, table_format=table_format, name="t")
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_refused(tmp_path, table):
    with pytest.raises(ValueError, match="0..4"):
        write_serum_wav(tmp_path / "a.wav", table, interpolation=7)
    with pytest.raises(ValueError, match="serum"):
        write_wavetable(tmp_path / "a.x", table, table_format="wavetable-9000", name="t")


def test_readers_refuse_what_they_do_not_know(tmp_path, table):
    wt = tmp_path / "int16.wt"
    wt.write_bytes(b"vawt" + struct.pack("<IHH", 2048, 1, 0x04) + bytes(4096))
    with pytest.raises(ValueError, match="flags"):
        read_surge_wt(wt)
    plain = tmp_path / "plain.wav"
    soundfile.write(str(plain), table.reshape(-1), 44_100, subtype="FLOAT")
    with pytest.raises(ValueError, match="clm"):
        read_serum_wav(plain)
    vital = tmp_path / "future.vitaltable"
    document = json.loads(write_vitaltable(tmp_path / "v.vitaltable", table, name="t").read_text())
    document["version"] = "7.0.0"
    vital.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="version"):
        read_vitaltable(vital)


def test_png_picture_is_written(tmp_path, table):
    path = save_wavetable_png(tmp_path / "table.png", table, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        save_wavetable_png(path, table)
