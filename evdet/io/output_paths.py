"""Where evdet may write: the one output-path policy of every command and library writer.

Rules (every app and every library function that writes outputs applies them before it writes):

1. An output never **is**, **contains** or **lies inside** an input, i.e. a file or folder the command
   reads (recordings, their label files, label maps, dataset split folders, checkpoints).
2. evdet never replaces anything it did not write, with or without ``--overwrite``.
3. evdet replaces its own earlier outputs only when asked (``--overwrite`` / ``overwrite=True``), and only
   those of the same command: ``evdet-demo-video --overwrite`` never replaces a training run's
   checkpoints, ``evdet-detect --overwrite`` never the label files the converter copied.
4. Violations raise :class:`OutputPathError` (a ``ValueError``, exit code 2 in the apps) with a one-line
   message naming the path.

How evdet recognises its own outputs: every file or folder evdet writes is recorded, right after it is
complete, in a manifest ``.evdet-outputs`` in the folder that holds it (one name per line, with the tool
that wrote it); an existing path is evdet's when its name is listed there (hidden temporaries of interrupted
writes, :mod:`evdet.io.atomic`, are evdet's too). Only an evdet command lists a name, so ground truth,
recordings and other people's files are never listed. The manifest is plain text: deleting it makes evdet
treat the folder's files as foreign. A manifest that is a link or a folder is refused, not followed, and so
are output names with a line break or a tab (they would forge manifest lines). Files written by evdet
versions without the manifest are foreign too (remove them yourself). A crash between the end of a write and
its record leaves an unlisted file: the next run refuses to replace it (the safe side), unless it is
identical to what would be written (e.g. a label file copied again by the converter).

- :func:`check_outside_inputs`: rule 1.
- :func:`check_output`: rules 1-3 for one path (call before the work that writes it);
  :func:`check_written_by`: rule 3's same-command test alone.
- :func:`record_output`: list a finished output in the manifest; :func:`record_contents`: everything in a
  finished folder output, and :func:`check_replaceable`: nothing else is in it before it is replaced.
- :func:`claim_outputs`: check several paths, then record them at once (for folders that a library such
  as Lightning fills later, e.g. a training run).
- :func:`output_folder`: a folder that a command fills with files (created when missing).
- :func:`written_by_evdet`, :func:`written_by`: the manifest test above, and the command it names.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from evdet.io.atomic import is_temporary

__all__ = [
    "MANIFEST_NAME",
    "OutputPathError",
    "check_output",
    "check_outside_inputs",
    "check_replaceable",
    "check_written_by",
    "claim_outputs",
    "output_folder",
    "record_contents",
    "record_output",
    "written_by",
    "written_by_evdet",
]

#: Name of the manifest file listing what evdet wrote in a folder.
MANIFEST_NAME = ".evdet-outputs"
_HEADER = "# files and folders written here by evdet (it replaces only these, and only with --overwrite)\n"


class OutputPathError(ValueError):
    """An output path that evdet refuses to write (the message says why, in one line)."""


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def check_outside_inputs(output: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Rule 1: ``output`` is not an input, does not contain one and does not lie inside one.

    Paths are compared after resolving symbolic links, so a link to an input counts as the input.

    Raises:
        OutputPathError: naming the output and the input.
    """
    out = _real(output)
    for item in inputs:
        inp = _real(item)
        if out == inp:
            raise OutputPathError(f"output {output} is the input {item}; choose another output path")
        if out in inp.parents:
            raise OutputPathError(f"output {output} contains the input {item}; choose an output outside "
                                  "the inputs")
        if inp in out.parents:
            raise OutputPathError(f"output {output} lies inside the input folder {item}; choose an output "
                                  "outside the inputs")


