"""A small RIFF/WAVE writer and chunk reader for chunks that audio libraries cannot write.

python-soundfile (libsndfile) reads WAV files well but cannot place custom chunks such as Serum's
``clm `` (or ``smpl``) before ``data``; this module builds the whole file in memory. Reading sample
data stays with soundfile; :func:`read_riff_chunks` only lists chunks (for checks and tests) and
:func:`read_smpl` parses the sampler chunk (root key and loops).

Two sample formats are written: IEEE float32 (wavetables) and 24-bit PCM with a ``smpl`` chunk
(multisample banks: every sampler reads 24-bit PCM, and the ``smpl`` chunk carries the root key and
the sustain loop).

Source: Microsoft/IBM "Multimedia Programming Interface and Data Specifications 1.0" (RIFF, WAVE
``fmt `` chunk, word alignment), WAVE_FORMAT_IEEE_FLOAT = 3 and WAVE_FORMAT_PCM = 1 from the
WAVEFORMATEX registry; the ``smpl`` chunk layout from the same registry's sampler chunk
(36-byte header + 24 bytes per loop, loop end inclusive); ``docs/formats.md`` ("RIFF chunk order")
for chunk order.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from nsynth_live.fileio import atomic_write_bytes

WAVE_FORMAT_PCM = 0x0001  # WAVEFORMATEX format tag of integer PCM samples
WAVE_FORMAT_IEEE_FLOAT = 0x0003  # WAVEFORMATEX format tag of 32-bit float samples
FLOAT32_BITS = 32  # bits per sample
PCM24_BITS = 24  # bits per sample
PCM24_FULL_SCALE = 2**23  # integer value of +1.0 (one past the largest code, 2**23 - 1)
SMPL_HEADER = struct.Struct("<9I")  # manufacturer, product, sample period (ns), MIDI unity note,
#   pitch fraction, SMPTE format, SMPTE offset, number of loops, sampler data bytes: 36 bytes
SMPL_LOOP = struct.Struct("<6I")  # cue id, type, start frame, end frame (inclusive), fraction,
#   play count: 24 bytes
SMPL_LOOP_FORWARD = 0  # loop type 0: forward (1 alternating, 2 backward)
SMPL_PLAY_COUNT_INFINITE = 0  # play count 0: loop until the note is released
MIDI_KEY_MAX = 127


def riff_chunk(chunk_id: bytes, payload: bytes) -> bytes:
    """One RIFF chunk: 4-byte id, little-endian u32 payload size, payload, pad byte if odd.

    Raises
    ------
    ValueError
        If ``chunk_id`` is not 4 ASCII bytes.
    """
    if len(chunk_id) != 4 or not chunk_id.isascii():
        raise ValueError(f"a RIFF chunk id is 4 ASCII bytes, got {chunk_id!r}")
    padding = b"\x00" if len(payload) % 2 else b""
    return chunk_id + struct.pack("<I", len(payload)) + payload + padding


def float32_fmt_payload(*, sample_rate: int, channels: int = 1) -> bytes:
    """16-byte ``fmt `` payload for IEEE float32 samples (format tag 3).

    Raises
    ------
    ValueError
        If ``sample_rate`` or ``channels`` is not a positive integer.
    """
    return _fmt_payload(WAVE_FORMAT_IEEE_FLOAT, FLOAT32_BITS, sample_rate=sample_rate, channels=channels)


def _fmt_payload(format_tag: int, bits: int, *, sample_rate: int, channels: int) -> bytes:
    """16-byte WAVEFORMAT ``fmt `` payload: tag, channels, rate, bytes/s, block align, bits."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if not isinstance(channels, (int, np.integer)) or channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    block_align = channels * bits // 8  # bytes per frame
    return struct.pack("<HHIIHH", format_tag, channels, sample_rate, sample_rate * block_align, block_align, bits)


