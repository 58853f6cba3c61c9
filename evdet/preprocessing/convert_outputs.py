"""What ``evdet-generate-hdf5`` may write, and which existing outputs it keeps (:mod:`evdet.io.output_paths`
applied to conversions).

An existing ``.h5`` output whose stored attributes match the settings of the run is kept (resuming). One
converted with other settings, or in the other ``max_duration`` layout, is a conflict: refused before
anything is written, or, with ``overwrite`` and only when evdet wrote it, removed with its label file so
that the recording is converted anew. Each output ``.h5`` and its ``_bbox.npy`` are claimed (recorded as
evdet's) before they are written.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evdet.io.boxes import load_boxes, recording_stem, save_boxes
from evdet.io.h5 import H5TensorReader
from evdet.io.label_map import LABEL_MAP_FILENAME, load_label_map, save_label_map
from evdet.io.output_paths import (
    OutputPathError,
    check_output,
    check_written_by,
    record_output,
    written_by,
    written_by_evdet,
)
from evdet.preprocessing.registry import get_representation

if TYPE_CHECKING:
    from evdet.preprocessing.convert import ConversionConfig

TOOL = "evdet-generate-hdf5"


def _ours(path: Path) -> bool:
    """``path`` was written by this command (or by an unnamed evdet), so it may replace it (rule 3)."""
    return written_by(path) in (TOOL, "evdet")


def source_identity(recording: Path) -> tuple[str, int]:
    """What an output stores of the recording it was converted from: ``(file name, size in bytes)``. The
    size tells a recording made anew under the same name (another seed, another drive) from the same one
    copied elsewhere (a copy keeps it; modification times do not survive a copy)."""
    return recording.name, recording.stat().st_size


def stored_settings_mismatch(path: Path, cfg: ConversionConfig, start_ts: int,
                             max_frames: int | None = None, recording: Path | None = None) -> str | None:
    """Why the existing HDF5 output ``path`` differs from what ``cfg`` would write there from ``recording``
    (frame 0 at ``start_ts``, at most ``max_frames`` frames), read from its stored attributes; None when it
    matches. Outputs of evdet versions that stored no source are compared on the settings alone."""
    try:
        r = H5TensorReader(path)
    except (OSError, ValueError) as exc:
        return f"not a readable evdet HDF5 file ({exc})"
    now = None if recording is None or r.source is None else source_identity(recording)[1]
    if now is not None and r.source[1] != now:
        return f"from another {r.source[0]}: {r.source[1]} bytes then, {now} now"
    rep = get_representation(cfg.representation)
    pairs = {"representation": (r.representation, rep.name), "delta_t": (r.delta_t, cfg.delta_t),
             "parameters": (r.params, dict(cfg.params)), "channels": (r.shape[0], rep.channels(**cfg.params)),
             "store_as_uint8": (r.store_as_uint8, cfg.store_as_uint8), "start_ts": (r.start_ts, start_ts)}
    if cfg.store_as_uint8:
        pairs["uint8_scale"] = (r.uint8_scale, cfg.uint8_scale)
    if cfg.height_width is None:
        pairs["downsampling_factor"] = (r.downsampling_factor, int(cfg.downsampling_factor or 0))
    else:
        pairs["frame size"] = (tuple(r.shape[1:]), tuple(cfg.height_width))
    diffs = [f"{k} {got!r} stored, {want!r} asked" for k, (got, want) in pairs.items() if got != want]
    if max_frames is not None and r.num_frames > max_frames:
        diffs.append(f"{r.num_frames} frames stored, parts of {max_frames} asked")
    return "; ".join(diffs) or None


def output_conflicts(path: Path, out_dir: Path, cfg: ConversionConfig) -> list[tuple[Path, str]]:
    """Existing outputs of recording ``path`` in ``out_dir`` that this conversion would not write as they
    are (other settings, or the other ``max_duration`` layout), with the reason."""
    stem = recording_stem(path)
    whole = out_dir / f"{stem}.h5"
    part_files = sorted(p for p in out_dir.glob(f"{glob.escape(stem)}_part[0-9][0-9][0-9].h5") if p.is_file())
    out = []
    if cfg.max_duration is None:
        if whole.exists():
            why = stored_settings_mismatch(whole, cfg, 0, recording=path)
            if why:
                out.append((whole, why))
        out += [(p, "converted with max_duration (in parts)") for p in part_files]
    else:
        fpp = max(1, cfg.max_duration // cfg.delta_t)
        for p in part_files:
            why = stored_settings_mismatch(p, cfg, int(p.stem[-3:]) * fpp * cfg.delta_t, fpp, recording=path)
            if why:
                out.append((p, why))
        if whole.exists():
            out.append((whole, "converted without max_duration (one file per recording)"))
    return out


def refuse_conflicts(conflicts: list[tuple[Path, str]], overwrite: bool) -> None:
    """Raise ``OutputPathError`` unless every conflicting output was written by this command and
    ``overwrite``."""
    foreign = [(p, why) for p, why in conflicts if not written_by_evdet(p)]
    more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
    if foreign:
        p, why = foreign[0]
        raise OutputPathError(f"{p} exists with other settings ({why}) and was not written by evdet: "
                              f"choose another output folder{more}")
    for p, _ in conflicts:
        check_written_by(p, TOOL)  # e.g. evdet-make-synthetic's HDF5 files are not this command's
    if conflicts and not overwrite:
        p, why = conflicts[0]
        raise OutputPathError(f"{p} was converted with other settings ({why}); pass --overwrite to "
                              f"reconvert{more}")


def remove_conflicts(path: Path, out_dir: Path, cfg: ConversionConfig) -> None:
    """With ``overwrite``: delete the outputs of ``path`` that were converted with other settings (this
    command's only, with the label files it wrote), so that the recording is converted anew."""
    conflicts = output_conflicts(path, out_dir, cfg)
    refuse_conflicts(conflicts, cfg.overwrite)
    for p, _ in conflicts:
        labels = p.with_name(p.stem + "_bbox.npy")
        if labels.exists() and _ours(labels):
            labels.unlink()
        p.unlink()


def check_unit(h5: Path, labels: Path, has_labels: bool) -> None:
    """Before ``h5`` is written: it must not exist (conflicts were removed), and a label file of this
    unit that this command wrote may be rewritten (the unit is unfinished while ``h5`` is missing); its
    stale labels of a recording that now has none are removed. Any other file there would be read as the
    labels of ``h5``: refused. A label file that is not this command's is checked when the labels are
    saved (:func:`save_unit_labels`).

    Raises:
        OutputPathError: ``h5`` exists, or ``labels`` exists without labels and is not this command's.
    """
    check_output(h5)
    if not has_labels and (labels.exists() or labels.is_symlink()):
        check_output(labels, overwrite=True, tool=TOOL)  # raises unless this command wrote it
        labels.unlink()


def save_unit_labels(path: Path, boxes: np.ndarray) -> None:
    """Save the labels of a unit and record them; an existing identical file is kept as it is (e.g. one
    left unrecorded by a crash, or a foreign copy of the same labels), a different one is replaced only
    when this command wrote it.

    Raises:
        OutputPathError: a different label file that evdet did not write, or that another command wrote.
    """
    if path.is_file() and not _ours(path):
        try:
            same = np.array_equal(load_boxes(path), boxes)
        except (OSError, ValueError):
            same = False
        if not same:
            check_output(path, overwrite=True, tool=TOOL)  # raises: foreign, or another command's
        record_output(path, TOOL)
        return
    save_boxes(path, boxes)
    record_output(path, TOOL)


def copy_label_maps(label_maps: list[Path], output_dir: Path, overwrite: bool) -> None:
    """Copy the inputs' label map (validated, atomically) to ``output_dir``; several inputs must agree. An
    existing equal map is kept; a different one is replaced only if evdet wrote it and ``overwrite``."""
    if not label_maps:
        return
    maps = [load_label_map(lm) for lm in label_maps]
    for lm, other in zip(label_maps[1:], maps[1:], strict=True):
        if other != maps[0]:
            raise ValueError(f"the inputs have different label maps: {label_maps[0]} and {lm}")
    target = output_dir / LABEL_MAP_FILENAME
    if target.is_file() and not target.is_symlink():
        try:
            if load_label_map(target) == maps[0]:
                return
        except ValueError:
            pass
    check_output(target, overwrite=overwrite, tool=TOOL)
    save_label_map(target, maps[0])
    record_output(target, TOOL)
