"""Write RVT's preprocessed dataset format (``evdet-generate-hdf5 RAW_DIR OUT_DIR --format rvt --dataset
gen1|gen4``): what uzh-rpg/RVT's ``scripts/genx/preprocess_dataset.py`` writes with its published
settings (stacked histogram, 50 ms windows, 10 bins, cut-off 10; Gen1 ``filter_gen1.yaml``, 1Mpx
``filter_gen4.yaml`` and ``-ds gen4``: half resolution), file for file (layout in
:mod:`evdet.preprocessing.rvt_format`).

Inputs: ``RAW_DIR/{train,val,test}/`` (each optional) with ``<name>_bbox.npy`` label files (legacy ``ts`` /
``confidence`` field names accepted and renamed ``t`` / ``class_confidence``; other fields, types and order
kept: ``labels.npz`` holds boxes in the label file's dtype, as RVT's does) beside their events: RVT's HDF5
mirror ``<name>_td.dat.h5`` (Gen1) / ``<name>_td.h5`` (1Mpx), or the original ``<name>_td.dat`` /
``<name>.dat`` / ``<name>.raw``, all read through :func:`evdet.io.open_events`.

Per sequence (RVT's steps, see :mod:`evdet.preprocessing.rvt_labels` for the label rules):

1. the Gen1 sequences RVT ignores are skipped (nothing written); labels filtered, label frames chosen,
   representation end times computed; a sequence without labels after filtering gets no folder (RVT writes
   one, then deletes it: an existing one is removed);
2. ``labels_v2/labels.npz``, ``labels_v2/timestamps_us.npy``, ``objframe_idx_2_repr_idx.npy`` and the
   representations' ``timestamps_us.npy``;
3. ``event_representations[_ds2_nearest].h5``: for every end time ``T`` the RVT stacked histogram of the
   events with ``T − 50 ms <= t <= T`` (times made non-decreasing by a running maximum over the recording,
   as RVT's reader does), 1Mpx at full resolution then sampled ``[:, 1::2, 1::2]``. The recording is read
   in blocks (never whole).

Crash safety and resuming: every file is written under a temporary name and renamed when complete
(:mod:`evdet.io.atomic`), the representations last, so a sequence is finished exactly when its ``.h5`` exists;
re-running the same command skips finished sequences and redoes the others.

Differences from RVT's script, all where it would stop or misbehave: missing ``val``/``test`` splits are
allowed (RVT asserts all three); only ``*_bbox.npy`` files are label files (RVT takes every ``.npy``); labels
are sorted by ``t`` (stably) when they are not (RVT assumes sorted labels); a failing sequence is reported
and the others are converted (RVT's run stops at the first failure).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evdet.io.atomic import AtomicTarget, atomic_open
from evdet.io.layout import SPLITS
from evdet.io.output_paths import (
    OutputPathError,
    check_replaceable,
    claim_outputs,
    output_folder,
    record_contents,
    written_by_evdet,
)
from evdet.io.read import open_events
from evdet.io.reader import DEFAULT_PIECE_EVENTS
from evdet.preprocessing.convert import run_jobs
from evdet.preprocessing.convert_outputs import TOOL
from evdet.preprocessing.rvt_format import (
    BLOSC_OPTIONS,
    FRAME_TO_REPR_FILE,
    LABELS_DIR,
    LABELS_FILE,
    REPR_DIR,
    RVT_MAX_COUNT,
    RVT_NUM_BINS,
    RVT_WINDOW_MS,
    TIMESTAMPS_FILE,
    repr_dir_name,
    repr_file_name,
    require_blosc,
)
from evdet.preprocessing.rvt_histogram import correct_time, rvt_histogram_windows
from evdet.preprocessing.rvt_labels import (
    RVT_IGNORED_SEQUENCES,
    RVT_SENSOR_SIZE,
    NoLabelsError,
    check_dataset,
    rename_legacy_fields,
    rvt_filter_labels,
    rvt_frame_to_repr,
    rvt_label_frames,
    rvt_repr_timestamps,
)

LABEL_SUFFIX = "_bbox.npy"
EVENT_SUFFIXES = {"gen1": ("_td.dat.h5", "_td.h5", "_td.dat", ".dat", ".raw"),
                  "gen4": ("_td.h5", "_td.dat.h5", "_td.dat", ".dat", ".raw")}
"""Event files tried for ``<name>_bbox.npy``, in order: RVT's mirror name for the dataset first."""
_BLOCK_US = 1_000_000  # events read per block (µs of recording)
_MAX_FRAMES = 32  # representations computed per kernel call


