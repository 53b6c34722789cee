"""Rebuilding frozen config dataclasses from the plain dicts stored in checkpoints and model files."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

T = TypeVar("T")


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def config_from_dict(cls: type[T], values: dict) -> T:
    """``cls(**values)`` with JSON lists turned back into tuples.

    Raises
    ------
    ValueError
        Naming unknown keys and listing the valid ones (and whatever ``cls.__post_init__`` raises).
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields are {sorted(known)}")
    return cls(**{key: _tuples(value) for key, value in values.items()})
