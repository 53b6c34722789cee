"""Wavetable file writers (and readers for checking them): Serum WAV, Vital ``.vitaltable``, Surge ``.wt``.

Byte layouts: ``docs/formats.md`` ("Serum wavetable WAV", "Vital .vitaltable", "Surge .wt").
Every writer takes a table of shape ``(frames, 2048)`` (1..256 frames, float, peak <= 1), writes
atomically and refuses to replace an existing file unless ``overwrite=True``.

These are third-party formats: their version is the format's own (Serum's ``clm `` marker, Vital's
``version`` string, Surge's ``vawt`` tag with its flags). The readers accept exactly what the
writers produce and refuse the rest (other frame sizes, int16 or sample-mode ``.wt`` files, Vital
tables with other components) with a clear error.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np

from nsynth_live.fileio import atomic_write_bytes
from nsynth_live.export.riff import float32_wav_bytes, read_riff_chunks
from nsynth_live.export.wavetable import MAX_WAVETABLE_FRAMES, WAVETABLE_FRAME_SAMPLES

WAVETABLE_FORMATS = ("serum", "vital", "surge")
WAVETABLE_SUFFIXES = {"serum": ".wav", "vital": ".vitaltable", "surge": ".wt"}
SERUM_WAV_SAMPLE_RATE = 44_100  # Hz, conventional; ignored by Serum and Surge (docs/formats.md)
SERUM_INTERPOLATION_DIGITS = {
    0: "none", 1: "linear crossfade", 2: "spectral morph", 3: "spectral morph", 4: "spectral morph",
}
SERUM_CLM_MAKER = "nsynth-live"
VITAL_FORMAT_VERSION = "1.0.7"  # the Vital release whose .vitaltable layout this writer follows
VITAL_MAX_POSITION = 256  # keyframe positions 0..256 (docs/formats.md "Vital .vitaltable")
VITAL_INTERPOLATION_FREQUENCY = 1  # Wave Source "interpolation": 0 time domain, 1 spectral
VITAL_INTERPOLATION_STYLE_LINEAR = 1  # component "interpolation_style": 0 none, 1 linear, 2 cubic
SURGE_TAG = b"vawt"
SURGE_HEADER = struct.Struct("<4sIHH")  # tag, u32 frame size, u16 frame count, u16 flags
SURGE_FLAGS_FLOAT_WAVETABLE = 0x0000  # not a sample (0x01), not int16 (0x04/0x08), no XML (0x10)


def _check_table(frames) -> np.ndarray:
    table = np.asarray(frames)
    if table.ndim != 2 or table.shape[1] != WAVETABLE_FRAME_SAMPLES:
        raise ValueError(
            f"a wavetable has shape (frames, {WAVETABLE_FRAME_SAMPLES}), got {table.shape}; "
            "cut frames with nsynth_live.export.wavetable.extract_wavetable"
        )
    if not 1 <= table.shape[0] <= MAX_WAVETABLE_FRAMES:
        raise ValueError(
            f"a wavetable holds 1..{MAX_WAVETABLE_FRAMES} frames (Serum's limit), got {table.shape[0]}; "
            "ask for fewer frames"
        )
    if not np.issubdtype(table.dtype, np.floating) or not np.all(np.isfinite(table)):
        raise ValueError("wavetable frames must be finite floating-point samples")
    peak = float(np.max(np.abs(table)))
    if peak > 1.0:
        raise ValueError(f"wavetable peak is {peak:.4f}, above full scale 1.0; normalise the table first")
    return table.astype(np.float32)


def serum_clm_payload(*, interpolation: int = 0, maker: str = SERUM_CLM_MAKER) -> bytes:
    """ASCII payload of Serum's ``clm `` chunk: ``<!>2048 <8 flag digits> wavetable (<maker>)``.

    Bytes 0-2 ``<!>``, 3-6 the frame size ``2048``, 7 a space, 8-15 flag digits: digit 8 the
    interpolation (0 none, 1 linear crossfade, 2-4 spectral morph), digit 9 the "factory table"
    flag (always 0), the rest 0 (``docs/formats.md`` "Serum wavetable WAV").

    Raises
    ------
    ValueError
        If ``interpolation`` is not 0..4 or ``maker`` is not printable ASCII without parentheses.
    """
    if interpolation not in SERUM_INTERPOLATION_DIGITS:
        raise ValueError(
            f"Serum interpolation digit must be one of 0..4 (0 none, 1 linear crossfade, 2-4 spectral "
            f"morph), got {interpolation!r}"
        )
    if not maker.isascii() or not maker.isprintable() or "(" in maker or ")" in maker:
        raise ValueError(f"maker must be printable ASCII without parentheses, got {maker!r}")
    flags = f"{interpolation}0000000"  # digit 8 interpolation, digit 9 factory table = 0, rest 0
    return f"<!>{WAVETABLE_FRAME_SAMPLES} {flags} wavetable ({maker})".encode("ascii")


def write_serum_wav(
    path,
    frames,
    *,
    interpolation: int = 0,
    sample_rate: int = SERUM_WAV_SAMPLE_RATE,
    maker: str = SERUM_CLM_MAKER,
    overwrite: bool = False,
) -> Path:
    """Write a Serum wavetable: mono float32 WAV, ``clm `` chunk before ``data``.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.wav``.
    frames : (frames, 2048) float
        The table, peak <= 1; written frame after frame.
    interpolation : int
        Serum's interpolation digit, 0..4 (0 none, 1 linear crossfade, 2-4 spectral morph).
    sample_rate : int
        Hz stored in the header (Serum ignores it).
    maker : str
        Name in the ``clm `` marker's parentheses.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        Bad table shape, more than 256 frames, peak > 1, bad interpolation digit.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    table = _check_table(frames)
    payload = serum_clm_payload(interpolation=interpolation, maker=maker)
    data = float32_wav_bytes(table.reshape(-1), sample_rate=sample_rate, extra_chunks=[(b"clm ", payload)])
    return atomic_write_bytes(path, data, overwrite=overwrite)


