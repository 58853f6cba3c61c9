"""The published COCO protocol for event-camera detection (SPEC 6): time pooling, COCO images, metrics.

Each unique ground-truth timestamp ``ts`` of a recording is one COCO image holding the ground-truth boxes
with ``t == ts`` and the detections with ``ts − time_tol ≤ t ≤ ts + time_tol`` (both ends inclusive; a
detection may thus be pooled into several neighbouring images, where it is a false positive unless it
matches). Only timestamps with ground truth are scored. The images of all recordings form one COCO data
set (ids 1..N, every image ``height × width``); annotations are ``[x, y, w, h]`` with area ``w·h``
(float32), category id = ``class_id + 1``, detection score = ``class_confidence``. The numbers are
pycocotools' ``COCOeval('bbox')`` ``stats``; the default engine (``evdet.evaluation.engine``) computes
them identically on flat arrays, ``engine="faster-coco-eval"`` runs the faster-coco-eval library instead.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evdet.evaluation.engine import coco_bbox_eval, per_class_ap, summarize_stats
from evdet.io.dtypes import BBOX_DTYPE, as_boxes

METRIC_NAMES = ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L",
                "AR_1", "AR_10", "AR_100", "AR_S", "AR_M", "AR_L")
"""Keys of the 12 COCO numbers, in ``COCOeval.stats`` order."""
ENGINES = ("evdet", "faster-coco-eval")


@dataclass(frozen=True)
class PooledImages:
    """The protocol's COCO images as flat arrays (built by ``pool_by_time``).

    Attributes:
        num_images: N, images are numbered 1..N (recording order, then time).
        image_ts: int64 ``[N]`` the ground-truth timestamp of each image (µs).
        image_video: int64 ``[N]`` index of the recording of each image.
        gt: ``BBOX_DTYPE [G]`` ground-truth boxes in image order; ``gt_image``: int64 ``[G]`` image ids.
        dt: ``BBOX_DTYPE [D]`` pooled detections (a detection appears once per image it is pooled
            into); ``dt_image``: int64 ``[D]`` image ids.
    """

    num_images: int
    image_ts: np.ndarray
    image_video: np.ndarray
    gt: np.ndarray
    gt_image: np.ndarray
    dt: np.ndarray
    dt_image: np.ndarray


@dataclass(frozen=True)
class CocoEvaluation:
    """Full result of the protocol.

    Attributes:
        class_names: names of the categories, category id ``k + 1`` for ``class_names[k]`` when the
            classes were a sequence (``category_ids`` gives the ids).
        category_ids: COCO category ids (``class_id + 1``), in ``class_names`` order.
        stats: float64 ``[12]`` in ``METRIC_NAMES`` order (−1 where COCO leaves a number undefined, e.g.
            AP_L without large ground truth).
        precision: float64 ``[T=10, R=101, K, A=4, M=3]`` interpolated precision (IoU 0.5:0.05:0.95, recall
            0:0.01:1, areas all/small/medium/large, max detections 1/10/100); −1 undefined.
        recall: float64 ``[T, K, A, M]``.
        num_images, num_gt, num_dt: images scored, ground-truth boxes, pooled detections.
    """

    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]
    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    num_images: int
    num_gt: int
    num_dt: int

    def metrics(self) -> dict[str, float]:
        """The 12 COCO numbers by name plus ``AP_<class name>`` per class."""
        out = {name: float(v) for name, v in zip(METRIC_NAMES, self.stats, strict=True)}
        for name, ap in zip(self.class_names, per_class_ap(self.precision), strict=True):
            out[f"AP_{name}"] = float(ap)
        return out


def _check_sorted_boxes(boxes: np.ndarray, what: str, index: int) -> np.ndarray:
    source = f"{what} of recording {index}"
    boxes = as_boxes(np.asarray(boxes).reshape(-1), source=source)
    for field in ("x", "y", "w", "h", "class_confidence"):
        bad = np.flatnonzero(~np.isfinite(boxes[field]))
        if bad.size:
            raise ValueError(f"{source}: box {bad[0]} has {field} = {boxes[field][bad[0]]}")
    if boxes.size > 1 and np.any(np.diff(boxes["t"]) < 0):
        boxes = boxes[np.argsort(boxes["t"], kind="stable")]
    return boxes


def _ranges_to_indices(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``arange(start[i], stop[i])``; also return, for each index, the range number i."""
    counts = np.maximum(stop - start, 0)
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(start)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return start[owner] + offsets, owner


