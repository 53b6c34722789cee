import os
import stat

import pytest

from nsynth_live.fileio import atomic_output, atomic_write_bytes


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(target, b"first")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"first"
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]  # no temporary left behind


def test_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"x")
    with pytest.raises(FileExistsError, match="--force"):
        atomic_write_bytes(target, b"y")
    atomic_write_bytes(target, b"y", overwrite=True)
    assert target.read_bytes() == b"y"


def test_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
