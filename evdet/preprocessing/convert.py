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
and its labels are saved (atomically) before that rename. An existing final ``.h5`` whose stored
attributes match the settings of the run is kept, so re-running the same command after an interruption
only converts what is missing. An existing output converted with other settings (representation,
parameters, ``delta_t``, size, uint8 storage, ``max_duration`` layout) is refused before anything is
converted, or reconverted with ``overwrite`` when evdet wrote it.

Outputs follow :mod:`evdet.io.output_paths`: the output folder may not be, contain or lie inside an
input (a recording, its labels, a folder read, a label map), and only files evdet wrote are replaced.
A recording that fails (unreadable events or labels, whatever the reader raises) does not stop the
others; all failures are reported together at the end (``RuntimeError``).
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

from evdet.io.boxes import label_path_for, load_boxes, recording_stem
from evdet.io.files import is_listed_file, require_regular_file
from evdet.io.h5 import H5TensorWriter
from evdet.io.interrupts import check_interrupt, worker_init
from evdet.io.label_map import LABEL_MAP_FILENAME
from evdet.io.layout import RECORDING_SUFFIXES, SPLITS
from evdet.io.output_paths import output_folder, record_output
from evdet.io.read import is_event_file, open_events
from evdet.io.reader import DEFAULT_PIECE_EVENTS
from evdet.preprocessing.builder import TensorBuilder
from evdet.preprocessing.convert_outputs import (
    TOOL,
    check_unit,
    copy_label_maps,
    output_conflicts,
    refuse_conflicts,
    remove_conflicts,
    save_unit_labels,
    source_identity,
)
from evdet.preprocessing.registry import events_to_tensor, get_representation

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
    overwrite: bool = False
    piece_events: int = DEFAULT_PIECE_EVENTS


def find_jobs(inputs: list[str | os.PathLike],
              output_dir: Path) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """``(recording, output folder)`` pairs, the label maps to copy, and every file and folder read.

    A folder with ``train``/``val``/``test`` sub-folders is a dataset: its layout is mirrored (the split
    folders and the label map are read). Any other folder contributes the recordings directly inside it.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: an input file is not .dat/.raw, no recording found, or two recordings would
            write the same output.
    """
    jobs: list[tuple[Path, Path]] = []
    label_maps: list[Path] = []
    read: list[Path] = []
    for item in inputs:
        item = Path(item)
        if not item.exists():
            raise FileNotFoundError(f"input not found: {item}")
        if not item.is_dir():
            require_regular_file(item, "input recording")
            if not is_event_file(item):
                raise ValueError(f"input {item}: not a .dat, .raw or event HDF5 recording")
            jobs.append((item, output_dir))
            read += [item] + ([label_path_for(item)] if label_path_for(item).exists() else [])
            continue
        if (item / LABEL_MAP_FILENAME).exists():
            label_maps.append(item / LABEL_MAP_FILENAME)
        splits = [s for s in SPLITS if (item / s).is_dir()]
        folders = [(item / s, output_dir / s) for s in splits] or [(item, output_dir)]
        for src, dst in folders:
            read.append(src)
            listed = [p for p in sorted(src.iterdir()) if is_listed_file(p) and not p.name.startswith(".")]
            for p in listed:  # a FIFO or device named like a recording is an error, not skipped
                if p.name.lower().endswith(RECORDING_SUFFIXES):
                    require_regular_file(p, "recording")
            jobs += [(p, dst) for p in listed if p.is_file() and is_event_file(p)]
    read += label_maps
    if not jobs:
        raise ValueError(f"no .dat/.raw/event .h5 recordings found in {[str(i) for i in inputs]}")
    seen: dict[Path, Path] = {}
    for rec, dst in jobs:
        key = dst / recording_stem(rec)
        if key in seen:
            raise ValueError(f"recordings {seen[key]} and {rec} would both write {key}.h5")
        seen[key] = rec
    return jobs, label_maps, read


def _downsampling(cfg: ConversionConfig, height: int, width: int, path: Path) -> int:
    if height < 1 or width < 1:
        raise ValueError(f"{path}: no sensor size ((height, width) = ({height}, {width})): an empty "
                         "recording, or a header without geometry")
    if cfg.height_width is None:
        d = int(cfg.downsampling_factor or 0)
        if height >> d < 1 or width >> d < 1:
            raise ValueError(f"downsampling_factor = {d} is too large for {path}: its sensor of "
                             f"(height, width) = ({height}, {width}) would give frames of "
                             f"({height >> d}, {width >> d}) pixels")
        return d
    for d in range(0, 16):
        if (height >> d, width >> d) == tuple(cfg.height_width):
            return d
    raise ValueError(f"{path}: sensor size (height, width) = ({height}, {width}) cannot be divided by a "
                     f"power of two to give {tuple(cfg.height_width)}")


def _part_name(stem: str, part: int, parts: bool) -> str:
    return f"{stem}_part{part:03d}" if parts else stem