def _check_name(path: Path) -> None:
    """A name with a line break or a tab would forge manifest lines (``"x\\nvictim.npy"`` would list
    ``victim.npy``): such outputs are refused."""
    if "\t" in path.name or len(f"{path.name}x".splitlines()) != 1:
        raise OutputPathError(f"output name {path.name!r} contains a line break or tab; choose another name")


def _manifest_path(folder: Path) -> Path:
    """The manifest of ``folder``, refused when it exists but is not a plain file (a link could make evdet
    append to, or trust, a file elsewhere; a folder cannot be read)."""
    manifest = folder / MANIFEST_NAME
    try:
        mode = os.lstat(manifest).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return manifest
    if not stat.S_ISREG(mode):
        raise OutputPathError(f"{manifest}: {MANIFEST_NAME} is not a plain file (a link or a folder); "
                              "remove it, evdet then treats the folder's files as foreign")
    return manifest


def _manifest(folder: Path) -> dict[str, str]:
    """``{name: tool}`` of the manifest of ``folder`` (empty when there is none). Names are read back
    exactly as written, undecodable bytes included (``surrogateescape``)."""
    try:
        text = _manifest_path(folder).read_text(encoding="utf-8", errors="surrogateescape")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    entries = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, tool = line.partition("\t")
            entries[name] = tool or "evdet"
    return entries


def written_by_evdet(path: str | os.PathLike) -> bool:
    """True when ``path`` is listed in the manifest of its folder (or is an evdet temporary)."""
    return written_by(path) is not None


def written_by(path: str | os.PathLike) -> str | None:
    """The command that wrote ``path`` as its manifest records it (``"evdet"`` when unnamed, and for
    evdet temporaries), or None when evdet did not write it."""
    path = Path(path)
    return "evdet" if is_temporary(path) else _manifest(path.parent).get(path.name)


def _append(folder: Path, names: list[str], tool: str) -> None:
    """List ``names`` (not yet listed) in the manifest of ``folder`` with one ``write`` on a file opened for
    appending, so processes writing into the same folder at once (parallel conversion) never mix lines."""
    manifest = _manifest_path(folder)
    known = _manifest(folder)
    for name in names:
        _check_name(folder / name)
    lines = "".join(f"{n}\t{tool}\n" for n in dict.fromkeys(names) if n not in known)
    if not lines:
        return
    try:  # O_NOFOLLOW: a link put in place since the check above is refused, never followed
        fd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise OutputPathError(f"cannot record {names[0]} in {manifest}: {err.strerror}") from err
    try:
        if os.fstat(fd).st_size == 0:
            lines = _HEADER + lines
        os.write(fd, lines.encode("utf-8", errors="surrogateescape"))
    finally:
        os.close(fd)