def float32_wav_bytes(audio, *, sample_rate: int, extra_chunks: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole float32 WAV file: ``RIFF``/``WAVE``, ``fmt ``, the extra chunks in order, ``data``.

    Parameters
    ----------
    audio : (time,) or (time, channels) float
        Samples; written as little-endian float32.
    sample_rate : int
        Hz.
    extra_chunks : sequence of (id, payload)
        Chunks placed between ``fmt `` and ``data`` (the order every reader accepts:
        ``fmt ``, ``smpl``, ``inst``, ``clm ``, ``data``).

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        On non-finite samples, a bad shape or chunk id, or a file over 4 GiB.
    """
    x = _frames(audio, dtype=np.float32)
    fmt = float32_fmt_payload(sample_rate=sample_rate, channels=x.shape[1])
    return _wave_file(fmt, extra_chunks, x.astype("<f4").tobytes())


def _frames(audio, *, dtype) -> np.ndarray:
    """``audio`` as finite ``(time, channels)`` samples, or ValueError."""
    x = np.asarray(audio, dtype=dtype)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"audio must have shape (time,) or (time, channels), got {np.shape(audio)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    return x


def _wave_file(fmt_payload: bytes, extra_chunks, data: bytes) -> bytes:
    """``RIFF``/``WAVE`` with ``fmt ``, the extra chunks in order, then ``data``."""
    body = b"WAVE" + riff_chunk(b"fmt ", fmt_payload)
    for chunk_id, payload in extra_chunks:
        body += riff_chunk(chunk_id, payload)
    body += riff_chunk(b"data", data)
    if len(body) > 0xFFFFFFFF:
        raise ValueError(f"a RIFF file holds at most 4 GiB, this one would be {len(body)} bytes")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_float32_wav(
    path, audio, *, sample_rate: int, extra_chunks: Sequence[tuple[bytes, bytes]] = (), overwrite: bool = False
) -> Path:
    """Write :func:`float32_wav_bytes` atomically (temporary file + ``os.replace``).

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    data = float32_wav_bytes(audio, sample_rate=sample_rate, extra_chunks=extra_chunks)
    return atomic_write_bytes(path, data, overwrite=overwrite)


def read_riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """List the top-level chunks of a RIFF/WAVE file in file order.

    Parameters
    ----------
    data : bytes
        Whole file content.

    Returns
    -------
    list of (id, payload)
        Payloads without their pad byte.

    Raises
    ------
    ValueError
        If the data is not a RIFF/WAVE file or a chunk runs past the end.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file (missing 'RIFF' ... 'WAVE' header)")
    declared_end = 8 + struct.unpack("<I", data[4:8])[0]
    end = min(len(data), declared_end)
    chunks = []
    offset = 12
    while offset + 8 <= end:
        chunk_id = data[offset : offset + 4]
        size = struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        if offset + 8 + size > end:
            raise ValueError(f"chunk {chunk_id!r} at byte {offset} runs past the end of the file")
        chunks.append((chunk_id, data[offset + 8 : offset + 8 + size]))
        offset += 8 + size + (size % 2)
    return chunks


def pcm24_fmt_payload(*, sample_rate: int, channels: int = 1) -> bytes:
    """16-byte ``fmt `` payload for 24-bit integer PCM (format tag 1, 3-byte samples).

    Raises
    ------
    ValueError
        If ``sample_rate`` or ``channels`` is not a positive integer.
    """
    return _fmt_payload(WAVE_FORMAT_PCM, PCM24_BITS, sample_rate=sample_rate, channels=channels)


def smpl_payload(
    *, sample_rate: int, root_key: int, loop_start: int | None = None, loop_end: int | None = None
) -> bytes:
    """Payload of the WAVE ``smpl`` (sampler) chunk: root key and at most one forward loop.

    Layout (all little-endian u32): a 36-byte header - manufacturer 0, product 0, sample period in
    ns ``round(1e9 / sample_rate)``, MIDI unity note ``root_key``, pitch fraction 0, SMPTE format 0,
    SMPTE offset 0, number of loops (0 or 1), sampler data 0 - then per loop 24 bytes: cue id 0,
    type 0 (forward), start frame, END frame INCLUSIVE, fraction 0, play count 0 (infinite).

    Parameters
    ----------
    sample_rate : int
        Hz of the WAV.
    root_key : int
        MIDI note (0..127) at which the sample plays at its recorded pitch.
    loop_start, loop_end : int or None
        Sustain loop in sample frames, ``loop_end`` EXCLUSIVE (this API's convention; the chunk stores
        ``loop_end - 1``). Both None, or both 0 (the :class:`~nsynth_live.data.bank_index.BankSample`
        convention), write no loop.

    Returns
    -------
    bytes
        36 bytes without a loop, 60 with one.

    Raises
    ------
    ValueError
        On a bad sample rate or root key, only one loop bound given, or ``not 0 <= loop_start < loop_end``.

    Notes
    -----
    Source: the WAVE sampler chunk of the Microsoft/IBM RIFF registry;
    ``docs/formats.md`` ("WAV smpl chunk").
    sfizz reads loop 0 and the unity note; Decent Sampler reads the loop markers.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if not isinstance(root_key, (int, np.integer)) or not 0 <= root_key <= MIDI_KEY_MAX:
        raise ValueError(f"root_key must be a MIDI note 0..{MIDI_KEY_MAX}, got {root_key!r}")
    if (loop_start is None) != (loop_end is None):
        raise ValueError(
            f"give both loop_start and loop_end (or neither for no loop), got {loop_start!r} and {loop_end!r}")
    no_loop = loop_start is None or (loop_start == 0 and loop_end == 0)
    if not no_loop and not (0 <= int(loop_start) < int(loop_end) <= 0xFFFFFFFF):
        raise ValueError(
            f"loop needs 0 <= loop_start < loop_end (frames, end exclusive), got {loop_start!r}..{loop_end!r}")
    sample_period_ns = int(round(1e9 / sample_rate))
    header = SMPL_HEADER.pack(0, 0, sample_period_ns, int(root_key), 0, 0, 0, 0 if no_loop else 1, 0)
    if no_loop:
        return header
    loop = SMPL_LOOP.pack(0, SMPL_LOOP_FORWARD, int(loop_start), int(loop_end) - 1, 0, SMPL_PLAY_COUNT_INFINITE)
    return header + loop


def read_smpl(data: bytes) -> dict:
    """Parse a ``smpl`` chunk: from a whole WAV file's bytes, or from the chunk's payload alone.

    Parameters
    ----------
    data : bytes
        A RIFF/WAVE file (starts with ``RIFF``) or a bare ``smpl`` payload.

    Returns
    -------
    dict
        ``root_key`` (int, MIDI unity note), ``pitch_fraction`` (int, fraction of a semitone in units
        of 2**-32), ``sample_period_ns`` (int), ``loops``: a list of dicts with ``start`` (frame),
        ``end`` (frame, EXCLUSIVE: the stored inclusive end + 1), ``end_inclusive`` (as stored),
        ``type`` (0 forward) and ``play_count`` (0 infinite).

    Raises
    ------
    ValueError
        If the file has no ``smpl`` chunk or the chunk is shorter than its declared loops.
    """
    payload = data
    if data[:4] == b"RIFF":
        found = [p for chunk_id, p in read_riff_chunks(data) if chunk_id == b"smpl"]
        if not found:
            raise ValueError("the WAV file has no 'smpl' chunk (no root key or loop stored)")
        payload = found[0]
    if len(payload) < SMPL_HEADER.size:
        raise ValueError(f"a smpl chunk has a 36-byte header, got {len(payload)} bytes")
    (_, _, period_ns, root_key, fraction, _, _, n_loops, sampler_bytes) = SMPL_HEADER.unpack_from(payload)
    if len(payload) < SMPL_HEADER.size + n_loops * SMPL_LOOP.size:
        raise ValueError(
            f"the smpl chunk declares {n_loops} loops but holds {len(payload)} bytes "
            f"(needs {SMPL_HEADER.size + n_loops * SMPL_LOOP.size})")
    loops = []
    for k in range(n_loops):
        _, loop_type, start, end_inclusive, _, play_count = SMPL_LOOP.unpack_from(
            payload, SMPL_HEADER.size + k * SMPL_LOOP.size)
        loops.append({"start": start, "end": end_inclusive + 1, "end_inclusive": end_inclusive,
                      "type": loop_type, "play_count": play_count})
    return {"root_key": root_key, "pitch_fraction": fraction, "sample_period_ns": period_ns, "loops": loops}


def pcm24_wav_bytes(audio, *, sample_rate: int, extra_chunks: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole 24-bit PCM WAV file: ``RIFF``/``WAVE``, ``fmt ``, the extra chunks in order, ``data``.

    Samples are clipped to [-1, 1 - 2**-23], scaled by 2**23 and rounded to the nearest integer (no
    dither: the rendered notes are far above the 24-bit floor). Reading back with soundfile
    (subtype ``PCM_24``) returns the input within one LSB (2**-23).

    Parameters
    ----------
    audio : (time,) or (time, channels) float
        Samples in [-1, 1); values outside are clipped.
    sample_rate : int
        Hz.
    extra_chunks : sequence of (id, payload)
        Chunks placed between ``fmt `` and ``data``, e.g. ``[(b"smpl", smpl_payload(...))]`` (the
        order every reader accepts: ``fmt ``, ``smpl``, ``inst``, ``clm ``, ``data``).

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        On non-finite samples, a bad shape or chunk id, or a file over 4 GiB.
    """
    x = _frames(audio, dtype=np.float64)
    codes = np.rint(np.clip(x, -1.0, 1.0) * PCM24_FULL_SCALE)
    codes = np.clip(codes, -PCM24_FULL_SCALE, PCM24_FULL_SCALE - 1).astype("<i4")  # (time, channels)
    # little-endian 3-byte samples: the low three bytes of each little-endian int32
    data = codes.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    return _wave_file(pcm24_fmt_payload(sample_rate=sample_rate, channels=x.shape[1]), extra_chunks, data)


def write_pcm24_wav(
    path, audio, *, sample_rate: int, extra_chunks: Sequence[tuple[bytes, bytes]] = (), overwrite: bool = False
) -> Path:
    """Write :func:`pcm24_wav_bytes` atomically (temporary file + ``os.replace``).

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        As :func:`pcm24_wav_bytes`.
    """
    data = pcm24_wav_bytes(audio, sample_rate=sample_rate, extra_chunks=extra_chunks)
    return atomic_write_bytes(path, data, overwrite=overwrite)
