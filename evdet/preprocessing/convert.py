"""Convert event recordings (.dat / .raw) into HDF5 tensor files (SPEC 2.7): the engine of
``evdet-generate-hdf5``.

For every recording ``<stem>.dat`` (or ``<stem>_td.dat``, ``<stem>.raw``) it writes ``<stem>.h5`` and
copies its labels ``<stem>_bbox.npy`` alongside. Frames are aligned on absolute time: frame ``k`` holds
events with ``t`` in ``[k·Δt, (k+1)·Δt)`` (``start_ts = 0``), and a recording gets
``N = max(ceil((t_last + 1) / Δt), ceil(τ_last / Δt), 1)`` frames, so both the last event and the last
label time ``τ_last`` are covered (a label at ``τ`` belongs to the bin whose end is the first ``>= τ``).

``max_duration`` cuts a recording into parts ``<stem>_part000.h5``, ``<stem>_part001.h5``, ... of
``max_duration // Δt`` frames each. Part ``i`` has ``start_ts = i·P`` (``P`` = frames per part · Δt) and
its labels ``<stem>_part000_bbox.npy`` keep ABSOLUTE times: part ``i`` gets the labels with
``τ`` in ``(i·P, (i+1)·P]`` (part 0 also those with ``τ <= 0``). Readers map label times to frames
with the file's ``start_ts``.

Crash safety and resuming: each ``.h5`` is written under a temporary name and renamed when complete,
and its labels are saved (atomically) before that rename. An existing final ``.h5`` is never rewritten,
so re-running the same command after an interruption only converts what is missing.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evdet.io.boxes import label_path_for, load_boxes, recording_stem, save_boxes
from evdet.io.h5 import H5TensorWriter
from evdet.io.label_map import LABEL_MAP_FILENAME, load_label_map, save_label_map
from evdet.io.read import open_events
from evdet.preprocessing.registry import events_to_tensor, get_representation

RECORDING_SUFFIXES = (".dat", ".raw")
SPLITS = ("train", "val", "test")
_BATCH_BYTES = 64 << 20  # frames computed per kernel call: at most this much memory, at most 64 frames


@dataclass(frozen=True)
class ConversionConfig:
    """Settings of one conversion (see :func:`generate_hdf5` for their meaning)."""

    representation: str = "histo"
    delta_t: int = 50_000
    params: dict[str, Any] = field(default_factory=dict)
    downsampling_factor: int | None = 0
    height_width: tuple[int, int] | None = None
    store_as_uint8: bool = False
    uint8_scale: float = 255.0
    compression: str | None = "gzip"
    max_duration: int | None = None


def find_jobs(inputs: list[str | os.PathLike],
              output_dir: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """``(recording, output folder)`` pairs and the label maps to copy, from files and folders.

    A folder with ``train``/``val``/``test`` sub-folders is a dataset: its layout is mirrored. Any other
    folder contributes the recordings directly inside it.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: an input file is not .dat/.raw, no recording found, or two recordings would
            write the same output.
    """
    jobs: list[tuple[Path, Path]] = []
    label_maps: list[Path] = []
    for item in inputs:
        item = Path(item)
        if not item.exists():
            raise FileNotFoundError(f"input not found: {item}")
        if item.is_file():
            if item.suffix.lower() not in RECORDING_SUFFIXES:
                raise ValueError(f"input {item}: not a .dat or .raw recording")
            jobs.append((item, output_dir))
            continue
        if (item / LABEL_MAP_FILENAME).exists():
            label_maps.append(item / LABEL_MAP_FILENAME)
        splits = [s for s in SPLITS if (item / s).is_dir()]
        folders = [(item / s, output_dir / s) for s in splits] or [(item, output_dir)]
        for src, dst in folders:
            jobs += [(p, dst) for p in sorted(src.iterdir())
                     if p.is_file() and p.suffix.lower() in RECORDING_SUFFIXES]
    if not jobs:
        raise ValueError(f"no .dat/.raw recordings found in {[str(i) for i in inputs]}")
    seen: dict[Path, Path] = {}
    for rec, dst in jobs:
        key = dst / recording_stem(rec)
        if key in seen:
            raise ValueError(f"recordings {seen[key]} and {rec} would both write {key}.h5")
        seen[key] = rec
    return jobs, label_maps


def _downsampling(cfg: ConversionConfig, height: int, width: int, path: Path) -> int:
    if cfg.height_width is None:
        return int(cfg.downsampling_factor or 0)
    for d in range(0, 16):
        if (height >> d, width >> d) == tuple(cfg.height_width):
            return d
    raise ValueError(f"{path}: sensor size (height, width) = ({height}, {width}) cannot be divided by a "
                     f"power of two to give {tuple(cfg.height_width)}")


def _part_name(stem: str, part: int, parts: bool) -> str:
    return f"{stem}_part{part:03d}" if parts else stem


def _part_labels(boxes: np.ndarray, part: int, span: int, last_part: bool) -> np.ndarray:
    """Labels of part ``part`` (absolute times): ``τ`` in ``(part·span, (part+1)·span]``."""
    t = boxes["t"]
    keep = np.ones(t.shape, dtype=bool)
    if part > 0:
        keep &= t > part * span
    if not last_part:
        keep &= t <= (part + 1) * span
    return boxes[keep]


def convert_recording(path: Path, out_dir: Path, cfg: ConversionConfig, progress: bool = False) -> list[Path]:
    """Convert one recording; returns the ``.h5`` files it has (written now or found complete).

    Raises:
        ValueError / FileNotFoundError: unreadable recording or labels (names the file).
    """
    rep = get_representation(cfg.representation)
    stem = recording_stem(path)
    parts = cfg.max_duration is not None
    out_dir.mkdir(parents=True, exist_ok=True)
    if not parts and (out_dir / f"{stem}.h5").exists():
        return [out_dir / f"{stem}.h5"]
    label_file = label_path_for(path)
    boxes = load_boxes(label_file) if label_file.exists() else None
    dt = int(cfg.delta_t)
    fpp = max(1, int(cfg.max_duration) // dt) if parts else 1 << 50  # frames per part
    span = fpp * dt
    done_parts: dict[int, Path] = {}
    writer: H5TensorWriter | None = None
    wpart = -1

    with open_events(path) as reader:
        height, width = int(reader.height), int(reader.width)
        d = _downsampling(cfg, height, width, path)
        shape = (rep.channels(**cfg.params), height >> d, width >> d)
        batch = int(max(1, min(64, _BATCH_BYTES // (4 * math.prod(shape)))))

        def final(q: int) -> Path:
            return out_dir / f"{_part_name(stem, q, parts)}.h5"

        def open_writer(q: int) -> H5TensorWriter:
            return H5TensorWriter(final(q), shape, representation=rep.name, delta_t=dt,
                                  sensor_size=(height, width), start_ts=q * span,
                                  params=cfg.params, downsampling_factor=d,
                                  compression=cfg.compression, store_as_uint8=cfg.store_as_uint8,
                                  uint8_scale=cfg.uint8_scale)

        def finish(q: int, w: H5TensorWriter, last: bool) -> None:
            if boxes is not None:
                labels = _part_labels(boxes, q, span, last) if parts else boxes
                save_boxes(out_dir / f"{_part_name(stem, q, parts)}_bbox.npy", labels)
            done_parts[q] = w.close()

        bar = None
        if progress:
            from tqdm.auto import tqdm

            total = getattr(reader, "duration", None)
            bar = tqdm(total=total, desc=path.name, unit="µs", unit_scale=True, leave=False, position=1)
        try:
            reader.seek_time(0)
            k = 0  # next global frame
            last_t = -1
            while not reader.done:
                q = k // fpp
                n = min(batch, (q + 1) * fpp - k)
                events = reader.load_delta_t(n * dt)
                if events.size:
                    last_t = max(last_t, int(events["t"].max()))
                if q != wpart:  # entering part q: the previous one is full (events remain after it)
                    if writer is not None:
                        finish(wpart, writer, last=False)
                        writer = None
                    wpart = q
                    if final(q).exists():
                        done_parts[q] = final(q)
                    else:
                        writer = open_writer(q)
                if writer is not None and not events.size:
                    writer.resize(writer.num_frames + n)  # empty frames: unwritten chunks read as zeros
                elif writer is not None:
                    writer.write(events_to_tensor(events, rep.name, n, height, width, dt, start_ts=k * dt,
                                                  downsampling_factor=d, **cfg.params))
                k += n
                if bar is not None:
                    bar.update(n * dt if bar.total is None else min(n * dt, bar.total - bar.n))
            num_frames = max(-(-(last_t + 1) // dt), 1)
            if boxes is not None and boxes.size:
                num_frames = max(num_frames, -(-int(boxes["t"].max()) // dt))
            num_parts = -(-num_frames // fpp)
            for q in range(num_parts):
                count = min(fpp, num_frames - q * fpp)
                if q == wpart and writer is not None:
                    writer.resize(count)
                    finish(q, writer, last=q == num_parts - 1)
                    writer = None
                elif q not in done_parts:
                    if final(q).exists():
                        done_parts[q] = final(q)
                        continue
                    w = open_writer(q)
                    w.resize(count)
                    finish(q, w, last=q == num_parts - 1)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            if bar is not None:
                bar.close()
    return [done_parts[q] for q in sorted(done_parts)]


def _convert_job(args: tuple[Path, Path, ConversionConfig]) -> list[Path]:
    path, out_dir, cfg = args
    return convert_recording(path, out_dir, cfg)


def run_jobs(worker: Callable[[Any], Any], jobs: Sequence[Any], *, num_workers: int = 1,
             progress: bool = True, desc: str = "files", unit: str = "file", name: Callable[[Any], str] = str,
             serial: Callable[[Any], Any] | None = None) -> tuple[dict[int, Any], list[str]]:
    """Run ``worker(job)`` for every job, in this process (``num_workers == 1``) or in a pool of
    ``num_workers`` spawned processes, with a tqdm progress bar over jobs (rate and ETA). The machinery of
    every converter (``generate_hdf5``, ``generate_rvt``): a job that raises ``ValueError`` / ``OSError`` is
    recorded as a failure and the others go on; any other exception stops the run.

    Args:
        worker: a picklable (module-level) function for the pool.
        jobs: its arguments, one per job.
        name: how a job is named in failure messages.
        serial: the function called instead of ``worker`` in this process (e.g. with inner progress bars).
    Returns:
        ``(results, failures)``: job index -> result of the jobs that succeeded, and ``"<name>: <error>"``
        for the others (in completion order).
    Raises:
        ValueError: ``num_workers < 1``.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    results: dict[int, Any] = {}
    failures: list[str] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit=unit, position=0)
    try:
        if num_workers == 1:
            call = serial or worker
            for i, job in enumerate(jobs):
                try:
                    results[i] = call(job)
                except (ValueError, OSError) as exc:
                    failures.append(f"{name(job)}: {exc}")
                if bar is not None:
                    bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx) as pool:
                futures = {pool.submit(worker, job): i for i, job in enumerate(jobs)}
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except (ValueError, OSError) as exc:
                        failures.append(f"{name(jobs[i])}: {exc}")
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results, failures