def _part_labels(boxes: np.ndarray, part: int, span: int, last_part: bool, origin: int) -> np.ndarray:
    """Labels of part ``part`` (absolute times): ``τ`` in ``(origin + part·span, origin + (part+1)·span]``."""
    t = boxes["t"]
    keep = np.ones(t.shape, dtype=bool)
    if part > 0:
        keep &= t > origin + part * span
    if not last_part:
        keep &= t <= origin + (part + 1) * span
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
    remove_conflicts(path, out_dir, cfg)
    if not parts and (out_dir / f"{stem}.h5").exists():
        return [out_dir / f"{stem}.h5"]  # finished earlier with the same settings
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
        t0 = int(reader.time_origin)  # frame 0 starts here (0, or DSEC's t_offset)
        d = _downsampling(cfg, height, width, path)
        shape = (rep.channels(**cfg.params), height >> d, width >> d)
        batch = int(max(1, min(64, _BATCH_BYTES // (4 * math.prod(shape)))))

        def final(q: int) -> Path:
            return out_dir / f"{_part_name(stem, q, parts)}.h5"

        def open_writer(q: int) -> H5TensorWriter:
            check_unit(final(q), out_dir / f"{_part_name(stem, q, parts)}_bbox.npy", boxes is not None)
            return H5TensorWriter(final(q), shape, representation=rep.name, delta_t=dt,
                                  sensor_size=(height, width), start_ts=t0 + q * span,
                                  params=cfg.params, downsampling_factor=d,
                                  compression=cfg.compression, store_as_uint8=cfg.store_as_uint8,
                                  uint8_scale=cfg.uint8_scale, source=source_identity(path))

        def finish(q: int, w: H5TensorWriter, last: bool) -> None:
            if boxes is not None:
                labels = _part_labels(boxes, q, span, last, t0) if parts else boxes
                save_unit_labels(out_dir / f"{_part_name(stem, q, parts)}_bbox.npy", labels)
            done_parts[q] = w.close()
            record_output(done_parts[q], TOOL)

        bar = None
        if progress:
            from tqdm.auto import tqdm

            total = getattr(reader, "duration", None)
            total = None if total is None else max(int(total) - t0, 0)
            bar = tqdm(total=total, desc=path.name, unit="µs", unit_scale=True, leave=False, position=1)
        try:
            reader.seek_time(t0)
            k = 0  # next global frame
            last_t = t0 - 1
            while not reader.done:
                q = k // fpp
                n = min(batch, (q + 1) * fpp - k)
                if q != wpart:  # entering part q: the previous one is full (events remain after it)
                    if writer is not None:
                        finish(wpart, writer, last=False)
                        writer = None
                    wpart = q
                    if final(q).exists():
                        done_parts[q] = final(q)
                    else:
                        writer = open_writer(q)
                # the n frames' events, read in pieces of at most piece_events (memory bounded however
                # many events the frames hold) and accumulated into their tensor
                builder = None if writer is None else TensorBuilder(
                    rep.name, n, height, width, dt, start_ts=t0 + k * dt, downsampling_factor=d, **cfg.params)
                count = 0
                for piece, _ in reader.load_delta_t_pieces(n * dt, cfg.piece_events):
                    if piece.size:
                        count += piece.size
                        last_t = max(last_t, int(piece["t"].max()))
                        if builder is not None:
                            builder.add(piece)
                if writer is not None and not count:
                    writer.resize(writer.num_frames + n)  # empty frames: unwritten chunks read as zeros
                elif writer is not None:
                    writer.write(builder.result())
                k += n
                if bar is not None:
                    bar.update(n * dt if bar.total is None else min(n * dt, bar.total - bar.n))
            num_frames = max(-(-(last_t - t0 + 1) // dt), 1)
            if boxes is not None and boxes.size:
                num_frames = max(num_frames, -(-(int(boxes["t"].max()) - t0) // dt))
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
    every converter (``generate_hdf5``, ``generate_rvt``): a job that raises (whatever a reader raises, e.g.
    on a corrupt file) is recorded as a failure and the others go on; ``KeyboardInterrupt`` stops the run.

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
                check_interrupt()
                try:
                    results[i] = call(job)
                except Exception as exc:  # noqa: BLE001 - one bad recording must not stop the others
                    failures.append(f"{name(job)}: {_describe(exc)}")
                if bar is not None:
                    bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx,
                                     initializer=worker_init) as pool:
                futures = {pool.submit(worker, job): i for i, job in enumerate(jobs)}
                try:
                    for fut in as_completed(futures):
                        check_interrupt()
                        i = futures[fut]
                        try:
                            results[i] = fut.result()
                        except Exception as exc:  # noqa: BLE001 - one bad recording must not stop the others
                            failures.append(f"{name(jobs[i])}: {_describe(exc)}")
                        if bar is not None:
                            bar.update(1)
                except BaseException:  # Ctrl-C (here or in a worker): the queued jobs are not started
                    pool.shutdown(cancel_futures=True)
                    raise
    finally:
        if bar is not None:
            bar.close()
    return results, failures


def generate_hdf5(inputs: str | os.PathLike | list[str | os.PathLike], output_dir: str | os.PathLike,
                  representation: str = "histo", delta_t: int = 50_000, params: dict[str, Any] | None = None,
                  downsampling_factor: int = 0, store_as_uint8: bool = False,
                  compression: str | None = "gzip", max_duration: int | None = None, num_workers: int = 1,
                  progress: bool = True, height_width: tuple[int, int] | None = None,
                  overwrite: bool = False, piece_events: int = DEFAULT_PIECE_EVENTS) -> list[Path]:
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
        overwrite: reconvert existing outputs that evdet wrote with other settings (outputs with the same
            settings are always kept: that is how an interrupted run resumes).
        piece_events: most events held in memory at once (16 bytes each): frames whose events are more
            are read and accumulated in pieces (:class:`evdet.preprocessing.TensorBuilder`), with the same
            output bit for bit. Not a stored setting: any value gives the same files.

    Returns:
        the ``.h5`` files of all inputs (newly written or already complete), in input order.

    Raises:
        ValueError: unknown representation, bad parameter values (naming the parameter), ``piece_events < 1``,
            ``store_as_uint8``
            with a representation whose values are not in ``[0, 1]``, ``max_duration < delta_t``, a
            ``downsampling_factor`` too large for a sensor, bad inputs.
        evdet.io.output_paths.OutputPathError (a ValueError): the output overlaps an input, is a file, or
            holds outputs converted with other settings (without ``overwrite``, or not written by evdet).
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
    if isinstance(piece_events, bool) or int(piece_events) != piece_events or piece_events < 1:
        raise ValueError(f"piece_events must be an integer >= 1, got {piece_events!r}")
    if int(downsampling_factor) != downsampling_factor or not 0 <= downsampling_factor < 16:
        raise ValueError(f"downsampling_factor must be an integer in [0, 15], got {downsampling_factor!r}")
    _check_params(rep.name, rep.default_params, resolved)
    uint8_scale = rep.uint8_scale_for(**resolved) if store_as_uint8 else 255.0
    cfg = ConversionConfig(representation, int(delta_t), resolved, int(downsampling_factor),
                           None if height_width is None else (int(height_width[0]), int(height_width[1])),
                           bool(store_as_uint8), uint8_scale, compression,
                           None if max_duration is None else int(max_duration), bool(overwrite),
                           int(piece_events))
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    output_dir = Path(output_dir)
    jobs, label_maps, read = find_jobs(list(inputs), output_dir)
    for folder in dict.fromkeys([output_dir] + [dst for _, dst in jobs]):
        output_folder(folder, inputs=read)
    if height_width is None and downsampling_factor > 0:
        _check_downsampling(jobs, cfg)
    conflicts = [c for rec, dst in jobs for c in output_conflicts(rec, dst, cfg)]
    refuse_conflicts(conflicts, cfg.overwrite)  # before anything is written
    copy_label_maps(label_maps, output_dir, cfg.overwrite)

    results, failures = run_jobs(
        _convert_job, [(path, out, cfg) for path, out in jobs], num_workers=num_workers, progress=progress,
        desc="recordings", unit="file", name=lambda job: str(job[0]),
        serial=lambda job: convert_recording(*job, progress=progress))
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} recordings failed (the other "
                           f"{len(jobs) - len(failures)} were converted):\n" + "\n".join(failures))
    return [p for i in sorted(results) for p in results[i]]


def _describe(exc: BaseException) -> str:
    """One line for a failed recording: the message, with the exception type when it is not a plain
    ``ValueError``/``OSError`` (e.g. an unexpected error inside a reader)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ValueError | OSError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_params(name: str, defaults: Any, resolved: dict[str, Any]) -> None:
    """Validate representation parameter values once, on no events, before any file is touched; the
    message names the parameter."""
    for key, value in resolved.items():
        default = defaults.get(key)
        numeric = isinstance(default, int | float) and not isinstance(default, bool)
        if numeric and (isinstance(value, bool) or not isinstance(value, int | float | np.number)):
            raise ValueError(f"representation '{name}': parameter {key} = {value!r} must be a number")
    try:
        events_to_tensor(np.zeros(0, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")]),
                         name, 1, 1, 1, 1, **resolved)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"representation '{name}' with parameters {resolved}: {exc}") from exc


def _check_downsampling(jobs: list[tuple[Path, Path]], cfg: ConversionConfig) -> None:
    """``downsampling_factor`` too large for a recording's sensor is an argument error, raised before any
    conversion (recordings whose header cannot be read are reported later, with the other failures)."""
    for path, _ in jobs:
        try:
            with open_events(path) as reader:
                height, width = int(reader.height), int(reader.width)
        except Exception:  # noqa: BLE001 - reported per recording by the conversion
            continue
        _downsampling(cfg, height, width, path)
