"""Versioned SING checkpoint files: ``{format_version, model, config, instrument_names, state_dict}``."""

from __future__ import annotations

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
