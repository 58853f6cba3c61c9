"""Named settings of the published evaluation protocol (SPEC 6): box filter, sensor size, time tolerance."""

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
            image of the ground-truth timestamp ``ts``.
    """

    name: str
    skip_ts: int
    min_box_diag: float
    min_box_side: float
    height: int
    width: int
    time_tol: int = 50_000

    def __post_init__(self) -> None:
        if self.skip_ts < 0 or self.time_tol < 0:
            raise ValueError(f"preset {self.name!r}: skip_ts = {self.skip_ts} and time_tol = {self.time_tol} "
                             f"must be >= 0")
        if self.min_box_diag < 0 or self.min_box_side < 0:
            raise ValueError(f"preset {self.name!r}: min_box_diag = {self.min_box_diag} and min_box_side = "
                             f"{self.min_box_side} must be >= 0")
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
