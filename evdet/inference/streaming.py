"""Run a trained detector over whole recordings: detections as ``BBOX_DTYPE`` arrays (``evdet-detect``).

Recordings (``.dat``/``.raw`` converted on the fly, or HDF5 tensor files) are streamed in chunks of
``num_tbins`` bins with the preprocessing the model was trained with (:class:`CheckpointInfo`); the
recurrent state is kept across the chunks of a recording and reset at its start. Every bin holding data
yields its detections, stamped with the bin end time and converted to sensor pixels, so the result is
evaluable with ``evdet-eval`` against the recording's ``_bbox.npy``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from evdet.data import DataConfig, SequenceBatch, stream_batches
from evdet.inference.checkpoint import CheckpointInfo
from evdet.inference.label_rows import batch_label_rows
from evdet.io.boxes import label_path_for, recording_stem, save_boxes
from evdet.io.dtypes import BBOX_DTYPE, as_boxes
from evdet.io.interrupts import check_interrupt
from evdet.io.output_paths import check_output, output_folder, record_output


def data_config_for(info: CheckpointInfo, num_tbins: int | None = None) -> DataConfig:
    """The streaming ``DataConfig`` matching a model: its representation, parameters, ``delta_t`` (µs),
    network size and classes; no augmentation, no label interpolation, labels optional."""
    return DataConfig(num_tbins=int(num_tbins or info.num_tbins), batch_size=1, delta_t=int(info.delta_t),
                      representation=info.representation,
                      representation_params=dict(info.representation_params),
                      height=int(info.network_size[0]), width=int(info.network_size[1]),
                      classes=tuple(info.classes), hflip_prob=0.0, interpolate=False, require_labels=False)


def class_ids_for(info: CheckpointInfo) -> np.ndarray:
    """``[C]`` original label-map id of each model class index (by name), so that detections carry the
    same ``class_id`` as the ground-truth files; a class missing from the label map keeps its index."""
    by_name = {name: cid for cid, name in info.label_map.items()}
    return np.asarray([by_name.get(name, i) for i, name in enumerate(info.classes)], dtype=np.int64)


def check_recordings(info: CheckpointInfo, paths: Sequence[str | os.PathLike]) -> None:
    """Check that recordings can feed the model: they exist and HDF5 files hold the model's
    representation, parameters, channels, ``delta_t`` and downsampling factor (raw recordings are
    converted with the model's settings, at full sensor resolution: a model trained on tensors converted
    with a downsampling factor ``d > 0`` needs HDF5 files converted the same way).

    Raises:
        FileNotFoundError: a recording is missing. ValueError: a mismatch, naming the file and both values.
    """
    from evdet.data import probe_video
    from evdet.data.sources import power_of_two_factor

    model_d = None if info.stored_size is None else power_of_two_factor(info.sensor_size, info.stored_size)
    for p in paths:
        if not Path(p).exists():
            raise FileNotFoundError(f"recording not found: {p}")
        spec = probe_video(p, delta_t=info.delta_t, representation=info.representation,
                           params=info.representation_params)
        checks = [("representation", spec.representation, info.representation),
                  ("channels", spec.channels, info.in_channels)]
        if spec.kind == "h5" and info.representation_params:
            stored = {k: spec.params.get(k) for k in info.representation_params}
            checks.append(("representation parameters", stored, dict(info.representation_params)))
        if model_d is not None:
            checks.append(("downsampling factor (sensor size / stored size)",
                           power_of_two_factor(spec.sensor_size, spec.stored_size), model_d))
        for what, got, want in checks:
            if got != want:
                raise ValueError(f"{p}: {what} = {got!r} but the model expects {want!r} "
                                 f"(convert the recording with the model's preprocessing)")
        if tuple(spec.sensor_size) != tuple(info.sensor_size):  # works (resized), but may detect worse
            (h, w), (mh, mw), (nh, nw) = spec.sensor_size, info.sensor_size, info.network_size
            warnings.warn(f"{p}: sensor {h}x{w} differs from the model's {mh}x{mw}: its frames are resized "
                          f"to the network input {nh}x{nw}, boxes scaled back; detection may be worse",
                          UserWarning, stacklevel=2)


def decoding_settings(info: CheckpointInfo, score_thresh: float | None = None,
                      nms_thresh: float | None = None, max_detections: int | None = None
                      ) -> tuple[float, float, int]:
    """``(score_thresh, nms_thresh, max_detections)``: the given values, else the checkpoint's, validated
    as in training (``ModelConfig``: score in [0, 1], NMS IoU in (0, 1], at least one detection).

    Raises:
        ValueError: a value out of range (NaN included), naming it.
    """
    from evdet.inference.model_config import ModelConfig

    score = info.score_thresh if score_thresh is None else float(score_thresh)
    nms = info.nms_thresh if nms_thresh is None else float(nms_thresh)
    max_det = info.max_detections if max_detections is None else max_detections
    if isinstance(max_det, float) and max_det.is_integer():
        max_det = int(max_det)
    ModelConfig(score_thresh=score, nms_thresh=nms, max_detections=max_det)  # raises on bad values
    return score, nms, int(max_det)


@torch.no_grad()
def iter_detections(detector: nn.Module, info: CheckpointInfo, paths: Sequence[str | os.PathLike], *,
                    batch_size: int = 1, score_thresh: float | None = None, nms_thresh: float | None = None,
                    max_detections: int | None = None, num_tbins: int | None = None
                    ) -> Iterator[tuple[SequenceBatch, list[list[Tensor]]]]:
    """Stream recordings through the detector, yielding ``(batch, detections)`` per chunk.

    Args:
        detector: an evdet detector (``reset``, ``get_boxes``), put in eval mode; its device is used.
        info: the model's :class:`CheckpointInfo` (preprocessing, sizes, classes, default thresholds).
        paths: recordings (``.dat``, ``.raw``, ``.h5``); with ``batch_size`` B > 1, B play at once.
        score_thresh, nms_thresh, max_detections: decoding settings (default: the checkpoint's).
        num_tbins: bins per chunk (default the training value); any value gives the same detections.

    Yields:
        ``batch`` (a ``SequenceBatch``, inputs ``Tensor[T, B, C, H, W]`` on the detector's device) and
        ``detections``: ``T × B`` ``Tensor[n, 6]`` (x1, y1, x2, y2, score, class_idx) in network pixels.

    Raises:
        FileNotFoundError: a recording is missing. ValueError: a recording does not fit the model
            (channels, ``delta_t``, representation; raised by the data layer, naming the file); a decoding
            setting out of range (:func:`decoding_settings`).
    """
    score, nms, max_det = decoding_settings(info, score_thresh, nms_thresh, max_detections)
    check_recordings(info, paths)
    detector.eval()
    device = next(detector.parameters()).device
    detector.reset_all()
    for batch in stream_batches([str(p) for p in paths], data_config_for(info, num_tbins),
                                batch_size=batch_size, label_map=info.label_map):
        check_interrupt()
        moved = batch.to(device)  # float32 inputs (uint8-stored ones converted on the device)
        detector.reset(moved.mask_keep_memory)
        dets = detector.get_boxes(moved.inputs, score_thresh=score, nms_thresh=nms, max_detections=max_det)
        yield batch, dets


def detect_recordings(detector: nn.Module, info: CheckpointInfo, paths: Sequence[str | os.PathLike],
                      out_dir: str | os.PathLike | None = None, *, batch_size: int = 1,
                      score_thresh: float | None = None, nms_thresh: float | None = None,
                      max_detections: int | None = None, original_class_ids: bool = True,
                      progress: bool = False, overwrite: bool = False,
                      inputs: Sequence[str | os.PathLike] = ()) -> dict[str, np.ndarray]:
    """Detect objects in whole recordings; optionally write ``<out_dir>/<name>_bbox.npy`` per recording.

    Args:
        detector, info: the model and its :class:`CheckpointInfo` (see :func:`iter_detections`).
        paths: recordings (``.dat``, ``.raw``, ``.h5``); names (without suffix) must be unique.
        out_dir: folder for the ``_bbox.npy`` files (created; each written atomically), or ``None``. It
            follows :mod:`evdet.io.output_paths`: it may not be, contain or lie inside a recording, its
            labels or a folder of ``inputs``; an existing ``_bbox.npy`` is replaced only when evdet wrote
            it and ``overwrite``. Checked before any recording is processed.
        batch_size: recordings processed side by side (each a column with its own recurrent state).
        score_thresh, nms_thresh, max_detections: decoding settings (default: the checkpoint's).
        original_class_ids: write the label-map id of each class (as in the ground truth files; default)
            instead of the model's class index.
        progress: a progress bar over the recordings' time bins, with ETA (stderr).
        overwrite: replace detection files written by an earlier evdet run.
        inputs: other files or folders the caller read the recordings from (e.g. the folders given to
            ``evdet-detect``), which the output must not overlap either.

    Returns:
        ``{path: BBOX_DTYPE array}`` (``str(path)`` keys, in input order): boxes in sensor pixels
        (top-left x, y, w, h), ``t`` = bin end (µs), ``class_confidence`` = score, sorted by ``t``.

    Raises:
        ValueError: two recordings share a name; evdet.io.output_paths.OutputPathError (a ValueError): the
            output folder or a file in it may not be written; see :func:`iter_detections` for the others.
    """
    paths = [str(p) for p in paths]
    stems = [recording_stem(p) for p in paths]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"detect: several recordings are named {dup[0]!r}; they would write the same "
                         f"{dup[0]}_bbox.npy")
    decoding_settings(info, score_thresh, nms_thresh, max_detections)  # bad values: before any output
    if out_dir is not None:
        read = [*inputs, *paths, *(label_path_for(p) for p in paths)]
        out_dir = output_folder(out_dir, inputs=read)
        targets = [out_dir / f"{stem}_bbox.npy" for stem in stems]
        for target in targets:  # every file checked before the first recording is processed
            check_output(target, inputs=read, overwrite=overwrite, tool="evdet-detect")
    class_ids = class_ids_for(info) if original_class_ids else None
    parts: dict[str, list[np.ndarray]] = {p: [] for p in paths}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        from evdet.data import probe_video

        total = sum(probe_video(p, delta_t=info.delta_t, representation=info.representation,
                                params=info.representation_params).num_frames for p in paths)
        bar = tqdm(total=total, unit="bin", desc=f"detecting in {len(paths)} recordings")
    for batch, dets in iter_detections(detector, info, paths, batch_size=batch_size,
                                       score_thresh=score_thresh, nms_thresh=nms_thresh,
                                       max_detections=max_detections):
        for rows in batch_label_rows(batch, dets, labeled_only=False, class_ids=class_ids):
            parts.setdefault(rows.path, []).append(rows.detections)
            if bar is not None:
                bar.update(rows.bins)
    if bar is not None:
        bar.close()
    results = {}
    for path in paths:
        arr = as_boxes(np.concatenate(parts[path])) if parts[path] else np.zeros(0, BBOX_DTYPE)
        results[path] = arr[np.argsort(arr["t"], kind="stable")]
    if out_dir is not None:
        for path, target in zip(paths, targets, strict=True):
            check_output(target, inputs=read, overwrite=overwrite, tool="evdet-detect")  # unchanged since?
            save_boxes(target, results[path])
            record_output(target, "evdet-detect")
    return results


def detect_recording(detector: nn.Module, info: CheckpointInfo, path: str | os.PathLike,
                     **kwargs) -> np.ndarray:
    """Detections of one recording as a ``BBOX_DTYPE`` array (sensor pixels, ``t`` = bin end in µs,
    sorted by ``t``); keyword arguments as :func:`detect_recordings` (without ``out_dir``)."""
    return detect_recordings(detector, info, [path], **kwargs)[str(path)]
