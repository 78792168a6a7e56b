"""Atomic writes: a failure never leaves a half-written or missing file."""
import os

import pytest

from tinygrad_scalar.files import write_atomic


def test_write_atomic_writes_text_and_bytes(tmp_path):
    p = tmp_path / "a.txt"
    write_atomic(p, "héllo")
    assert p.read_text(encoding="utf-8") == "héllo"
    write_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["a.txt"]  # no temporary file left behind
    assert p.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "model.json"
    p.write_text("old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(p, "new")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["model.json"]


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*nope.* does not exist"):
        write_atomic(tmp_path / "nope" / "a.txt", "x")