def read_serum_wav(path) -> tuple[np.ndarray, bytes]:
    """Read a Serum wavetable written by :func:`write_serum_wav` (samples through soundfile).

    Returns
    -------
    frames : (frames, 2048) float32
    clm_payload : bytes
        The ``clm `` chunk payload.

    Raises
    ------
    ValueError
        No ``clm `` chunk, a frame size other than 2048, or not mono float32.
    """
    import soundfile

    raw = Path(path).read_bytes()
    chunks = dict(read_riff_chunks(raw))
    if b"clm " not in chunks:
        raise ValueError(f"{path} has no 'clm ' chunk: not a Serum wavetable")
    payload = chunks[b"clm "]
    if payload[:3] != b"<!>" or payload[3:7] != str(WAVETABLE_FRAME_SAMPLES).encode():
        raise ValueError(
            f"{path}: 'clm ' chunk {payload[:16]!r} does not declare {WAVETABLE_FRAME_SAMPLES}-sample frames"
        )
    info = soundfile.info(str(path))
    if info.channels != 1 or info.subtype != "FLOAT":
        raise ValueError(f"{path}: expected mono float32, got {info.channels} channels, subtype {info.subtype}")
    samples, _ = soundfile.read(str(path), dtype="float32")
    if samples.shape[0] % WAVETABLE_FRAME_SAMPLES:
        raise ValueError(f"{path}: {samples.shape[0]} samples is not a whole number of 2048-sample frames")
    return samples.reshape(-1, WAVETABLE_FRAME_SAMPLES), payload


def vital_positions(n_frames: int) -> list[int]:
    """Keyframe positions 0..256 spread evenly over ``n_frames`` frames (first 0, last 256)."""
    if n_frames == 1:
        return [0]
    return [int(round(i * VITAL_MAX_POSITION / (n_frames - 1))) for i in range(n_frames)]


def vitaltable_document(frames, *, name: str, author: str = SERUM_CLM_MAKER) -> dict:
    """The ``.vitaltable`` JSON object: one group, one "Wave Source" component, one keyframe per frame.

    ``wave_data`` is base64 of 2048 little-endian float32; ``remove_all_dc`` is true (the frames are
    DC-free already) and ``full_normalize`` false (the table is normalised as a whole already).
    """
    table = _check_table(frames)
    keyframes = [
        {"position": position, "wave_data": base64.b64encode(frame.astype("<f4").tobytes()).decode("ascii")}
        for position, frame in zip(vital_positions(table.shape[0]), table)
    ]
    return {
        "version": VITAL_FORMAT_VERSION,
        "name": name,
        "author": author,
        "remove_all_dc": True,
        "full_normalize": False,
        "groups": [
            {
                "components": [
                    {
                        "type": "Wave Source",
                        "interpolation": VITAL_INTERPOLATION_FREQUENCY,
                        "interpolation_style": VITAL_INTERPOLATION_STYLE_LINEAR,
                        "keyframes": keyframes,
                    }
                ]
            }
        ],
    }


