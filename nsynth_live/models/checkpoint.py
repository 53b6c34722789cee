"""Versioned checkpoint files: ``{format_version, model, config, state_dict, sample_rate,
hop_length_samples, extra}`` written atomically, checked on load (format version, model family,
optional sha256, every tensor's name and shape)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from nsynth_live.fileio import atomic_output, sha256_of_file  # sha256_of_file: re-exported

SING_MODEL_NAME = "sing"


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, of another model or of an unknown format version."""


def save_sing(sing, instrument_names: list[str], path: str | os.PathLike) -> Path:
    """Write an inference checkpoint of a ``Sing`` (sequence generator + decoder, fp32) with its
    instrument names (the instrument table's rows, in order)."""
    return save_checkpoint(
        path, model=SING_MODEL_NAME, config=sing.config.to_dict(),
        state_dict={k: v.detach().float() for k, v in sing.state_dict().items()},
        sample_rate=sing.config.sample_rate, hop_length_samples=sing.config.hop_length_samples,
        extra={"instrument_names": list(instrument_names)},
    )


def load_sing(path: str | os.PathLike):
    """Load an inference checkpoint written by :func:`save_sing` (SING v1/v2, or model v3 when the
    config's ``architecture`` is ``"harmonic"``).

    Returns
    -------
    sing : Sing or SingHarmonic, in eval mode on the CPU
    instrument_names : list of str

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    CheckpointError
        If it is corrupt, not a SING checkpoint, of an unknown format version, or a tensor is
        missing or mis-shaped (the message names the file, the tensor and both shapes).
    """
    from nsynth_live.models.sing import Sing  # noqa: PLC0415 - models import this module
    from nsynth_live.models.sing_configs import SingHarmonicConfig, sing_config_from_dict  # noqa: PLC0415
    from nsynth_live.models.sing_harmonic import SingHarmonic  # noqa: PLC0415

    payload = load_checkpoint(path, model=SING_MODEL_NAME)
    try:
        config = sing_config_from_dict(payload["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its config does not load: {exc}") from None
    sing = SingHarmonic(config) if isinstance(config, SingHarmonicConfig) else Sing(config)
    try:
        load_state_dict_checked(sing, payload["state_dict"])
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return sing.eval(), list(payload["extra"]["instrument_names"])


def load_state_dict_checked(model: nn.Module, state_dict: dict) -> None:
    """Load tensors, failing on the first missing, unexpected or mis-shaped one with its name and shapes.

    Raises
    ------
    CheckpointError
    """
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state_dict:
            raise CheckpointError(f"tensor {name!r} is missing; expected shape {tuple(tensor.shape)}")
        found = tuple(state_dict[name].shape)
        if found != tuple(tensor.shape):
            raise CheckpointError(f"tensor {name!r} has shape {found}, expected {tuple(tensor.shape)}")
    unexpected = sorted(set(state_dict) - set(expected))
    if unexpected:
        raise CheckpointError(f"unexpected tensors {unexpected[:5]} (of {len(unexpected)}); wrong model config?")
    model.load_state_dict(state_dict)


# ---------------------------------------------------------------------------- generic checkpoints
CHECKPOINT_FORMAT_VERSION = 1
_REQUIRED_KEYS = ("format_version", "model", "config", "state_dict", "sample_rate", "hop_length_samples")


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
    with atomic_output(path) as temporary:
        torch.save(payload, temporary)
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