@dataclass(frozen=True)
class RvtJob:
    """One sequence to convert: its label and event files, its output folder, dataset and split."""

    labels: Path
    events: Path
    out_dir: Path
    dataset: str
    train: bool


@dataclass(frozen=True)
class RvtSequencePlan:
    """What RVT writes for one sequence besides the representations (see :mod:`rvt_labels`).

    Attributes:
        labels: boxes of every label frame, in frame order (the label file's dtype).
        label_index: int64 ``[F]`` first row of each frame. frame_ts: int64 ``[F]`` frame times (µs).
        repr_ts: int64 ``[N]`` representation end times (µs). frame_to_repr: int64 ``[F]``.
    """

    labels: np.ndarray
    label_index: np.ndarray
    frame_ts: np.ndarray
    repr_ts: np.ndarray
    frame_to_repr: np.ndarray


def load_label_file(path: Path) -> np.ndarray:
    """A ``_bbox.npy`` file as RVT reads it (its own dtype; legacy names renamed), sorted by ``t`` (stable).

    Raises:
        ValueError: not a structured array with ``t`` (or ``ts``), ``x``, ``y``, ``w``, ``h``, ``class_id``,
            or no box at all (RVT's script fails an assertion there), naming the file.
    """
    try:
        labels = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npy label file ({exc})") from exc
    if labels.dtype.names is None:
        raise ValueError(f"{path}: label file is not a structured array (dtype {labels.dtype})")
    labels = rename_legacy_fields(labels.reshape(-1))
    missing = [f for f in ("t", "x", "y", "w", "h", "class_id") if f not in labels.dtype.names]
    if missing:
        raise ValueError(f"{path}: label file lacks field(s) {missing} (has {list(labels.dtype.names)})")
    if labels.size == 0:
        raise ValueError(f"{path}: label file holds no box (RVT's preprocessing fails on an empty "
                         f"label file)")
    t = labels["t"]
    if np.any(t[1:] < t[:-1]):
        labels = labels[np.argsort(t, kind="stable")]
    return labels


def plan_sequence(labels: np.ndarray, dataset: str, train: bool, source: str = "labels") -> RvtSequencePlan:
    """RVT's label frames and representation times of one sequence.

    Raises:
        NoLabelsError: nothing left after the filters. ValueError: see :func:`rvt_label_frames`.
    """
    frames = rvt_label_frames(rvt_filter_labels(labels, dataset, train), dataset, source)
    repr_ts = rvt_repr_timestamps(frames.frame_ts, frames.reprs_between)
    return RvtSequencePlan(frames.labels, frames.label_index, frames.frame_ts, repr_ts,
                           rvt_frame_to_repr(repr_ts, frames.frame_ts))


def find_event_file(label_file: Path, dataset: str) -> Path:
    """The event file of ``<name>_bbox.npy`` (see :data:`EVENT_SUFFIXES`).

    Raises:
        FileNotFoundError: none of the candidates exists (they are listed).
    """
    name = label_file.name[: -len(LABEL_SUFFIX)]
    candidates = [label_file.with_name(name + s) for s in EVENT_SUFFIXES[dataset]]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"{label_file}: no event file ({', '.join(c.name for c in candidates)})")


def find_rvt_jobs(raw_dir: str | os.PathLike, output_dir: str | os.PathLike, dataset: str
                  ) -> tuple[list[RvtJob], list[str]]:
    """The sequences of ``raw_dir/{train,val,test}`` and the names skipped as RVT skips them.

    Raises:
        FileNotFoundError: ``raw_dir`` or its split folders are missing, or a label file has no events.
        ValueError: no label file at all.
    """
    raw_dir, output_dir = Path(raw_dir), Path(output_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"input folder not found: {raw_dir}")
    splits = [s for s in SPLITS if (raw_dir / s).is_dir()]
    if not splits:
        raise FileNotFoundError(f"{raw_dir}: no train/, val/ or test/ folder (RVT's layout needs them)")
    jobs, skipped = [], []
    for split in splits:
        for label_file in sorted((raw_dir / split).glob("*" + LABEL_SUFFIX)):
            name = label_file.name[: -len(LABEL_SUFFIX)]
            if name in RVT_IGNORED_SEQUENCES[dataset]:
                skipped.append(f"{split}/{name}")
                continue
            jobs.append(RvtJob(label_file, find_event_file(label_file, dataset), output_dir / split / name,
                               dataset, split == "train"))
    if not jobs and not skipped:
        raise ValueError(f"{raw_dir}: no *{LABEL_SUFFIX} label files in {splits}")
    return jobs, skipped


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_open(path) as f:
        np.save(f, array)


