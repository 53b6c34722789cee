"""8-bit mu-law companding exactly as the NSynth WaveNet autoencoder uses it.

Source: Magenta ``magenta/models/nsynth/utils.py`` (``mu_law``, ``inv_mu_law``) and
``wavenet/h512_bo16.py`` (network input ``q / 128``, softmax target ``q + 128``); NSynth paper
(Engel et al. 2017, section 3.1). The binning is Magenta's *floor* binning, which differs from
torchaudio's and librosa's mu-law: do not compare against those.

Conventions
-----------
- ``q``: signed mu-law code, integer in ``[-128, 127]``.
- network input: ``q / 128`` in ``[-1, 127/128]`` (both encoder and decoder see quantised audio).
- class index (softmax target): ``q + 128`` in ``[0, 255]``.
- decoding: bin centre ``(q + 0.5) / 128`` through the inverse mu-law, except ``q = 0`` -> ``0.0``.

Every function accepts a ``numpy.ndarray`` (or anything ``np.asarray`` takes) or a
``torch.Tensor`` and returns the same kind, on the same device. Computation is done in float64,
so numpy and torch agree bit for bit on the code.
"""

from __future__ import annotations

import math

import numpy as np

MU_LAW_MU = 255  # compression parameter, Magenta utils.mu_law default
MU_LAW_CLASSES = 256  # softmax classes: 8-bit codes
MU_LAW_CODE_MIN = -128  # smallest signed code q
MU_LAW_CODE_MAX = 127  # largest signed code q (x = +1.0 would give 128: clamped)
MU_LAW_INPUT_SCALE = 128.0  # network input = q / 128, Magenta h512_bo16


def _is_torch(value) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return isinstance(value, torch.Tensor)


def mu_law_encode(audio):
    """Quantise audio in ``[-1, 1]`` to signed 8-bit mu-law codes with Magenta's floor binning.

    ``q = floor(128 * sign(x) * ln(1 + 255 |x|) / ln(256))``, clamped to ``[-128, 127]``: the clamp
    only changes ``x = +1.0`` (which would give 128, an out-of-range class 256).

    Parameters
    ----------
    audio : numpy.ndarray or torch.Tensor, any shape, float
        Samples, nominally in ``[-1, 1]``; values beyond are clamped to the extreme codes.

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape, int64
        Signed codes ``q`` in ``[-128, 127]``.

    Raises
    ------
    ValueError
        If ``audio`` contains NaN or infinity.
    """
    if _is_torch(audio):
        import torch

        x = audio.to(torch.float64)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("audio contains NaN or infinity; mu-law needs finite samples in [-1, 1]")
        x = x.clamp(-1.0, 1.0)
        y = torch.sign(x) * torch.log1p(MU_LAW_MU * x.abs()) / math.log1p(MU_LAW_MU)
        q = torch.floor(y * MU_LAW_INPUT_SCALE)
        return q.clamp(MU_LAW_CODE_MIN, MU_LAW_CODE_MAX).to(torch.int64)
    x = np.asarray(audio, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinity; mu-law needs finite samples in [-1, 1]")
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU_LAW_MU * np.abs(x)) / math.log1p(MU_LAW_MU)
    q = np.floor(y * MU_LAW_INPUT_SCALE)
    return np.clip(q, MU_LAW_CODE_MIN, MU_LAW_CODE_MAX).astype(np.int64)


