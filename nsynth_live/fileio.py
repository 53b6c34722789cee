"""Atomic file output: a reader never sees a half-written file, and a killed job leaves no partial one
under the final name (offline jobs resume by skipping files that exist)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without error, rename it onto ``path``.

    Parameters
    ----------
    path : path
        Destination. Its folder is created if missing.
    overwrite : bool
        Replace an existing file (default). If False and ``path`` exists, raise before writing.
    suffix : str
        Suffix of the temporary file (a job can find its own leftovers by it).

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False (the message names ``--force``).
    """
    destination = Path(path)
    if not overwrite and destination.exists():
        raise FileExistsError(f"{destination} already exists; pass --force (overwrite=True) to replace it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=suffix, dir=destination.parent)
    os.close(handle)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        yield Path(temporary)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; refuse an existing file unless ``overwrite``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    with atomic_output(path, overwrite=overwrite) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (replacing an existing file)."""
    return atomic_write_bytes(path, json.dumps(obj, indent=1).encode("utf-8"), overwrite=True)


def sha256_of_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk_bytes`` blocks (1 MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()