def write_representations(events_path: Path, out_path: Path, repr_ts: np.ndarray, dataset: str,
                          piece_events: int = DEFAULT_PIECE_EVENTS) -> Path:
    """Compute and write ``data`` (uint8 ``[N, 20, H, W]``, Blosc) for the end times ``repr_ts``. Events are
    read in pieces of at most ``piece_events``; memory holds the events of the open 50 ms windows and one
    piece (RVT's histogram needs a window whole); the output does not depend on ``piece_events``.

    Raises:
        ValueError: the recording's sensor size is not the dataset's (RVT asserts it), Blosc unavailable.
    """
    import h5py

    require_blosc(out_path, "writing")
    height, width = RVT_SENSOR_SIZE[dataset]
    d = 1 if dataset == "gen4" else 0
    window = RVT_WINDOW_MS * 1000
    repr_ts = np.asarray(repr_ts, dtype=np.int64)
    n = repr_ts.size
    with open_events(events_path) as reader:
        known = not getattr(reader, "geometry_inferred", False)  # RVT falls back to the dataset's size
        if known and (reader.height, reader.width) != (height, width):
            raise ValueError(f"{events_path}: sensor size {reader.height}x{reader.width} (height x width), "
                             f"but RVT's {dataset} format is {height}x{width}")
        target = AtomicTarget(out_path)
        try:
            with h5py.File(target.tmp, "w") as f:
                shape = (2 * RVT_NUM_BINS, height >> d, width >> d)
                dset = f.create_dataset("data", shape=(n, *shape), dtype=np.uint8, chunks=(1, *shape),
                                        maxshape=(None, *shape), **BLOSC_OPTIONS)
                buf = {k: np.zeros(0, dtype=np.int64) for k in "xypt"}
                done, last = 0, None

                def flush(stop: int) -> None:
                    nonlocal done
                    for a in range(done, stop, _MAX_FRAMES):
                        b = min(stop, a + _MAX_FRAMES)
                        starts = np.searchsorted(buf["t"], repr_ts[a:b] - window, side="left")
                        stops = np.searchsorted(buf["t"], repr_ts[a:b], side="right")
                        dset[a:b] = rvt_histogram_windows(
                            buf["x"], buf["y"], buf["p"], buf["t"], starts, stops, height, width,
                            RVT_NUM_BINS, RVT_MAX_COUNT, d)
                    done = stop

                reader.seek_time(0)
                while done < n and not reader.done:
                    # a block read in pieces: the buffer holds at most the open windows' events plus a piece
                    for events, _ in reader.load_delta_t_pieces(_BLOCK_US, piece_events):
                        if events.size == 0:
                            continue
                        t = correct_time(events["t"], last)
                        last = int(t[-1])
                        keep = np.searchsorted(buf["t"], repr_ts[done] - window, side="left")
                        for k, new in (("x", events["x"]), ("y", events["y"]), ("p", events["p"]), ("t", t)):
                            buf[k] = np.concatenate([buf[k][keep:], new.astype(np.int64)])
                        # representations ending before the latest event have all their events
                        flush(int(np.searchsorted(repr_ts, last, side="left")))
                flush(n)
            target.commit()
        except BaseException:
            target.abort()
            raise
    return out_path


