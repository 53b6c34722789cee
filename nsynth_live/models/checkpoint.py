"""Versioned model checkpoints: one ``torch.save``-d dict, written atomically, with a hash check.

File layout (``format_version`` 1)::

    {
        "format_version": 1,
        "model": str,                 # model family, e.g. "wavenet_autoencoder"
        "config": dict,               # the model's frozen config as a plain dict
        "state_dict": dict[str, Tensor],
        "sample_rate": int,           # Hz
        "hop_length_samples": int,    # samples per frame
        "extra": dict,                # optional: optimizer state, step, provenance ...
    }

Loaders refuse other ``format_version`` values and files of another ``model`` family.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch

CHECKPOINT_FORMAT_VERSION = 1
_REQUIRED_KEYS = ("format_version", "model", "config", "state_dict", "sample_rate", "hop_length_samples")


def sha256_of_file(path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    path,
    *,
    model: str,
    config: dict,
    state_dict: dict,
    sample_rate: int,
    hop_length_samples: int,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file in the same folder, then ``os.replace``).

    Parameters
    ----------
    path : str or Path
        Destination; its folder is created if needed. An existing file is replaced (callers that
        must not overwrite check first).
    model : str
        Model family name stored for the loader to check.
    config : dict
        Plain-dict config (``dataclasses.asdict``).
    state_dict : dict of str to torch.Tensor
        Tensors are stored on CPU.
    sample_rate : int
        Hz.
    hop_length_samples : int
        Samples per frame.
    extra : dict, optional
        Anything else ``torch.save`` can store.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model": model,
        "config": dict(config),
        "state_dict": {name: tensor.detach().cpu() for name, tensor in state_dict.items()},
        "sample_rate": int(sample_rate),
        "hop_length_samples": int(hop_length_samples),
        "extra": dict(extra or {}),
    }
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            torch.save(payload, temp_file)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
    return path


def load_checkpoint(path, *, model: str, expected_sha256: str | None = None, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` and check it.

    Parameters
    ----------
    path : str or Path
    model : str
        Expected model family.
    expected_sha256 : str, optional
        Hex digest the file must have (pretrained weights ship with theirs).
    map_location : str or torch.device
        Where tensors are loaded.

    Returns
    -------
    dict
        The payload (see the module docstring).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        On a hash mismatch, a missing key, an unknown ``format_version`` or another model family.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if expected_sha256 is not None:
        found = sha256_of_file(path)
        if found != expected_sha256.lower():
            raise ValueError(
                f"checkpoint {str(path)!r} has sha256 {found}, expected {expected_sha256}; "
                "the file is corrupt or not the published one: download it again"
            )
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict):
        raise ValueError(f"{str(path)!r} is not an nsynth-live checkpoint (top level is {type(payload).__name__})")
    version = payload.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has format_version {version!r}; this nsynth-live reads only "
            f"version {CHECKPOINT_FORMAT_VERSION}: upgrade nsynth-live or re-export the checkpoint"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks the keys {missing}")
    if payload["model"] != model:
        raise ValueError(f"checkpoint {str(path)!r} holds a {payload['model']!r} model, expected {model!r}")
    return payload
