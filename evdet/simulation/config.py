"""Options of the event-camera simulator: scene, sensor, recording, and the dataset presets.

All options are frozen dataclasses with documented defaults. ``PRESETS`` maps a preset name to a
``DatasetPreset`` (a ``SimulationConfig`` plus the default number of recordings per split);
``get_preset(name)`` raises ``ValueError`` listing the valid names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

SYNTHETIC_LABEL_MAP: dict[int, str] = {0: "car", 1: "pedestrian", 2: "two wheeler"}
"""Class ids of the synthetic dataset (the same as ``label_maps/synthetic_label_map_dictionary.json``)."""


@dataclass(frozen=True)
class SceneConfig:
    """What is in front of the camera.

    Attributes:
        height, width: sensor size in pixels.
        classes: class ids of ``SYNTHETIC_LABEL_MAP`` that may appear (each object draws one uniformly).
        mean_objects: expected number of objects in view at any time (Poisson arrivals keep it steady).
        size_scale: multiplies the per-class object heights (fractions of the frame height, see
            ``evdet.simulation.scene.CLASS_TEMPLATES``).
        speed_scale: multiplies the per-class speeds (fractions of the frame width per second).
        stop_rate_hz: rate of stops per moving object (stops/second); a stopped object emits no events.
        stop_duration_s: (min, max) length of a stop in seconds, uniform.
        ego_motion_prob: probability that a recording has camera ego-motion (pan and slight zoom).
        ego_pan_px: maximum amplitude of the oscillating camera pan, pixels.
        ego_zoom: maximum relative amplitude of the oscillating zoom (0.03 = ±3 %).
        background_contrast: peak-to-peak intensity range of the textured background, in (0, 1].
        object_texture: relative amplitude of the per-object texture (0 = flat objects).
    """

    height: int = 240
    width: int = 304
    classes: tuple[int, ...] = (0, 1, 2)
    mean_objects: float = 4.0
    size_scale: float = 1.0
    speed_scale: float = 1.0
    stop_rate_hz: float = 0.05
    stop_duration_s: tuple[float, float] = (0.5, 3.0)
    ego_motion_prob: float = 0.5
    ego_pan_px: float = 12.0
    ego_zoom: float = 0.03
    background_contrast: float = 0.5
    object_texture: float = 0.25

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise ValueError(f"SceneConfig: sensor size (height={self.height}, width={self.width}) "
                             f"must be >= 8")
        if not self.classes:
            raise ValueError("SceneConfig: classes is empty")
        for c in self.classes:
            if c not in SYNTHETIC_LABEL_MAP:
                raise ValueError(f"SceneConfig: unknown class id {c}; valid ids {SYNTHETIC_LABEL_MAP}")
        if self.mean_objects < 0:
            raise ValueError(f"SceneConfig: mean_objects = {self.mean_objects} < 0")
        if not 0 < self.background_contrast <= 1:
            raise ValueError(f"SceneConfig: background_contrast = {self.background_contrast} not in (0, 1]")
        if not 0 <= self.ego_motion_prob <= 1:
            raise ValueError(f"SceneConfig: ego_motion_prob = {self.ego_motion_prob} not in [0, 1]")
        lo, hi = self.stop_duration_s
        if not 0 <= lo <= hi:
            raise ValueError(f"SceneConfig: stop_duration_s = {self.stop_duration_s} must satisfy "
                             f"0 <= min <= max")


@dataclass(frozen=True)
class SensorConfig:
    """The event-camera model (as in ESIM / v2e).

    Attributes:
        threshold_on, threshold_off: mean contrast thresholds on log intensity.
        threshold_sigma: per-pixel Gaussian mismatch (standard deviation) of both thresholds.
        refractory_us: after an event a pixel stays silent this long (µs); suppressed crossings still
            reset the pixel's reference (as in v2e).
        noise_rate_hz: background-activity noise per pixel (events/s, Poisson, half ON, half OFF).
        hot_pixel_fraction: fraction of pixels that are hot.
        hot_pixel_rate_hz: event rate of each hot pixel (events/s).
        log_eps: the sensor sees ``log(I + log_eps)`` for intensity ``I`` in [0, 1].
        max_flow_px: adaptive render step: at most this displacement (pixels) of any image point per
            step (ESIM's optical-flow rule).
        min_step_us, max_step_us: bounds of the render step (µs).
    """

    threshold_on: float = 0.2
    threshold_off: float = 0.2
    threshold_sigma: float = 0.03
    refractory_us: int = 200
    noise_rate_hz: float = 0.1
    hot_pixel_fraction: float = 0.0
    hot_pixel_rate_hz: float = 20.0
    log_eps: float = 0.02
    max_flow_px: float = 0.5
    min_step_us: int = 100
    max_step_us: int = 10_000

    def __post_init__(self) -> None:
        if self.threshold_on <= 0 or self.threshold_off <= 0:
            raise ValueError(f"SensorConfig: thresholds must be > 0, got on={self.threshold_on}, "
                             f"off={self.threshold_off}")
        for name in ("threshold_sigma", "refractory_us", "noise_rate_hz", "hot_pixel_rate_hz"):
            if getattr(self, name) < 0:
                raise ValueError(f"SensorConfig: {name} = {getattr(self, name)} < 0")
        if not 0 <= self.hot_pixel_fraction <= 1:
            raise ValueError(f"SensorConfig: hot_pixel_fraction = {self.hot_pixel_fraction} not in [0, 1]")
        if self.log_eps <= 0 or self.max_flow_px <= 0:
            raise ValueError(f"SensorConfig: log_eps ({self.log_eps}) and max_flow_px ({self.max_flow_px}) "
                             f"must be > 0")
        if not 1 <= self.min_step_us <= self.max_step_us:
            raise ValueError(f"SensorConfig: need 1 <= min_step_us ({self.min_step_us}) <= max_step_us "
                             f"({self.max_step_us})")


@dataclass(frozen=True)
class SimulationConfig:
    """One recording.

    Attributes:
        scene, sensor: see ``SceneConfig`` and ``SensorConfig``.
        duration_us: length of the recording (µs); events have ``0 <= t < duration_us``.
        label_period_us: time between label instants (µs); 50 000 = 20 Hz like Gen1.
        label_start_us: first label instant (µs); label instants are ``label_start_us + k*label_period_us``.
        min_visible_fraction: an object is labelled only when at least this fraction of its in-frame
            silhouette is not hidden by nearer objects.
        min_box_side: boxes whose clipped width or height is below this (pixels) are dropped.
    """

    scene: SceneConfig = field(default_factory=SceneConfig)
    sensor: SensorConfig = field(default_factory=SensorConfig)
    duration_us: int = 60_000_000
    label_period_us: int = 50_000
    label_start_us: int = 50_000
    min_visible_fraction: float = 0.25
    min_box_side: float = 3.0

    def __post_init__(self) -> None:
        if self.duration_us <= 0:
            raise ValueError(f"SimulationConfig: duration_us = {self.duration_us} must be > 0")
        if self.label_period_us <= 0 or self.label_start_us < 0:
            raise ValueError(f"SimulationConfig: label_period_us = {self.label_period_us} must be > 0 and "
                             f"label_start_us = {self.label_start_us} >= 0")
        if not 0 <= self.min_visible_fraction <= 1:
            raise ValueError(f"SimulationConfig: min_visible_fraction = {self.min_visible_fraction} "
                             f"not in [0, 1]")

    def replace(self, **changes) -> SimulationConfig:
        """A copy with fields changed; ``height``, ``width``, ``classes`` go to the scene."""
        scene_keys = {f.name for f in dataclasses.fields(SceneConfig)}
        scene_changes = {k: v for k, v in changes.items() if k in scene_keys}
        rest = {k: v for k, v in changes.items() if k not in scene_keys}
        scene = dataclasses.replace(self.scene, **scene_changes) if scene_changes else self.scene
        return dataclasses.replace(self, scene=scene, **rest)


@dataclass(frozen=True)
class DatasetPreset:
    """A recording configuration plus the default number of recordings in each split."""

    simulation: SimulationConfig
    num_train: int
    num_val: int
    num_test: int
    description: str = ""


PRESETS: dict[str, DatasetPreset] = {
    "gen1-like": DatasetPreset(
        simulation=SimulationConfig(
            scene=SceneConfig(height=240, width=304, mean_objects=4.0),
            sensor=SensorConfig(hot_pixel_fraction=1e-4),
            duration_us=60_000_000),
        num_train=16, num_val=4, num_test=4,
        description="304x240 like the Gen1 ATIS sensor, 3 classes, 60 s recordings"),
    "tiny": DatasetPreset(
        simulation=SimulationConfig(
            scene=SceneConfig(height=96, width=128, mean_objects=4.0, size_scale=1.0, speed_scale=1.6,
                              stop_rate_hz=0.08, stop_duration_s=(0.3, 1.0), ego_motion_prob=0.25,
                              ego_pan_px=4.0, ego_zoom=0.02, background_contrast=0.4),
            sensor=SensorConfig(noise_rate_hz=0.05),
            duration_us=5_000_000),
        num_train=12, num_val=3, num_test=3,
        description="128x96, 5 s recordings, for tests, debugging and the quick start"),
}
"""Named dataset presets (``evdet-make-synthetic --preset NAME``)."""


def get_preset(name: str) -> DatasetPreset:
    """The preset called ``name``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown synthetic preset {name!r}; valid presets: {sorted(PRESETS)}")
    return PRESETS[name]
