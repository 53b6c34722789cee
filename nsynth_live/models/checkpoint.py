"""Versioned checkpoint files.

- SING: ``{format_version, model, config, instrument_names, state_dict}`` (:func:`save_sing`, :func:`load_sing`).
- Generic (WaveNet autoencoder and later models): :func:`save_checkpoint` / :func:`load_checkpoint`,
  layout below, with :func:`sha256_of_file` to check published weights.

Generic layout (``format_version`` 1)::

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

from nsynth_live.models.sing import Sing
from nsynth_live.models.sing_configs import SingConfig

SING_CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, of another model or of an unknown format version."""


def save_atomic(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_sing(sing: Sing, instrument_names: list[str], path: str | os.PathLike, **extra) -> None:
    """Write an inference checkpoint of ``sing`` (sequence generator + decoder, fp32)."""
    save_atomic(
        {
            "format_version": SING_CHECKPOINT_FORMAT_VERSION,
            "model": "sing",
            "config": sing.config.to_dict(),
            "sample_rate": sing.config.sample_rate,
            "hop_length_samples": sing.config.hop_length_samples,
            "instrument_names": list(instrument_names),
            "state_dict": {k: v.detach().cpu().float() for k, v in sing.state_dict().items()},
            **extra,
        },
        path,
    )


def load_sing(path: str | os.PathLike) -> tuple[Sing, list[str]]:
    """Load an inference checkpoint written by :func:`save_sing`.

    Returns
    -------
    sing : Sing, in eval mode on the CPU
    instrument_names : list of str, the instrument table's rows in order

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, not a SING checkpoint, of an unknown format version,
        or its tensors do not fit its config (the message names the tensor and both shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"model checkpoint {path} is corrupt or not a torch file: {exc}") from exc
    if not isinstance(data, dict) or data.get("model") != "sing":
        raise CheckpointError(f"{path} is not a SING checkpoint (no model='sing' entry)")
    version = data.get("format_version")
    if version != SING_CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}; this nsynth-live reads {SING_CHECKPOINT_FORMAT_VERSION}"
        )
    config = SingConfig.from_dict(data["config"])
    sing = Sing(config)
    expected = sing.state_dict()
    found = data["state_dict"]
    for name, tensor in expected.items():
        if name not in found:
            raise CheckpointError(f"{path}: tensor {name} is missing (expected shape {tuple(tensor.shape)})")
        if found[name].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: tensor {name} has shape {tuple(found[name].shape)}, expected {tuple(tensor.shape)}"
            )
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected tensors {unexpected[:5]}")
    sing.load_state_dict(found)
    return sing.eval(), list(data["instrument_names"])


# ---------------------------------------------------------------------------- generic checkpoints
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
    CheckpointError
        (a ValueError) on a hash mismatch, a missing key, an unknown ``format_version`` or another model family.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if expected_sha256 is not None:
        found = sha256_of_file(path)
        if found != expected_sha256.lower():
            raise CheckpointError(
                f"checkpoint {str(path)!r} has sha256 {found}, expected {expected_sha256}; "
                "the file is corrupt or not the published one: download it again"
            )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not a torch file: {exc}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{str(path)!r} is not an nsynth-live checkpoint (top level is {type(payload).__name__})")
    version = payload.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format_version {version!r}; this nsynth-live reads only "
            f"version {CHECKPOINT_FORMAT_VERSION}: upgrade nsynth-live or re-export the checkpoint"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks the keys {missing}")
    if payload["model"] != model:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {payload['model']!r} model, expected {model!r}")
    return payload