def record_output(path: str | os.PathLike, tool: str = "evdet") -> None:
    """List ``path`` in the manifest of its folder (created with the folder when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _append(path.parent, [path.name], tool)  # refuses a name that would forge manifest lines


def record_contents(folder: str | os.PathLike, tool: str) -> None:
    """List every file and folder below ``folder`` (a finished folder output, e.g. PNG frames or an RVT
    sequence folder) in the manifests of their folders, one append per folder, so that replacing
    ``folder`` later can tell its files from ones put there since (:func:`check_replaceable`)."""
    for here, dirs, files in os.walk(folder):
        names = [n for n in sorted(dirs + files) if n != MANIFEST_NAME]
        if names:
            _append(Path(here), names, tool)


def check_replaceable(folder: str | os.PathLike) -> None:
    """Before an evdet folder output is replaced as a whole: everything below it was written by evdet
    (:func:`record_contents`); a file put there since, by a user or another program, is never deleted.

    Raises:
        OutputPathError: naming the first path below ``folder`` that evdet did not write.
    """
    for here, dirs, files in os.walk(folder):
        here = Path(here)
        known = _manifest(here)  # read once per folder, not once per file
        for name in sorted(dirs + files):
            if name != MANIFEST_NAME and name not in known and not is_temporary(here / name):
                raise OutputPathError(f"{here / name} was not written by evdet: replacing {folder} would "
                                      "delete it; move it out first")
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]


def check_written_by(path: str | os.PathLike, tool: str) -> None:
    """Rule 3's "same command": ``path`` (written by evdet) was recorded by ``tool`` or by an unnamed
    ``evdet``.

    Raises:
        OutputPathError: another command wrote it (named).
    """
    writer = written_by(path)
    if writer not in (tool, "evdet"):
        raise OutputPathError(f"{path} was written by {writer}: {tool} does not replace it, even with "
                              "--overwrite; choose another output")


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                 overwrite: bool = False, folder: bool = False, tool: str | None = None) -> None:
    """Rules 1-3 for one output: outside the inputs, and either absent or evdet's own with ``overwrite``.

    Args:
        path: the file (or, with ``folder``, the folder written as a whole) to be written.
        inputs: the files and folders the command reads.
        overwrite: an existing output written by evdet may be replaced.
        folder: ``path`` is a folder replaced as a whole (e.g. PNG frames), not a file.
        tool: the command that will write it (as recorded, e.g. ``"evdet-detect"``): with ``overwrite``,
            only an output recorded by this command (or by an unnamed ``evdet``) is replaced. None: any.

    Raises:
        OutputPathError: an input, an existing path of the other kind (file/folder), a path not written by
            evdet, one written by evdet without ``overwrite`` or by another command; the folder that would
            hold it is a file.
    """
    path = Path(path)
    _check_name(path)
    check_outside_inputs(path, inputs)
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputPathError(f"cannot write {path}: {parent} is an existing file, not a folder")
            break
    _manifest_path(path.parent)
    if not (path.exists() or path.is_symlink()):
        return
    if folder and not path.is_dir():
        raise OutputPathError(f"output folder {path} is an existing file")
    if not folder and path.is_dir():
        raise OutputPathError(f"output {path} is an existing folder; give a file name")
    if not written_by_evdet(path):
        raise OutputPathError(f"{path} already exists and was not written by evdet: choose another output "
                              "(evdet never replaces what it did not write)")
    if tool is not None:
        check_written_by(path, tool)
    if not overwrite:
        raise OutputPathError(f"{path} already exists (written by an earlier evdet run); pass --overwrite "
                              "to replace it")
    if folder:
        check_replaceable(path)


def claim_outputs(paths: Iterable[str | os.PathLike], *, tool: str, inputs: Iterable[str | os.PathLike] = (),
                  overwrite: bool = False, folder: bool = False) -> list[Path]:
    """Check every output (:func:`check_output`), then record them all as evdet's (:func:`record_output`),
    so that nothing is recorded unless every output may be written. For outputs that other code fills
    later (a training run's ``checkpoints/`` and ``logs/``); a file evdet writes itself is recorded when
    complete instead.

    Returns:
        the paths, as ``Path``.
    Raises:
        OutputPathError: see :func:`check_output` (nothing is recorded then).
    """
    paths = [Path(p) for p in paths]
    inputs = list(inputs)
    for p in paths:
        check_output(p, inputs=inputs, overwrite=overwrite, folder=folder, tool=tool)
    for p in paths:
        record_output(p, tool)
    return paths


def output_folder(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """A folder that a command fills with files (detections, exports, HDF5 tensors, a training run):
    outside the inputs (rule 1), created when missing. An existing folder is fine: each file written
    into it is claimed on its own (:func:`claim_outputs`), so nothing there is replaced unless evdet
    wrote it.

    Raises:
        OutputPathError: ``path`` overlaps an input or is an existing file.
    """
    path = Path(path)
    check_outside_inputs(path, inputs)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise OutputPathError(f"output folder {path} is an existing file")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"cannot create output folder {path}: {parent} is an existing file")
    path.mkdir(parents=True, exist_ok=True)
    _manifest_path(path)
    return path