def pool_by_time(gt_boxes_list: Sequence[np.ndarray], dt_boxes_list: Sequence[np.ndarray],
                 time_tol: int = 50_000) -> PooledImages:
    """Build the protocol's images: one per unique ground-truth timestamp of each recording.

    Args:
        gt_boxes_list: per recording, ``BBOX_DTYPE`` ground truth (sorted by ``t`` here if needed,
            stably).
        dt_boxes_list: per recording (same order), ``BBOX_DTYPE`` detections.
        time_tol: µs; detections with ``|t − ts| ≤ time_tol`` join the image of ``ts``.

    Raises:
        ValueError: the lists differ in length, ``time_tol < 0``, or a box has a NaN/inf field (the
            message names the recording index and box).
    """
    if len(gt_boxes_list) != len(dt_boxes_list):
        raise ValueError(f"{len(gt_boxes_list)} ground-truth recordings but {len(dt_boxes_list)} detection "
                         f"recordings: they must be paired one to one")
    if time_tol < 0:
        raise ValueError(f"time_tol = {time_tol} µs must be >= 0")
    gts, gt_imgs, dts, dt_idx, dt_imgs, img_ts, img_video = [], [], [], [], [], [], []
    next_id, dt_offset = 1, 0
    for v, (gt, dt) in enumerate(zip(gt_boxes_list, dt_boxes_list, strict=True)):
        gt = _check_sorted_boxes(gt, "ground truth", v)
        dt = _check_sorted_boxes(dt, "detections", v)
        ts = np.unique(gt["t"])  # [n] images of this recording
        ids = np.arange(next_id, next_id + len(ts), dtype=np.int64)
        next_id += len(ts)
        gts.append(gt)
        gt_imgs.append(ids[np.searchsorted(ts, gt["t"])])
        lo = np.searchsorted(dt["t"], ts - time_tol, "left")
        hi = np.searchsorted(dt["t"], ts + time_tol, "right")
        idx, owner = _ranges_to_indices(lo, hi)
        dts.append(dt)
        dt_idx.append(idx + dt_offset)
        dt_offset += len(dt)
        dt_imgs.append(ids[owner])
        img_ts.append(ts)
        img_video.append(np.full(len(ts), v, dtype=np.int64))

    def cat(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
        # dtype= matters: a plain np.concatenate drops BBOX_DTYPE's trailing padding (itemsize 40 -> 36)
        return np.concatenate(parts, dtype=dtype) if parts else np.zeros(0, dtype)

    # one gather for all recordings, on a plain int64 view: fancy indexing of a structured dtype is slow
    all_dt = cat(dts, BBOX_DTYPE)
    rows = all_dt.view(np.dtype((np.int64, BBOX_DTYPE.itemsize // 8)))  # [n, 5]
    pooled_dt = rows[cat(dt_idx, np.int64)].view(BBOX_DTYPE).reshape(-1)
    return PooledImages(next_id - 1, cat(img_ts, np.int64), cat(img_video, np.int64), cat(gts, BBOX_DTYPE),
                        cat(gt_imgs, np.int64), pooled_dt, cat(dt_imgs, np.int64))


def _categories(classes: Sequence[str] | Mapping[int, str]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if isinstance(classes, str):
        raise TypeError(f"classes must be a sequence or mapping of class names, got the string {classes!r}")
    if isinstance(classes, Mapping):
        items = sorted((int(k), str(v)) for k, v in classes.items())
    else:
        items = list(enumerate(str(c) for c in classes))
    if not items:
        raise ValueError("classes is empty: at least one class name is needed")
    names = [n for _, n in items]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate class names in {names}")
    if any(k < 0 for k, _ in items):
        raise ValueError(f"negative class id in {dict(items)}")
    return tuple(names), tuple(k + 1 for k, _ in items)


def coco_dataset(pooled: PooledImages, class_names: Sequence[str], category_ids: Sequence[int],
                 height: int, width: int) -> tuple[dict, list[dict]]:
    """The pooled images as a COCO ground-truth dict and a list of detection results (for pycocotools
    or faster-coco-eval): bbox ``[x, y, w, h]``, area ``w·h``, iscrowd 0, annotation ids from 1."""
    images = [{"id": i, "height": int(height), "width": int(width), "file_name": f"{i}"}
              for i in range(1, pooled.num_images + 1)]
    gt = pooled.gt
    area = (gt["w"] * gt["h"]).tolist()  # float32 product, as the published evaluator
    boxes = np.stack([gt["x"], gt["y"], gt["w"], gt["h"]], axis=1).tolist()
    anns = [{"id": j + 1, "image_id": int(im), "category_id": int(c) + 1, "bbox": b, "area": a, "iscrowd": 0}
            for j, (im, c, b, a) in enumerate(zip(pooled.gt_image.tolist(), gt["class_id"].tolist(), boxes,
                                                  area, strict=True))]
    dt = pooled.dt
    dboxes = np.stack([dt["x"], dt["y"], dt["w"], dt["h"]], axis=1).tolist()
    results = [{"image_id": int(im), "category_id": int(c) + 1, "bbox": b, "score": s}
               for im, c, b, s in zip(pooled.dt_image.tolist(), dt["class_id"].tolist(), dboxes,
                                      dt["class_confidence"].astype(np.float64).tolist(), strict=True)]
    cats = [{"id": int(c), "name": n, "supercategory": "none"}
            for n, c in zip(class_names, category_ids, strict=True)]
    return {"images": images, "annotations": anns, "categories": cats}, results


def _faster_coco_eval(pooled: PooledImages, names: tuple[str, ...], cat_ids: tuple[int, ...], height: int,
                      width: int) -> tuple[np.ndarray, np.ndarray]:
    from faster_coco_eval import COCO, COCOeval_faster

    dataset, results = coco_dataset(pooled, names, cat_ids, height, width)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(dataset, print_function=lambda *a, **k: None)
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
        ev.params.imgIds = list(range(1, pooled.num_images + 1))
        ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
    return np.asarray(ev.eval["precision"], dtype=np.float64), np.asarray(ev.eval["recall"], dtype=np.float64)


def evaluate_pooled(pooled: PooledImages, classes: Sequence[str] | Mapping[int, str], height: int, width: int,
                    engine: str = "evdet") -> CocoEvaluation:
    """Score already pooled images (see ``pool_by_time``); ``engine`` is ``"evdet"`` or
    ``"faster-coco-eval"``.

    Raises:
        ValueError: unknown engine, bad ``height``/``width``, empty or duplicate class names.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown COCO engine {engine!r}; choose one of {list(ENGINES)}")
    if int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"image size must be positive, got height = {height}, width = {width}")
    names, cat_ids = _categories(classes)
    gt, dt = pooled.gt, pooled.dt
    if pooled.num_images == 0:
        k = len(cat_ids)
        precision, recall = -np.ones((10, 101, k, 4, 3)), -np.ones((10, k, 4, 3))
    elif engine == "evdet":
        precision, recall = coco_bbox_eval(
            pooled.gt_image, gt["class_id"].astype(np.int64) + 1,
            np.stack([gt["x"], gt["y"], gt["w"], gt["h"]], axis=1), gt["w"] * gt["h"],
            pooled.dt_image, dt["class_id"].astype(np.int64) + 1,
            np.stack([dt["x"], dt["y"], dt["w"], dt["h"]], axis=1), dt["w"] * dt["h"],
            dt["class_confidence"], list(cat_ids))
    else:
        precision, recall = _faster_coco_eval(pooled, names, cat_ids, height, width)
    return CocoEvaluation(names, cat_ids, summarize_stats(precision, recall), precision, recall,
                          pooled.num_images, len(gt), len(dt))


def evaluate_recordings(gt_boxes_list: Sequence[np.ndarray], dt_boxes_list: Sequence[np.ndarray],
                        classes: Sequence[str] | Mapping[int, str], height: int, width: int,
                        time_tol: int = 50_000, engine: str = "evdet") -> CocoEvaluation:
    """``pool_by_time`` then ``evaluate_pooled``: the full result (precision/recall arrays included).

    No box filter is applied here: call ``filter_boxes`` on both lists first (as the CLI and
    ``DetectionAccumulator`` do with a preset).
    """
    return evaluate_pooled(pool_by_time(gt_boxes_list, dt_boxes_list, time_tol), classes, height, width,
                           engine)


def evaluate_detection(gt_boxes_list: Sequence[np.ndarray], dt_boxes_list: Sequence[np.ndarray],
                       classes: Sequence[str] | Mapping[int, str] = ("car", "pedestrian"), height: int = 240,
                       width: int = 304, time_tol: int = 50_000, engine: str = "evdet") -> dict[str, float]:
    """COCO metrics of detections against ground truth under the published protocol (SPEC 6).

    Args:
        gt_boxes_list: per recording, 1-D ``BBOX_DTYPE`` ground truth (t in µs; x, y, w, h in pixels at
            ``height × width``). Unsorted arrays are sorted by ``t`` (stably).
        dt_boxes_list: per recording, in the same order, detections (``class_confidence`` = score).
        classes: class names indexed by ``class_id`` (category id ``class_id + 1``), or a mapping
            ``{class_id: name}``; boxes of other class ids are not scored.
        height, width: image size in pixels (only given to COCO; it does not clip boxes).
        time_tol: µs, detections with ``|t − ts| ≤ time_tol`` are pooled into the image of ``ts``.
        engine: ``"evdet"`` (vectorised, default) or ``"faster-coco-eval"``; both equal pycocotools.

    Returns:
        ``{"AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AR_1", "AR_10", "AR_100", "AR_S", "AR_M",
        "AR_L"}`` as in ``COCOeval.stats`` (−1 where undefined, e.g. no ground truth in an area range; no
        detections give 0, not an error) plus ``"AP_<class name>"`` per class.

    Raises:
        ValueError: lists of different lengths, ``time_tol < 0``, NaN/inf box fields (naming the recording
            and box), bad image size, empty/duplicate classes, unknown engine.
        TypeError: a box array is not a structured array.
    """
    return evaluate_recordings(gt_boxes_list, dt_boxes_list, classes, height, width, time_tol,
                               engine).metrics()
