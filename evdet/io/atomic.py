"""Atomic writes: every file evdet writes appears complete or not at all.

One mechanism for every writer (boxes, label maps, DAT, HDF5, checkpoints, run configs, exports,
videos): the data go to a temporary name *in the destination folder* (so the final rename never crosses
a filesystem), are flushed to disk (``fsync``), and the temporary is renamed over the destination with
``os.replace`` (atomic on POSIX). On any failure the temporary is removed and the destination is left
as it was. A process killed mid-write leaves at most a hidden temporary (``.<name>.evdet-tmp-…``), which
:func:`is_temporary` recognises and :func:`remove_stale_temporaries` deletes.

Temporary names keep the destination's suffix, so libraries that pick the format by extension (h5py,
OpenCV, ffmpeg) write the same format.

- :func:`atomic_open`: ``with atomic_open(path, "wb") as f: f.write(...)``.
- :func:`atomic_path`: ``with atomic_path(path) as tmp: library_writes(tmp)`` (a file, or a folder).
- :class:`AtomicTarget`: the same for writers that live across calls (``commit()`` / ``abort()``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Self

__all__ = [
    "TMP_MARK",
    "AtomicTarget",
    "CommitOnExit",
    "atomic_open",
    "atomic_path",
    "is_temporary",
    "remove_stale_temporaries",
    "temporary_name",
]

#: Marker in the name of every temporary file evdet writes.
TMP_MARK = ".evdet-tmp-"


def temporary_name(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """A fresh hidden temporary name beside ``path``: ``.<name>.evdet-tmp-<pid>-<hex>``.

    Args:
        keep_suffix: append ``path``'s suffix (for libraries that choose the format by extension, e.g.
            video encoders). Without it the name ends in the token, so a search for recordings by suffix
            (``*.h5``) never finds a temporary.
    """
    path = Path(path)
    token = f"{os.getpid()}-{os.urandom(4).hex()}"
    return path.with_name(f".{path.name}{TMP_MARK}{token}{path.suffix if keep_suffix else ''}")


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a temporary name made by :func:`temporary_name`."""
    name = Path(path).name
    return name.startswith(".") and TMP_MARK in name


def _writer_alive(name: str, prefix: str) -> bool:
    """Whether the process that made temporary ``name`` still runs (its pid is in the name)."""
    pid_text = name[len(prefix):].split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries left beside ``path`` by interrupted writes of ``path``; returns them.

    Only names made by :func:`temporary_name` for this very destination are touched, and only those of
    processes that no longer run (or of this process, outside a write in progress).
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    prefix = f".{path.name}{TMP_MARK}"
    removed = []
    for p in path.parent.iterdir():
        if p.name.startswith(prefix) and not _writer_alive(p.name, prefix):
            _remove(p)
            removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _fsync_file(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(p: Path) -> None:
    """fsync a file, or every file of a folder (and the folder entries)."""
    if p.is_dir():
        for sub in sorted(p.rglob("*")):
            if sub.is_file():
                _fsync_file(sub)
        _fsync_dir(p)
    elif p.exists():
        _fsync_file(p)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CommitOnExit:
    """Context-manager protocol of evdet's atomic writers (:class:`AtomicTarget`, ``DatWriter``,
    ``H5TensorWriter``, ``VideoWriter``): ``with writer:`` returns the writer; a normal exit calls its
    ``close()`` (which commits the output), an exception its ``abort()`` (nothing appears at the
    destination)."""

    def close(self):
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class AtomicTarget(CommitOnExit):
    """A destination written under a temporary name until :meth:`commit`.

    Args:
        path: the destination (a file, or a folder when the writer fills a folder).
        keep_suffix: the temporary name ends with ``path``'s suffix (see :func:`temporary_name`).

    Attributes:
        path: the destination. tmp: the temporary name to write to (nothing is created there yet).

    ``commit()`` fsyncs what was written at ``tmp`` and renames it over ``path`` (a destination folder is
    replaced as a whole: moved aside, the new one renamed in, the old one deleted) and removes the stale
    temporaries of earlier interrupted writes of ``path`` (:func:`remove_stale_temporaries`).
    ``abort()`` deletes ``tmp``. Both are idempotent; as a context manager, an exception aborts and a
    normal exit commits.
    """

    def __init__(self, path: str | os.PathLike, keep_suffix: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temporary_name(self.path, keep_suffix)
        self.done = False

    def commit(self) -> Path:
        """Move the finished temporary into place; returns ``path``.

        Raises:
            FileNotFoundError: nothing was written at ``tmp``.
        """
        if self.done:
            return self.path
        if not self.tmp.exists():
            raise FileNotFoundError(f"atomic write of {self.path}: nothing was written at {self.tmp}")
        _fsync_tree(self.tmp)
        if self.tmp.is_dir() and self.path.is_dir():
            old = temporary_name(self.path)
            os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            _remove(old)
        else:
            if self.tmp.is_dir() and self.path.exists():
                self.path.unlink()
            os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)
        self.done = True
        remove_stale_temporaries(self.path)
        return self.path

    def abort(self) -> None:
        """Delete the temporary; the destination is left as it was."""
        if not self.done:
            _remove(self.tmp)
            self.done = True

    def close(self) -> Path:
        """:meth:`commit` (the name :class:`CommitOnExit` calls on a normal exit)."""
        return self.commit()


@contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to (by any library); committed on normal exit,
    removed on an exception. ``keep_suffix``: see :func:`temporary_name`."""
    target = AtomicTarget(path, keep_suffix)
    try:
        yield target.tmp
    except BaseException:
        target.abort()
        raise
    target.commit()


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing ``path``; on normal exit it is flushed, fsynced and renamed over
    ``path``; on an exception it is removed.

    Args:
        mode: ``"wb"`` or ``"w"`` (text; ``encoding`` default UTF-8).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
