"""Named settings of the published evaluation protocols (SPEC 6, and RVT's, SPEC 2.8): box filter, image size,
time tolerance, box scale."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EvalPreset:
    """Settings of one evaluation protocol.

    Attributes:
        name: preset name.
        skip_ts: boxes at ``t ≤ skip_ts`` (µs) are not scored.
        min_box_diag: boxes with a diagonal below this (pixels) are not scored.
        min_box_side: boxes with a width or height below this (pixels) are not scored.
        height: image height given to COCO (pixels; sensor resolution of the labels).
        width: image width given to COCO (pixels).
        time_tol: detections with ``|t − ts| ≤ time_tol`` (µs, both ends inclusive) are pooled into the
            image of the ground-truth timestamp ``ts`` (0: only detections stamped exactly at ``ts``, one
            image per label frame as RVT scores).
        box_scale: ground truth and detections (sensor pixels) are multiplied by this before the box filter
            and COCO (``rvt-gen4``: 0.5, 1Mpx scored at 640×360).
        zero_without_detections: when no detection is pooled into any scored image, every metric is 0
            (RVT's evaluator returns zeros there instead of COCO's 0 / −1).
    """

    name: str
    skip_ts: int
    min_box_diag: float
    min_box_side: float
    height: int
    width: int
    time_tol: int = 50_000
    box_scale: float = 1.0
    zero_without_detections: bool = False

    def __post_init__(self) -> None:
        if self.skip_ts < 0 or self.time_tol < 0:
            raise ValueError(f"preset {self.name!r}: skip_ts = {self.skip_ts} and time_tol = {self.time_tol} "
                             f"must be >= 0")
        if self.min_box_diag < 0 or self.min_box_side < 0:
            raise ValueError(f"preset {self.name!r}: min_box_diag = {self.min_box_diag} and min_box_side = "
                             f"{self.min_box_side} must be >= 0")
        if not self.box_scale > 0:
            raise ValueError(f"preset {self.name!r}: box_scale = {self.box_scale} must be > 0")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"preset {self.name!r}: height = {self.height}, width = {self.width} "
                             f"must be > 0")

    def with_overrides(self, **overrides: int | float | None) -> EvalPreset:
        """A copy with the given fields replaced; ``None`` values are ignored (keep the preset's).

        Raises:
            ValueError: an unknown field name.
        """
        valid = set(self.__dataclass_fields__)
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown preset field(s) {unknown}; valid: {sorted(valid)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


PRESETS: dict[str, EvalPreset] = {
    # Gen1 automotive (304×240): the protocol of the published Gen1 results.
    "gen1": EvalPreset("gen1", skip_ts=500_000, min_box_diag=30, min_box_side=10, height=240, width=304),
    # 1Mpx / Gen4 automotive at full sensor resolution.
    "gen4": EvalPreset("gen4", skip_ts=500_000, min_box_diag=60, min_box_side=20, height=720, width=1280),
    # 1Mpx labels downscaled by 2 (the resolution most published results use).
    "gen4-half": EvalPreset("gen4-half", skip_ts=500_000, min_box_diag=30, min_box_side=10, height=360,
                            width=640),
    # The original Gen1 toolbox script's own defaults: skip 0.1 s, diagonal 30, side 20.
    "legacy": EvalPreset("legacy", skip_ts=100_000, min_box_diag=30, min_box_side=20, height=240, width=304),
    # RVT's validation (validation.py + utils/evaluation/prophesee): one image per label frame (detections
    # stamped exactly at the frame), ground truth as RVT's loader delivers it (cropped to the frame), zeros
    # when nothing is detected; 1Mpx scored at 640×360 with the 60 / 20 thresholds halved.
    "rvt-gen1": EvalPreset("rvt-gen1", skip_ts=500_000, min_box_diag=30, min_box_side=10, height=240,
                           width=304, time_tol=0, zero_without_detections=True),
    "rvt-gen4": EvalPreset("rvt-gen4", skip_ts=500_000, min_box_diag=30, min_box_side=10, height=360,
                           width=640, time_tol=0, box_scale=0.5, zero_without_detections=True),
}
"""Preset name -> settings. ``get_preset`` raises on unknown names."""


def get_preset(name: str | EvalPreset) -> EvalPreset:
    """Look a preset up by name (an ``EvalPreset`` is returned as is).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    if isinstance(name, EvalPreset):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown evaluation preset {name!r}; choose one of {sorted(PRESETS)}") from None


#: ``skip_ts`` (µs) of the ``"auto"`` preset on sensors that are not Gen1/Gen4 (e.g. the synthetic
#: 128×96 dataset, whose recordings are a few seconds long): long enough for the recurrent state to warm
#: up, short enough to keep most labels.
AUTO_SKIP_TS = 200_000


def eval_preset_for(
    name: str,
    sensor_size: tuple[int, int],
    skip_ts: int | None = None,
    time_tol: int | None = None,
    delta_t: int | None = None,
) -> EvalPreset:
    """The evaluation preset for a dataset of sensor size ``(height, width)``.

    ``name`` is a preset of ``evdet.evaluation.PRESETS`` or ``"auto"``: the ``gen1`` preset at 240×304,
    ``gen4`` at 720×1280, ``gen4-half`` at 360×640; any other sensor gets Gen1's box filter scaled by
    ``width / 304`` (diagonal 30·s, side 10·s pixels) and ``skip_ts`` = :data:`AUTO_SKIP_TS` (``"auto"``
    never picks the ``rvt-*`` presets: name them). The image size is the sensor size times the preset's
    ``box_scale`` (``rvt-gen4``: 360×640 for the 720×1280 sensor). ``skip_ts`` / ``time_tol`` (µs) override
    the preset's when given.

    Time tolerance of ``"auto"``: ``delta_t // 2`` when the bin length ``delta_t`` (µs) is given and
    ≤ 100 ms, else the preset's 50 ms. Validation keeps detections of labelled bins only, stamped exactly
    at the bin end; with labels in every bin (e.g. 20 Hz labels and 50 ms bins, as in the synthetic
    dataset) the inclusive ±50 ms pooling of the published protocol would count the detections of the two
    neighbouring bins as false positives of each label instant (AP at most about 1/3), while with the
    sparse labels of Gen1/1Mpx both tolerances give the same numbers.

    Raises:
        ValueError: unknown preset name (listing the valid ones) or a non-positive sensor size.
    """
    height, width = int(sensor_size[0]), int(sensor_size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"eval_preset_for: sensor_size must be (height, width) > 0, got {sensor_size!r}")
    if name == "auto":
        by_size = {(p.height, p.width): p for k, p in PRESETS.items()
                   if k != "legacy" and not k.startswith("rvt-")}
        if (height, width) in by_size:
            preset = by_size[(height, width)]
        else:
            s = width / 304.0
            preset = EvalPreset("auto", skip_ts=AUTO_SKIP_TS, min_box_diag=30.0 * s, min_box_side=10.0 * s,
                                height=height, width=width)
        if time_tol is None and delta_t is not None and 0 < delta_t <= 100_000:
            time_tol = int(delta_t) // 2
    else:
        if name not in PRESETS:
            raise ValueError(f"unknown evaluation preset {name!r}; choose 'auto' or one of {sorted(PRESETS)}")
        preset = get_preset(name)
    return preset.with_overrides(height=max(1, round(height * preset.box_scale)),
                                 width=max(1, round(width * preset.box_scale)), skip_ts=skip_ts,
                                 time_tol=time_tol)