def generate_hdf5(inputs: str | os.PathLike | list[str | os.PathLike], output_dir: str | os.PathLike,
                  representation: str = "histo", delta_t: int = 50_000, params: dict[str, Any] | None = None,
                  downsampling_factor: int = 0, store_as_uint8: bool = False,
                  compression: str | None = "gzip", max_duration: int | None = None, num_workers: int = 1,
                  progress: bool = True,
                  height_width: tuple[int, int] | None = None) -> list[Path]:
    """Convert recordings into HDF5 tensor files (SPEC 2.7) with their labels.

    Args:
        inputs: recordings (.dat/.raw), folders of recordings, or dataset folders with
            ``train``/``val``/``test`` (the layout is mirrored and ``label_map_dictionary.json`` copied).
        output_dir: destination folder (created).
        representation: registered representation name.
        delta_t: frame length (µs).
        params: representation parameters (defaults filled in and stored as attributes).
        downsampling_factor: ``d``: frames are ``(H >> d, W >> d)``.
        store_as_uint8: store ``round(255·x)`` (or counts for ``stacked_histogram``) as uint8.
        compression: ``"gzip"``, ``"lzf"`` or ``None``.
        max_duration: cut recordings into parts of ``max_duration // delta_t`` frames (µs); ``None``: whole.
        num_workers: processes converting files in parallel (1: in this process).
        progress: show tqdm bars over files (and over time within a file when ``num_workers == 1``).
        height_width: target frame size ``(height, width)`` instead of ``downsampling_factor``: the
            power-of-two factor is found per recording from its sensor size.

    Returns:
        the ``.h5`` files of all inputs (newly written or already complete), in input order.

    Raises:
        ValueError: unknown representation, bad parameter values, ``store_as_uint8`` with a
            representation whose values are not in ``[0, 1]``, ``max_duration < delta_t``, bad inputs.
        TypeError: unknown parameter name.
        FileNotFoundError: an input does not exist.
        RuntimeError: some recordings failed (the others are converted; the message lists the failures).
    """
    rep = get_representation(representation)
    resolved = rep.resolve_params(params)
    if int(delta_t) != delta_t or delta_t <= 0:
        raise ValueError(f"delta_t must be a positive integer (µs), got {delta_t!r}")
    if max_duration is not None and max_duration < delta_t:
        raise ValueError(f"max_duration = {max_duration} µs is shorter than delta_t = {delta_t} µs")
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    uint8_scale = rep.uint8_scale_for(**resolved) if store_as_uint8 else 255.0
    # validate parameter values once, on no events, before any file is touched
    events_to_tensor(np.zeros(0, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")]),
                     representation, 1, 1, 1, int(delta_t), **resolved)
    cfg = ConversionConfig(representation, int(delta_t), resolved, int(downsampling_factor),
                           None if height_width is None else (int(height_width[0]), int(height_width[1])),
                           bool(store_as_uint8), uint8_scale, compression,
                           None if max_duration is None else int(max_duration))
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    output_dir = Path(output_dir)
    jobs, label_maps = find_jobs(list(inputs), output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for lm in label_maps:
        save_label_map(output_dir, load_label_map(lm))  # validated, written atomically

    results, failures = run_jobs(
        _convert_job, [(path, out, cfg) for path, out in jobs], num_workers=num_workers, progress=progress,
        desc="recordings", unit="file", name=lambda job: str(job[0]),
        serial=lambda job: convert_recording(*job, progress=progress))
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} recordings failed:\n" + "\n".join(failures))
    return [p for i in sorted(results) for p in results[i]]