def convert_rvt_sequence(job: RvtJob) -> Path | None:
    """Convert one sequence (see the module docstring); returns its folder, or None when RVT writes none.

    Raises:
        ValueError / FileNotFoundError: unreadable inputs, the cases where RVT's script fails (naming the
            file).
    """
    repr_dir = job.out_dir / REPR_DIR / repr_dir_name()
    h5_path = repr_dir / repr_file_name(job.dataset == "gen4")
    if h5_path.exists():
        return job.out_dir  # finished by an earlier run
    labels = load_label_file(job.labels)
    try:
        plan = plan_sequence(labels, job.dataset, job.train, str(job.labels))
    except NoLabelsError:
        if job.out_dir.is_dir() and written_by_evdet(job.out_dir):
            shutil.rmtree(job.out_dir)
        return None
    labels_dir = job.out_dir / LABELS_DIR
    labels_dir.mkdir(parents=True, exist_ok=True)
    repr_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(labels_dir / LABELS_FILE) as f:
        np.savez(f, labels=plan.labels, objframe_idx_2_label_idx=plan.label_index)
    _save_npy(labels_dir / TIMESTAMPS_FILE, plan.frame_ts)
    _save_npy(repr_dir / FRAME_TO_REPR_FILE, plan.frame_to_repr)
    _save_npy(repr_dir / TIMESTAMPS_FILE, plan.repr_ts)
    write_representations(job.events, h5_path, plan.repr_ts, job.dataset)
    record_contents(job.out_dir, TOOL)  # so that --overwrite later removes nothing else put there
    return job.out_dir


def claim_sequence_folders(jobs: list[RvtJob], raw_dir: Path, overwrite: bool) -> None:
    """Apply :mod:`evdet.io.output_paths` to the sequence folders before anything is written: a folder that
    evdet did not write is refused; evdet's own are kept and resumed (finished ones skipped), or, with
    ``overwrite``, removed and converted again; new ones are recorded as evdet's first, so that an
    interrupted run resumes them.

    Raises:
        OutputPathError: a sequence folder exists and was not written by evdet, or, with ``overwrite``,
            holds a file that evdet did not write (nothing is written or removed then).
    """
    new = []
    for job in jobs:
        if not (job.out_dir.exists() or job.out_dir.is_symlink()):
            new.append(job.out_dir)
        elif not job.out_dir.is_dir() or not written_by_evdet(job.out_dir):
            raise OutputPathError(f"{job.out_dir} already exists and was not written by evdet: choose "
                                  "another output folder (evdet never replaces what it did not write)")
    old = [job.out_dir for job in jobs if job.out_dir not in new and job.out_dir.is_dir()]
    if overwrite:
        for folder in old:  # every folder checked before the first is removed
            check_replaceable(folder)
    claim_outputs(new, tool=TOOL, inputs=[raw_dir], folder=True)
    if overwrite:
        for folder in old:
            shutil.rmtree(folder)


def generate_rvt(raw_dir: str | os.PathLike, output_dir: str | os.PathLike, dataset: str,
                 num_workers: int = 1, progress: bool = True, overwrite: bool = False) -> list[Path]:
    """Convert a Gen1 / 1Mpx dataset folder into RVT's preprocessed format (see the module docstring).

    Args:
        raw_dir: folder with ``train/``, ``val/``, ``test/`` (each optional) of label and event files.
        output_dir: destination (``<split>/<sequence>/...``, split folders created).
        dataset: ``"gen1"`` or ``"gen4"``.
        num_workers: sequences converted in parallel (processes; 1: in this process).
        progress: a progress bar over sequences (rate and ETA).
        overwrite: convert again the sequences an earlier run finished (only folders evdet wrote; see
            :func:`claim_sequence_folders`).
    Returns:
        The sequence folders written or found finished, in input order (sequences without labels after
        RVT's filters and the sequences RVT ignores have none).
    Raises:
        ValueError: unknown dataset, ``num_workers < 1``, no label file, Blosc unavailable;
            ``OutputPathError`` (a ValueError): ``output_dir`` overlaps ``raw_dir`` or holds a sequence folder
            that evdet did not write.
        FileNotFoundError: missing folders or event files.
        RuntimeError: some sequences failed (the others are converted; the message lists the failures).
    """
    check_dataset(dataset)
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    raw_dir = Path(raw_dir)
    require_blosc(output_dir, "writing")
    jobs, _ = find_rvt_jobs(raw_dir, output_dir, dataset)
    output_dir = output_folder(output_dir, inputs=[raw_dir])
    claim_sequence_folders(jobs, raw_dir, overwrite)
    for split in SPLITS:
        if (raw_dir / split).is_dir():
            output_folder(output_dir / split, inputs=[raw_dir])
    results, failures = run_jobs(convert_rvt_sequence, jobs, num_workers=num_workers, progress=progress,
                                 desc="sequences", unit="seq", name=lambda job: str(job.labels))
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} sequences failed:\n" + "\n".join(failures))
    return [results[i] for i in sorted(results) if results[i] is not None]