def mu_law_decode(codes):
    """Audio value of each signed mu-law code: the inverse mu-law of the bin centre.

    ``y = (q + 0.5) / 128``; ``x = sign(y) * ((1 + 255) ** |y| - 1) / 255``; ``q = 0`` gives exactly
    ``0.0`` (Magenta ``inv_mu_law``).

    Parameters
    ----------
    codes : numpy.ndarray or torch.Tensor, any shape, integer
        Signed codes ``q`` in ``[-128, 127]``.

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape, float32
        Audio samples in ``(-1, 1)``.

    Raises
    ------
    ValueError
        If a code lies outside ``[-128, 127]`` (class indices ``0..255`` must go through
        :func:`mu_law_class_to_code` first).
    """
    if _is_torch(codes):
        import torch

        q = codes.to(torch.float64)
        if q.numel() and (q.min() < MU_LAW_CODE_MIN or q.max() > MU_LAW_CODE_MAX):
            raise ValueError(
                f"mu-law codes must lie in [{MU_LAW_CODE_MIN}, {MU_LAW_CODE_MAX}], got "
                f"[{int(q.min())}, {int(q.max())}]; convert class indices with mu_law_class_to_code"
            )
        y = (q + 0.5) / MU_LAW_INPUT_SCALE
        x = torch.sign(y) * torch.expm1(y.abs() * math.log1p(MU_LAW_MU)) / MU_LAW_MU
        return torch.where(q == 0, torch.zeros_like(x), x).to(torch.float32)
    q = np.asarray(codes).astype(np.float64)
    if q.size and (q.min() < MU_LAW_CODE_MIN or q.max() > MU_LAW_CODE_MAX):
        raise ValueError(
            f"mu-law codes must lie in [{MU_LAW_CODE_MIN}, {MU_LAW_CODE_MAX}], got "
            f"[{int(q.min())}, {int(q.max())}]; convert class indices with mu_law_class_to_code"
        )
    x = _expand(np.asarray((q + 0.5) / MU_LAW_INPUT_SCALE))
    return np.where(q == 0, 0.0, x).astype(np.float32)


def _expand(y: np.ndarray) -> np.ndarray:
    """Inverse mu-law of compressed values ``y`` in ``[-1, 1]`` (float64 numpy)."""
    return np.sign(y) * np.expm1(np.abs(y) * math.log1p(MU_LAW_MU)) / MU_LAW_MU


def mu_law_class_edges() -> np.ndarray:
    """Bounds of each softmax class in the audio domain, for Magenta's floor binning.

    Class ``c = q + 128`` holds the samples that :func:`mu_law_encode` maps to code ``q``: those
    whose compressed value lies in ``[q/128, (q+1)/128)``, so the class covers
    ``[edges[c], edges[c + 1])``. The outer edges are ``-inf`` and ``+inf`` (encoding clamps).

    Returns
    -------
    numpy.ndarray, float64, shape (257,)
        Increasing edges; ``edges[128] == 0.0``.
    """
    edges = _expand(np.arange(MU_LAW_CODE_MIN, MU_LAW_CODE_MAX + 2) / MU_LAW_INPUT_SCALE)
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def mu_law_code_to_input(codes):
    """Network input of signed codes: ``q / 128`` as float32 (Magenta h512_bo16 ``x_scaled``).

    Parameters
    ----------
    codes : numpy.ndarray or torch.Tensor, any shape, integer in ``[-128, 127]``

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape, float32, in ``[-1, 127/128]``
    """
    if _is_torch(codes):
        import torch

        return codes.to(torch.float32) / MU_LAW_INPUT_SCALE
    return (np.asarray(codes).astype(np.float32) / np.float32(MU_LAW_INPUT_SCALE)).astype(np.float32)


def mu_law_code_to_class(codes):
    """Softmax class index of signed codes: ``q + 128`` in ``[0, 255]`` (int64)."""
    if _is_torch(codes):
        import torch

        return codes.to(torch.int64) - MU_LAW_CODE_MIN
    return np.asarray(codes).astype(np.int64) - MU_LAW_CODE_MIN


def mu_law_class_to_code(classes):
    """Signed code of softmax class indices: ``c - 128`` (int64). Inverse of :func:`mu_law_code_to_class`."""
    if _is_torch(classes):
        import torch

        return classes.to(torch.int64) + MU_LAW_CODE_MIN
    return np.asarray(classes).astype(np.int64) + MU_LAW_CODE_MIN
