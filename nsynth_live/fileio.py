"""Atomic file output: a reader never sees a half-written file, and a killed job leaves no partial one
under the final name (offline jobs resume by skipping files that exist).

The convention every script follows: a file is written as a hidden temporary in its destination's
folder, named ``.<destination name>.<random><suffix>`` with a suffix of :data:`TEMPORARY_SUFFIXES`
(``.tmp`` unless a writer needs another), and renamed onto the destination when complete. A job
killed mid-write (even ``kill -9``) leaves that temporary behind; the next run of the job removes
its own with :func:`remove_stale_temporaries` before it writes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

# Suffixes of the temporary files of atomic writes, longest first (see the module docstring): .tmp
# by default; .tmp.wav where soundfile picks the format by the name; .partial in older versions.
TEMPORARY_SUFFIXES = (".wav.tmp", ".tmp.wav", ".partial", ".tmp")


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
        Suffix of the temporary file, one of :data:`TEMPORARY_SUFFIXES` (a job finds its own
        leftovers by it: :func:`remove_stale_temporaries`).

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


def temporary_target(name: str) -> str | None:
    """The destination name of a temporary file named ``.<destination>.<random><suffix>`` (see the
    module docstring), or None if ``name`` is not such a file's name."""
    suffix = next((s for s in TEMPORARY_SUFFIXES if name.endswith(s)), None)
    if suffix is None or not name.startswith("."):
        return None
    target, dot, random_part = name[1: len(name) - len(suffix)].rpartition(".")
    return target if dot and target and random_part else None


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is the name of an atomic write's temporary file: ``.<destination>.<random><suffix>``."""
    return temporary_target(name) is not None


def remove_stale_temporaries(folder: str | os.PathLike, *, names: Iterable[str] | None = None) -> list[Path]:
    """Delete the temporaries that killed atomic writes left in ``folder`` (see the module docstring).

    Parameters
    ----------
    folder : path
        Where the job writes. A missing folder has nothing to remove.
    names : iterable of str, optional
        Only the temporaries of these destination file names (for a folder that other jobs or the
        user also write, e.g. the current directory). By default every temporary in the folder: for
        a folder the job owns (run it before writing, while no other job writes there).

    Returns
    -------
    list of Path
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = None if names is None else set(names)
    removed = []
    for path in folder.iterdir():
        target = temporary_target(path.name)
        if target is not None and (wanted is None or target in wanted) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