def write_vitaltable(path, frames, *, name: str, author: str = SERUM_CLM_MAKER, overwrite: bool = False) -> Path:
    """Write a Vital ``.vitaltable`` (JSON, see :func:`vitaltable_document`) atomically.

    Raises
    ------
    ValueError
        Bad table (shape, frame count, peak).
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    document = vitaltable_document(frames, name=name, author=author)
    return atomic_write_bytes(path, json.dumps(document).encode("utf-8"), overwrite=overwrite)


def read_vitaltable(path) -> tuple[np.ndarray, list[int], dict]:
    """Read a ``.vitaltable`` holding one "Wave Source" component (what :func:`write_vitaltable` writes).

    Returns
    -------
    frames : (frames, 2048) float32
    positions : list of int
        Keyframe positions 0..256.
    document : dict
        The parsed JSON.

    Raises
    ------
    ValueError
        An unknown version, another structure, or a keyframe not 2048 float32 long.
    """
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    version = str(document.get("version", ""))
    if version.split(".")[0] != VITAL_FORMAT_VERSION.split(".")[0]:
        raise ValueError(f"{path}: Vital table version {version!r} is not a 1.x version this reader knows")
    try:
        (group,) = document["groups"]
        (component,) = group["components"]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: expected exactly one group with one component") from error
    if component.get("type") != "Wave Source":
        raise ValueError(f"{path}: component type {component.get('type')!r} is not 'Wave Source'")
    frames, positions = [], []
    for keyframe in component["keyframes"]:
        frame = np.frombuffer(base64.b64decode(keyframe["wave_data"]), dtype="<f4")
        if frame.shape[0] != WAVETABLE_FRAME_SAMPLES:
            raise ValueError(f"{path}: a keyframe has {frame.shape[0]} samples, expected {WAVETABLE_FRAME_SAMPLES}")
        frames.append(frame.astype(np.float32))
        positions.append(int(keyframe["position"]))
    return np.stack(frames), positions, document


def surge_wt_bytes(frames) -> bytes:
    """A Surge ``.wt`` file: ``vawt``, u32 frame size, u16 frame count, u16 flags 0, float32 frames."""
    table = _check_table(frames)
    header = SURGE_HEADER.pack(SURGE_TAG, WAVETABLE_FRAME_SAMPLES, table.shape[0], SURGE_FLAGS_FLOAT_WAVETABLE)
    return header + table.astype("<f4").tobytes()


def write_surge_wt(path, frames, *, overwrite: bool = False) -> Path:
    """Write a Surge ``.wt`` wavetable (float32, flags 0) atomically.

    Raises
    ------
    ValueError
        Bad table (shape, frame count, peak).
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    return atomic_write_bytes(path, surge_wt_bytes(frames), overwrite=overwrite)


def read_surge_wt(path) -> tuple[np.ndarray, int]:
    """Read a float32 Surge ``.wt`` file.

    Returns
    -------
    frames : (frames, frame_size) float32
    flags : int

    Raises
    ------
    ValueError
        Not a ``vawt`` file, int16 or sample-mode flags, or a size that does not match the header.
    """
    raw = Path(path).read_bytes()
    if len(raw) < SURGE_HEADER.size:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for a Surge .wt header")
    tag, frame_size, n_frames, flags = SURGE_HEADER.unpack_from(raw)
    if tag != SURGE_TAG:
        raise ValueError(f"{path}: tag {tag!r} is not {SURGE_TAG!r}; not a Surge wavetable")
    if flags & ~0x02:
        raise ValueError(
            f"{path}: flags 0x{flags:04x} (sample, int16 or metadata) are not supported; only float32 tables"
        )
    expected = SURGE_HEADER.size + 4 * frame_size * n_frames
    if len(raw) < expected:
        raise ValueError(f"{path}: {len(raw)} bytes, header promises {expected}")
    data = np.frombuffer(raw, dtype="<f4", count=frame_size * n_frames, offset=SURGE_HEADER.size)
    return data.reshape(n_frames, frame_size).astype(np.float32), flags


def write_wavetable(
    path, frames, *, table_format: str, name: str, interpolation: int = 0, overwrite: bool = False
) -> Path:
    """Write a table in one of :data:`WAVETABLE_FORMATS` (``serum``, ``vital``, ``surge``).

    ``interpolation`` is Serum's digit (ignored by the other formats); ``name`` goes into the Vital
    table.

    Raises
    ------
    ValueError
        Unknown format, or any error of the chosen writer.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if table_format == "serum":
        return write_serum_wav(path, frames, interpolation=interpolation, overwrite=overwrite)
    if table_format == "vital":
        return write_vitaltable(path, frames, name=name, overwrite=overwrite)
    if table_format == "surge":
        return write_surge_wt(path, frames, overwrite=overwrite)
    raise ValueError(f"table_format must be one of {WAVETABLE_FORMATS}, got {table_format!r}")
