"""Write a whole synthetic dataset: ``OUT/label_map_dictionary.json`` and
``OUT/{train,val,test}/<name>_td.dat`` + ``<name>_bbox.npy`` (SPEC 2.6), optionally HDF5 tensors."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evdet.io.boxes import save_boxes
from evdet.io.dat import write_dat
from evdet.io.interrupts import check_interrupt, worker_init
from evdet.io.label_map import LABEL_MAP_FILENAME, save_label_map
from evdet.io.layout import SPLITS
from evdet.io.output_paths import (
    OutputPathError,
    check_output,
    check_written_by,
    output_folder,
    record_output,
    written_by_evdet,
)
from evdet.simulation.config import SYNTHETIC_LABEL_MAP, SimulationConfig, get_preset
from evdet.simulation.recording import simulate_recording


@dataclass
class DatasetSummary:
    """What ``make_synthetic_dataset`` wrote.

    Attributes:
        out_dir: dataset folder.
        recordings: number of recordings per split.
        num_events: total number of events.
        boxes_per_class: number of boxes per class name.
        duration_s: total simulated time (s).
        wall_s: wall-clock time of the generation (s).
        cpu_s: summed CPU time of simulating and writing the recordings (s, one-core time; on a loaded
            machine this is the fair measure, the wall time also counts other processes).
        files: the ``_td.dat`` files written.
        hdf5_dir: folder of the HDF5 tensors (``None`` without ``hdf5=True``).
    """

    out_dir: Path
    recordings: dict[str, int] = field(default_factory=dict)
    num_events: int = 0
    boxes_per_class: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    files: list[Path] = field(default_factory=list)
    hdf5_dir: Path | None = None

    @property
    def events_per_s(self) -> float:
        """Mean event rate of the recordings (events per simulated second)."""
        return self.num_events / max(self.duration_s, 1e-9)

    @property
    def realtime_factor(self) -> float:
        """Simulated seconds per second of one core (``duration_s / cpu_s``)."""
        return self.duration_s / max(self.cpu_s, 1e-9)

    def format(self) -> str:
        """Human-readable multi-line summary."""
        rec = ", ".join(f"{k} {v}" for k, v in self.recordings.items())
        cls = ", ".join(f"{k}: {v}" for k, v in self.boxes_per_class.items())
        return (f"wrote {sum(self.recordings.values())} recordings ({rec}) to {self.out_dir}\n"
                f"  duration {self.duration_s:.1f} s simulated, {self.num_events} events "
                f"({self.events_per_s / 1e3:.1f} kev/s)\n"
                f"  boxes per class: {cls}\n"
                f"  wall time {self.wall_s:.1f} s; speed {self.realtime_factor:.2f} simulated s per CPU s "
                f"(one core)")


def recording_seed(seed: int, split: str, index: int) -> int:
    """Seed of recording ``index`` of ``split``: independent of the number of workers."""
    return int(np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)]).generate_state(1)[0])


TOOL = "evdet-make-synthetic"


def _simulate_one(task: tuple[SimulationConfig, int, str]) -> tuple[str, int, np.ndarray, float]:
    config, seed, stem = task
    start = time.process_time()
    events, boxes = simulate_recording(config, seed)
    write_dat(stem + "_td.dat", events, config.scene.height, config.scene.width)
    record_output(stem + "_td.dat", TOOL)
    save_boxes(stem + "_bbox.npy", boxes)
    record_output(stem + "_bbox.npy", TOOL)
    counts = np.bincount(boxes["class_id"].astype(np.int64), minlength=len(SYNTHETIC_LABEL_MAP))
    return stem, int(events.size), counts, time.process_time() - start


def class_ids_from_names(names: Sequence[str]) -> tuple[int, ...]:
    """Synthetic class ids of class names (ids of ``SYNTHETIC_LABEL_MAP``, in map order); ``_`` may stand
    for a space (``two_wheeler``).

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or an empty list.
    """
    by_name = {v: k for k, v in SYNTHETIC_LABEL_MAP.items()}
    if not names:
        raise ValueError(f"classes is empty; choose among {list(by_name)}")
    for n in names:
        if n.replace("_", " ") not in by_name:
            raise ValueError(f"unknown synthetic class {n!r}; valid classes: {list(by_name)}")
    return tuple(sorted({by_name[n.replace("_", " ")] for n in names}))


def make_synthetic_dataset(out_dir: str | os.PathLike, preset: str = "tiny", num_train: int | None = None,
                           num_val: int | None = None, num_test: int | None = None,
                           duration_s: float | None = None, height: int | None = None,
                           width: int | None = None, classes: Sequence[str] | None = None, seed: int = 0,
                           num_workers: int = 1, hdf5: bool = False, progress: bool = False,
                           hdf5_kwargs: dict | None = None, overwrite: bool = False) -> DatasetSummary:
    """Generate a labelled synthetic dataset in the public on-disk formats (SPEC 2.2, 2.4-2.6).

    Writes ``out_dir/label_map_dictionary.json`` (the selected classes of ``SYNTHETIC_LABEL_MAP``) and
    ``out_dir/{train,val,test}/synthetic_<split>_<i>_td.dat`` + ``_bbox.npy``. Recording ``i`` of a
    split always gets the same seed (``recording_seed``), so the output does not depend on
    ``num_workers``. With ``hdf5=True`` the recordings are also converted with
    ``evdet.preprocessing.convert.generate_hdf5`` into ``out_dir/hdf5/{split}/`` (``histo``, 50 ms by
    default; ``hdf5_kwargs`` are passed on to it), which then holds its own label map and label files.

    Args:
        preset: a name of ``PRESETS`` (``tiny``, ``gen1-like``).
        num_train, num_val, num_test: recordings per split (``None``: the preset's default).
        duration_s: length of each recording in seconds (``None``: the preset's).
        height, width: sensor size in pixels (``None``: the preset's).
        classes: class names to simulate (``None``: all three).
        num_workers: processes used for the simulation.
        progress: show a tqdm progress bar.
        overwrite: first delete the recordings, labels and HDF5 files of an earlier run in ``out_dir``
            (only files this command wrote, :mod:`evdet.io.output_paths`; other files there make it
            refuse, and every check is made before anything is deleted).

    Raises:
        ValueError: unknown preset or class name, negative counts, ``num_workers < 1``,
            non-positive duration.
        FileExistsError: ``out_dir`` already holds recordings (stale files would mix with the new
            ones) and ``overwrite`` is False.
        evdet.io.output_paths.OutputPathError (a ValueError): ``out_dir`` or a split folder is a file,
            or ``out_dir`` holds recordings, labels or a label map that evdet did not write, or files of
            another evdet command in its split folders.
    """
    p = get_preset(preset)
    counts = {"train": p.num_train if num_train is None else num_train,
              "val": p.num_val if num_val is None else num_val,
              "test": p.num_test if num_test is None else num_test}
    for split, n in counts.items():
        if n < 0:
            raise ValueError(f"make_synthetic_dataset: num_{split} = {n} < 0")
    if num_workers < 1:
        raise ValueError(f"make_synthetic_dataset: num_workers = {num_workers} < 1")
    changes: dict = {}
    if duration_s is not None:
        if duration_s <= 0:
            raise ValueError(f"make_synthetic_dataset: duration_s = {duration_s} must be > 0")
        changes["duration_us"] = int(round(duration_s * 1e6))
    if height is not None:
        changes["height"] = int(height)
    if width is not None:
        changes["width"] = int(width)
    if classes is not None:
        changes["classes"] = class_ids_from_names(classes)
    config = p.simulation.replace(**changes)

    out = output_folder(out_dir)  # an existing file is refused (evdet.io.output_paths)
    # every check before anything is deleted or written: a refused run leaves the folder as it was
    old = _previous_outputs(out)
    foreign = [f for f in old if not written_by_evdet(f)]
    if foreign:
        raise OutputPathError(f"{out} holds {len(foreign)} recording/label/HDF5 files that evdet did not "
                              f"write (e.g. {foreign[0]}): choose another folder (evdet never replaces what "
                              "it did not write)")
    for f in old:  # rule 3: this command's files (and the HDF5 conversion it ran), no other command's
        if f.parent.parent != out / "hdf5":
            check_written_by(f, TOOL)
    if old and not overwrite:
        raise FileExistsError(f"{out} already holds {len(old)} recording/label/HDF5 files (e.g. {old[0]}); "
                              f"choose another folder or overwrite them (overwrite=True, --overwrite)")
    map_path = out / LABEL_MAP_FILENAME
    if not (map_path.is_file() and written_by_evdet(map_path)):
        check_output(map_path)  # a foreign label map is never replaced
    for folder in [out / s for s, n in counts.items() if n] + ([out / "hdf5"] if hdf5 else []):
        if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
            raise OutputPathError(f"cannot write the dataset: {folder} is an existing file, not a folder")
    for f in old:
        f.unlink()
    label_map = {k: v for k, v in SYNTHETIC_LABEL_MAP.items() if k in config.scene.classes}
    save_label_map(map_path, label_map)
    record_output(map_path, TOOL)
    tasks = []
    for split, n in counts.items():
        if n:
            (out / split).mkdir(exist_ok=True)
        for i in range(n):
            stem = str(out / split / f"synthetic_{split}_{i:04d}")
            tasks.append((config, recording_seed(seed, split, i), stem))

    summary = DatasetSummary(out_dir=out, recordings=dict(counts))
    per_class = np.zeros(len(SYNTHETIC_LABEL_MAP), np.int64)
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(tasks), unit="rec", desc=f"simulating ({preset})")
    if num_workers == 1 or len(tasks) <= 1:
        results = map(_simulate_one, tasks)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=num_workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker_init)
        results = pool.map(_simulate_one, tasks)
    try:
        for stem, n_events, cls_counts, cpu in results:
            check_interrupt()
            summary.files.append(Path(stem + "_td.dat"))
            summary.num_events += n_events
            summary.cpu_s += cpu
            per_class += cls_counts
            if bar is not None:
                bar.update(1)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()
    summary.duration_s = len(tasks) * config.duration_us * 1e-6
    summary.boxes_per_class = {SYNTHETIC_LABEL_MAP[k]: int(per_class[k]) for k in sorted(label_map)}
    if hdf5:
        summary.hdf5_dir = _convert_to_hdf5(out, num_workers, progress, hdf5_kwargs or {})
    summary.wall_s = time.perf_counter() - start
    return summary


def _previous_outputs(out: Path) -> list[Path]:
    """Files that a previous run may have written under ``out`` (recordings, labels, HDF5 tensors)."""
    found: list[Path] = []
    for folder in [out / s for s in SPLITS] + [out / "hdf5" / s for s in SPLITS]:
        if folder.is_dir():
            found += sorted(f for f in folder.iterdir() if f.suffix in (".dat", ".npy", ".h5", ".raw"))
    return found


def _convert_to_hdf5(out: Path, num_workers: int, progress: bool, kwargs: dict) -> Path:
    from evdet.preprocessing.convert import generate_hdf5

    options = {"representation": "histo", "delta_t": 50_000, "num_workers": num_workers, "progress": progress,
               "overwrite": True, **kwargs}  # the earlier run's HDF5 files were removed with its recordings
    generate_hdf5([out], out / "hdf5", **options)  # mirrors the splits, copies labels and label map
    return out / "hdf5"
