"""A small RIFF/WAVE writer and chunk reader for chunks that audio libraries cannot write.

python-soundfile (libsndfile) reads WAV files well but cannot place custom chunks such as Serum's
``clm `` (or ``smpl``) before ``data``; this module builds the whole file in memory. Reading sample
data stays with soundfile; :func:`read_riff_chunks` only lists chunks (for checks and tests).

Source: Microsoft/IBM "Multimedia Programming Interface and Data Specifications 1.0" (RIFF, WAVE
``fmt `` chunk, word alignment), WAVE_FORMAT_IEEE_FLOAT = 3 from the WAVEFORMATEX registry;
../shared/reference/export-formats.md for chunk order.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import numpy as np

from nsynth_live.fileio import atomic_write_bytes

WAVE_FORMAT_IEEE_FLOAT = 0x0003  # WAVEFORMATEX format tag of 32-bit float samples
FLOAT32_BITS = 32  # bits per sample


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
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    if not isinstance(channels, (int, np.integer)) or channels <= 0:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    block_align = channels * FLOAT32_BITS // 8  # bytes per frame
    return struct.pack(
        "<HHIIHH", WAVE_FORMAT_IEEE_FLOAT, channels, sample_rate, sample_rate * block_align, block_align, FLOAT32_BITS
    )


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
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"audio must have shape (time,) or (time, channels), got {np.shape(audio)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    body = b"WAVE" + riff_chunk(b"fmt ", float32_fmt_payload(sample_rate=sample_rate, channels=x.shape[1]))
    for chunk_id, payload in extra_chunks:
        body += riff_chunk(chunk_id, payload)
    body += riff_chunk(b"data", x.astype("<f4").tobytes())
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
