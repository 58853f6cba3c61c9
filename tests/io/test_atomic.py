"""evdet.io.atomic: complete or absent, never half-written; temporaries recognised and cleaned up."""

from __future__ import annotations

import os

import pytest

from evdet.io.atomic import (
    TMP_MARK,
    AtomicTarget,
    atomic_open,
    atomic_path,
    is_temporary,
    remove_stale_temporaries,
    temporary_name,
)


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if is_temporary(p))


def test_atomic_open_writes_and_replaces(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    with atomic_open(path, "w") as f:
        f.write("new")
        assert path.read_text() == "old"  # the destination is untouched until the end
        assert len(_temporaries(tmp_path)) == 1
    assert path.read_text() == "new"
    assert not _temporaries(tmp_path)


def test_exception_keeps_destination_and_removes_temporary(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"keep")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(path, "wb") as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"keep"
    assert not _temporaries(tmp_path)
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"x")
        raise RuntimeError
    assert not (tmp_path / "new.bin").exists() and not _temporaries(tmp_path)


def test_temporary_names(tmp_path):
    plain = temporary_name(tmp_path / "rec.h5")
    kept = temporary_name(tmp_path / "demo.mp4", keep_suffix=True)
    assert plain.parent == tmp_path and plain.name.startswith(".rec.h5" + TMP_MARK)
    assert plain.suffix != ".h5"  # a search for *.h5 never finds a temporary
    assert kept.suffix == ".mp4" and is_temporary(kept) and is_temporary(plain)
    assert not is_temporary(tmp_path / "rec.h5") and temporary_name(tmp_path / "rec.h5") != plain
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_folder_target_replaces_whole_folder(tmp_path):
    dst = tmp_path / "frames"
    dst.mkdir()
    (dst / "old.png").write_bytes(b"o")
    with AtomicTarget(dst) as target:
        target.tmp.mkdir()
        (target.tmp / "frame_0.png").write_bytes(b"n")
    assert sorted(p.name for p in dst.iterdir()) == ["frame_0.png"]
    assert not _temporaries(tmp_path)


def test_commit_without_content_raises_and_abort_is_idempotent(tmp_path):
    target = AtomicTarget(tmp_path / "x.npy")
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        target.commit()
    target.abort()
    target.abort()
    assert not (tmp_path / "x.npy").exists()


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    path = tmp_path / "a.h5"
    dead = tmp_path / f".a.h5{TMP_MARK}999999999-dead"
    alive = tmp_path / f".a.h5{TMP_MARK}{os.getppid()}-live"  # the parent process runs
    other = tmp_path / f".b.h5{TMP_MARK}999999999-dead"
    for p in (dead, alive, other):
        p.write_bytes(b"junk")
    assert remove_stale_temporaries(path) == [dead]
    assert alive.exists() and other.exists()
    dead.write_bytes(b"junk")
    with atomic_open(path) as f:  # a successful write cleans its own destination's leftovers
        f.write(b"ok")
    assert not dead.exists() and alive.exists() and other.exists() and path.read_bytes() == b"ok"
