"""Per-video accumulation of ground truth and detections during validation, mergeable across DDP ranks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from evdet.evaluation.coco import CocoEvaluation, evaluate_recordings
from evdet.evaluation.presets import EvalPreset, get_preset
from evdet.evaluation.protocol import evaluate_with_preset
from evdet.io.dtypes import BBOX_DTYPE, as_boxes


class DetectionAccumulator:
    """Collects ``BBOX_DTYPE`` ground truth and detections per video, then scores them once (SPEC 6).

    Holds only plain lists of numpy arrays keyed by video name, so it pickles (``torch.distributed.
    all_gather_object``) and ranks' accumulators combine with ``merge``.
    """

    def __init__(self) -> None:
        self._gt: dict[str, list[np.ndarray]] = {}
        self._dt: dict[str, list[np.ndarray]] = {}

    def add(self, video: str, gt: np.ndarray, dt: np.ndarray) -> None:
        """Append boxes of one video (any number of calls per video, any time order).

        Args:
            video: recording name (the key that pairs ground truth and detections).
            gt: ``BBOX_DTYPE [n]`` ground truth, sensor pixels, t in µs.
            dt: ``BBOX_DTYPE [m]`` detections (``class_confidence`` = score).

        Raises:
            TypeError: ``video`` is not a string or a box array is not structured.
        """
        if not isinstance(video, str):
            raise TypeError(f"DetectionAccumulator.add: video must be a str, got {type(video).__name__}")
        gt = as_boxes(np.asarray(gt).reshape(-1), source=f"ground truth of {video}").copy()
        dt = as_boxes(np.asarray(dt).reshape(-1), source=f"detections of {video}").copy()
        self._gt.setdefault(video, []).append(gt)
        self._dt.setdefault(video, []).append(dt)

    def merge(self, others: DetectionAccumulator | Iterable[DetectionAccumulator]) -> DetectionAccumulator:
        """Add the contents of other accumulators (e.g. gathered from other ranks) to this one; returns self.

        Raises:
            TypeError: an element is not a ``DetectionAccumulator``.
        """
        if isinstance(others, DetectionAccumulator):
            others = [others]
        for other in others:
            if not isinstance(other, DetectionAccumulator):
                raise TypeError(f"can only merge DetectionAccumulator objects, got {type(other).__name__}")
            if other is self:
                continue
            for video in other.videos:
                self._gt.setdefault(video, []).extend(a.copy() for a in other._gt.get(video, []))
                self._dt.setdefault(video, []).extend(a.copy() for a in other._dt.get(video, []))
        return self

    @property
    def videos(self) -> list[str]:
        """Video names, sorted (the evaluation order, identical on every rank)."""
        return sorted(set(self._gt) | set(self._dt))

    def boxes(self, video: str) -> tuple[np.ndarray, np.ndarray]:
        """``(gt, dt)`` of one video, each ``BBOX_DTYPE`` sorted by ``t`` (stable).

        Raises:
            KeyError: unknown video (the message names it).
        """
        if video not in self._gt and video not in self._dt:
            raise KeyError(f"no boxes accumulated for video {video!r}")

        def cat(parts: list[np.ndarray]) -> np.ndarray:
            # dtype= keeps BBOX_DTYPE (a plain concatenate drops its trailing padding)
            arr = np.concatenate(parts, dtype=BBOX_DTYPE) if parts else np.zeros(0, BBOX_DTYPE)
            return arr[np.argsort(arr["t"], kind="stable")]

        return cat(self._gt.get(video, [])), cat(self._dt.get(video, []))

    def __len__(self) -> int:
        return len(self.videos)

    def evaluate_full(self, classes: Sequence[str] | Mapping[int, str], height: int | None = None,
                      width: int | None = None, preset: str | EvalPreset | None = None,
                      time_tol: int | None = None, engine: str = "evdet") -> CocoEvaluation:
        """Like ``evaluate`` but returns the full ``CocoEvaluation`` (precision/recall arrays)."""
        if preset is None and (height is None or width is None):
            raise ValueError("DetectionAccumulator.evaluate: give height and width, or a preset")
        pairs = [self.boxes(video) for video in self.videos]
        gts, dts = [g for g, _ in pairs], [d for _, d in pairs]
        if preset is None:  # no protocol: the boxes as accumulated
            tol = 50_000 if time_tol is None else time_tol
            return evaluate_recordings(gts, dts, classes, height, width, tol, engine)
        p = get_preset(preset).with_overrides(height=height, width=width, time_tol=time_tol)
        return evaluate_with_preset(gts, dts, classes, p, engine)

    def evaluate(self, classes: Sequence[str] | Mapping[int, str], height: int | None = None,
                 width: int | None = None, preset: str | EvalPreset | None = None,
                 time_tol: int | None = None, engine: str = "evdet") -> dict[str, float]:
        """Score everything accumulated under the published protocol.

        Args:
            classes: class names indexed by ``class_id`` (or ``{class_id: name}``).
            height, width: image size in pixels (override the preset's when given).
            preset: a name in ``PRESETS`` or an ``EvalPreset``, applied by
                :func:`~evdet.evaluation.protocol.evaluate_with_preset` (box scale and filter on ground
                truth and detections, time pooling, RVT's zeros). None: no box filter,
                ``height``/``width`` required.
            time_tol: µs, overrides the preset's (default 50 000).
            engine: see ``evaluate_detection``.

        Returns:
            The dict of ``evaluate_detection`` (12 COCO numbers + ``AP_<class>``).

        Raises:
            ValueError: unknown preset, missing size without a preset, and the errors of
                ``evaluate_detection``.
        """
        return self.evaluate_full(classes, height, width, preset, time_tol, engine).metrics()
