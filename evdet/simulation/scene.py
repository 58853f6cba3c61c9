"""The synthetic scene: textured background, camera ego-motion, moving objects, and their rendering.

A ``Scene`` holds everything drawn at random for one recording (background texture, camera path,
objects with their trajectories sampled on a regular time grid). ``render_frame(scene, t)`` gives the
intensity image at any time ``t`` (µs) and ``object_coverage(scene, t)`` the per-object pixel counts
used to decide which objects are visible for labelling. The per-pixel loops are numba kernels; the
background sampler has a numpy reference (``render_background_reference``) it is tested against.

Coordinates: pixel ``(x, y)`` covers ``[x, x+1) x [y, y+1)``; its centre is ``(x + 0.5, y + 0.5)``.
World coordinates equal screen coordinates when the camera is at rest; the camera maps a world point
``P`` to ``(P - c - o(t)) * z(t) + c`` (``c`` the frame centre, ``o`` the pan offset, ``z`` the zoom).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from evdet.simulation.config import SceneConfig

# Columns of the per-object parameter rows handed to the kernels (screen coordinates, pixels).
CX, CY, W, H, SHAPE, BASE, ACCENT, PHASE, TEX_AMP, RADIUS, ALIVE = range(11)
NUM_PARAMS = 11
TEXTURE_SIZE = 8
GRID_US = 2000
"""Trajectories are sampled every ``GRID_US`` µs and linearly interpolated in between."""


@dataclass(frozen=True)
class ObjectTemplate:
    """How one class looks and moves. Heights are fractions of the frame height, speeds fractions of
    the frame width per second, aspect = width / height."""

    shape: int
    height_frac: tuple[float, float]
    aspect: tuple[float, float]
    speed_frac: tuple[float, float]
    vertical_ratio: float
    radius_frac: float


CLASS_TEMPLATES: dict[int, ObjectTemplate] = {
    # car: wide rounded box, windows, wheels, horizontal motion
    0: ObjectTemplate(shape=0, height_frac=(0.14, 0.26), aspect=(1.5, 2.2), speed_frac=(0.06, 0.18),
                      vertical_ratio=0.0, radius_frac=0.3),
    # pedestrian: tall capsule, head, swinging legs, walking bob, slow and slightly oblique motion
    1: ObjectTemplate(shape=1, height_frac=(0.25, 0.45), aspect=(0.32, 0.45), speed_frac=(0.035, 0.08),
                      vertical_ratio=0.25, radius_frac=1.0),
    # two wheeler: rider on top of a wider bike with two large wheels, fast
    2: ObjectTemplate(shape=2, height_frac=(0.2, 0.34), aspect=(0.9, 1.3), speed_frac=(0.08, 0.2),
                      vertical_ratio=0.05, radius_frac=0.4),
}


@dataclass(frozen=True)
class Scene:
    """Everything drawn at random for one recording.

    Attributes:
        height, width: sensor size (pixels).
        background: float32 ndarray[Hb, Wb], intensity in [0, 1], ``margin`` pixels wider on each side.
        margin: background border (pixels) that the camera may reveal.
        camera: float64 ndarray[G, 3] of (pan x, pan y, zoom) on the time grid (``GRID_US`` µs).
        static: float64 ndarray[N, NUM_PARAMS] of per-object constants (world size, shape, intensities).
        centers: float64 ndarray[N, G, 2] world centre (x, y) of each object on the time grid.
        phase: float64 ndarray[N, G] walking phase (radians).
        alive: bool ndarray[N, G]: the object exists (entered and not yet gone).
        textures: float32 ndarray[N, TEXTURE_SIZE, TEXTURE_SIZE] in [-1, 1].
        class_ids, track_ids: uint32 ndarray[N]. Objects are sorted far to near (drawing order).
        flow: float64 ndarray[G] upper estimate of the fastest image motion (pixels/s) at each grid time.
    """

    height: int
    width: int
    background: np.ndarray
    margin: int
    camera: np.ndarray
    static: np.ndarray
    centers: np.ndarray
    phase: np.ndarray
    alive: np.ndarray
    textures: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray
    flow: np.ndarray

    @property
    def num_objects(self) -> int:
        return int(self.class_ids.size)

    def camera_at(self, t_us: float) -> tuple[float, float, float]:
        """(pan x, pan y, zoom) at time ``t_us`` (µs), linearly interpolated."""
        i, f = _grid_pos(t_us, self.camera.shape[0])
        c = self.camera[i] * (1.0 - f) + self.camera[i + 1] * f
        return float(c[0]), float(c[1]), float(c[2])

    def params_at(self, t_us: float) -> np.ndarray:
        """Screen parameters of every object at ``t_us``: float64 ndarray[N, NUM_PARAMS] (pixels)."""
        i, f = _grid_pos(t_us, self.camera.shape[0])
        ox, oy, zoom = self.camera_at(t_us)
        p = self.static.copy()
        if self.num_objects == 0:
            return p
        world = self.centers[:, i] * (1.0 - f) + self.centers[:, i + 1] * f  # [N, 2]
        p[:, CX] = (world[:, 0] - 0.5 * self.width - ox) * zoom + 0.5 * self.width
        p[:, CY] = (world[:, 1] - 0.5 * self.height - oy) * zoom + 0.5 * self.height
        p[:, W] *= zoom
        p[:, H] *= zoom
        p[:, PHASE] = self.phase[:, i] * (1.0 - f) + self.phase[:, i + 1] * f
        p[:, ALIVE] = self.alive[:, i] & self.alive[:, i + 1]
        return p


def _grid_pos(t_us: float, n: int) -> tuple[int, float]:
    g = min(max(t_us / GRID_US, 0.0), n - 1.000001)
    i = int(g)
    return i, g - i


def make_background(height: int, width: int, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """Random textured background: smooth multi-scale noise plus a few rectangles and bands.

    Returns:
        float32 ndarray[height, width], intensity in ``[0.5 - contrast/2, 0.5 + contrast/2]``.
    """
    img = np.zeros((height, width), np.float32)
    for cell, weight in ((40.0, 1.0), (14.0, 0.6), (5.0, 0.35), (2.0, 0.12)):
        gh, gw = int(height / cell) + 3, int(width / cell) + 3
        coarse = rng.standard_normal((gh, gw)).astype(np.float32)
        up = cv2.resize(coarse, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        img += weight * up[:height, :width]
    for _ in range(int(rng.integers(3, 10))):  # "buildings"
        h, w = rng.uniform(0.1, 0.5) * height, rng.uniform(0.05, 0.3) * width
        y0, x0 = rng.uniform(-0.1, 0.8) * height, rng.uniform(-0.1, 1.0) * width
        img[max(0, int(y0)):max(0, int(y0 + h)), max(0, int(x0)):max(0, int(x0 + w))] += rng.normal(0, 1.2)
    for _ in range(int(rng.integers(1, 4))):  # "road markings"
        y0, t = rng.uniform(0.5, 1.0) * height, rng.uniform(1, 4)
        img[int(y0):int(y0 + t), :] += rng.choice([-1.5, 1.5])
    img = (img - img.mean()) / (img.std() + 1e-6)
    img = 0.5 + 0.5 * contrast * np.tanh(0.8 * img)
    return cv2.GaussianBlur(img, (0, 0), 0.6).astype(np.float32)


def _camera_path(config: SceneConfig, g: int, rng: np.random.Generator) -> np.ndarray:
    cam = np.zeros((g, 3))
    cam[:, 2] = 1.0
    if rng.random() < config.ego_motion_prob:
        t = np.arange(g) * (GRID_US * 1e-6)
        for col, amp in ((0, config.ego_pan_px), (1, 0.4 * config.ego_pan_px), (2, config.ego_zoom)):
            a, period, ph = amp * rng.uniform(0.5, 1.0), rng.uniform(4.0, 12.0), rng.uniform(0, 2 * np.pi)
            cam[:, col] += a * np.sin(2 * np.pi * t / period + ph)
    return cam


def _speed_factor(t_s: np.ndarray, stops: list[tuple[float, float]], ramp: float = 0.3) -> np.ndarray:
    f = np.ones_like(t_s)
    for start, dur in stops:
        down = np.clip((t_s - (start - ramp)) / ramp, 0.0, 1.0)
        up = np.clip((t_s - (start + dur)) / ramp, 0.0, 1.0)
        f = np.minimum(f, 1.0 - (0.5 - 0.5 * np.cos(np.pi * down)) + (0.5 - 0.5 * np.cos(np.pi * up)))
    return f


def build_scene(config: SceneConfig, duration_us: int, rng: np.random.Generator) -> Scene:
    """Draw a scene: background, camera path and objects with their trajectories over ``duration_us``.

    Objects present at t = 0 (Poisson, at least half of ``mean_objects``) are placed anywhere in the
    frame; later ones arrive (Poisson, rate chosen
    so that about ``config.mean_objects`` are in view) just outside the left or right border and cross
    the frame, with random stops. Raises nothing for valid configs (they validate themselves).
    """
    hgt, wid = config.height, config.width
    g = duration_us // GRID_US + 2
    t_s = np.arange(g) * (GRID_US * 1e-6)
    margin = int(math.ceil(config.ego_pan_px + config.ego_zoom * max(hgt, wid) + 4))
    background = make_background(hgt + 2 * margin, wid + 2 * margin, config.background_contrast, rng)
    camera = _camera_path(config, g, rng)

    mean_speed = np.mean([np.mean(CLASS_TEMPLATES[c].speed_frac) for c in config.classes])
    crossing_s = 1.3 / max(mean_speed * config.speed_scale, 1e-6)
    n0 = int(rng.poisson(config.mean_objects)) if config.mean_objects > 0 else 0
    n0 = max(n0, int(config.mean_objects // 2))  # never start (nearly) empty
    arrivals = [0.0] * n0
    rate = config.mean_objects / crossing_s
    t = 0.0
    while rate > 0:
        t += rng.exponential(1.0 / rate)
        if t >= duration_us * 1e-6:
            break
        arrivals.append(t)

    n = len(arrivals)
    static = np.zeros((n, NUM_PARAMS))
    centers = np.zeros((n, g, 2))
    phase = np.zeros((n, g))
    alive = np.zeros((n, g), bool)
    textures = rng.uniform(-1, 1, (n, TEXTURE_SIZE, TEXTURE_SIZE)).astype(np.float32)
    class_ids = np.zeros(n, np.uint32)
    obj_flow = np.zeros((n, g))
    pad = margin + 2.0
    for k, t_arr in enumerate(arrivals):
        cls = int(rng.choice(config.classes))
        tpl = CLASS_TEMPLATES[cls]
        h = rng.uniform(*tpl.height_frac) * config.size_scale * hgt
        w = h * rng.uniform(*tpl.aspect)
        dark = rng.random() < 0.5
        base = rng.uniform(0.03, 0.14) if dark else rng.uniform(0.8, 0.98)
        accent = rng.uniform(0.7, 0.95) if dark else rng.uniform(0.03, 0.2)
        static[k, [W, H, SHAPE, BASE, ACCENT, TEX_AMP, RADIUS]] = (
            w, h, tpl.shape, base, accent, config.object_texture * rng.uniform(0.5, 1.0), tpl.radius_frac)
        class_ids[k] = cls
        speed = rng.uniform(*tpl.speed_frac) * config.speed_scale * wid
        direction = rng.choice([-1.0, 1.0])
        vx = direction * speed
        vy = speed * rng.uniform(-tpl.vertical_ratio, tpl.vertical_ratio)
        if t_arr == 0.0:
            x0 = rng.uniform(0.0, wid)
        else:
            x0 = -0.5 * w - pad + 0.5 if direction > 0 else wid + 0.5 * w + pad - 0.5
        y0 = rng.uniform(0.5 * h, max(0.5 * h, hgt - 0.5 * h))
        n_stops = rng.poisson(config.stop_rate_hz * duration_us * 1e-6)
        stops = [(rng.uniform(t_arr, duration_us * 1e-6), rng.uniform(*config.stop_duration_s))
                 for _ in range(n_stops)]
        factor = _speed_factor(t_s, stops)
        g0 = int(round(t_arr * 1e6 / GRID_US))
        step = factor * (GRID_US * 1e-6)
        step[:g0 + 1] = 0.0
        dist = np.cumsum(step) * speed
        x = x0 + np.cumsum(step) * vx
        y = y0 + np.cumsum(step) * vy
        if tpl.shape == 1:  # walking: phase advances with distance, the body bobs twice per stride
            phase[k] = 2 * np.pi * dist / (0.6 * h)
            y = y - 0.03 * h * np.abs(np.sin(phase[k]))
        centers[k, :, 0], centers[k, :, 1] = x, y
        inside = ((x > -0.5 * w - pad) & (x < wid + 0.5 * w + pad)
                  & (y > -0.5 * h - pad) & (y < hgt + 0.5 * h + pad))
        inside[:g0] = True
        gone = np.flatnonzero(~inside)
        end = int(gone[0]) if gone.size else g
        alive[k, g0:end] = True
        obj_flow[k] = np.abs(factor) * math.hypot(vx, vy) * (2.0 if tpl.shape == 1 else 1.0)
        obj_flow[k, ~alive[k]] = 0.0

    order = np.argsort(rng.random(n), kind="stable")  # random depth: drawing order far to near
    cam_speed = np.hypot(*np.gradient(camera[:, :2], GRID_US * 1e-6, axis=0).T)
    zoom_speed = np.abs(np.gradient(camera[:, 2], GRID_US * 1e-6)) * 0.5 * math.hypot(hgt, wid)
    flow = (obj_flow.max(axis=0) if n else np.zeros(g)) * camera[:, 2] + cam_speed * camera[:, 2] + zoom_speed
    return Scene(height=hgt, width=wid, background=background, margin=margin, camera=camera,
                 static=static[order], centers=centers[order], phase=phase[order], alive=alive[order],
                 textures=textures[order], class_ids=class_ids[order],
                 track_ids=np.arange(1, n + 1, dtype=np.uint32), flow=flow)


def step_times(scene: Scene, duration_us: int, max_flow_px: float, min_step_us: int,
               max_step_us: int) -> np.ndarray:
    """Adaptive render instants (ESIM's rule): step = ``max_flow_px`` / fastest image motion, clipped to
    ``[min_step_us, max_step_us]``.

    Returns:
        int64 ndarray[S] increasing from 0 to ``duration_us`` (both included), µs.
    """
    win = max(1, int(math.ceil(max_step_us / GRID_US)) + 1)
    flow = scene.flow
    padded = np.concatenate([flow, np.full(win, flow[-1])])
    ahead = np.lib.stride_tricks.sliding_window_view(padded, win)[: flow.size].max(axis=1)  # [G]
    steps = np.clip(max_flow_px * 1e6 / np.maximum(ahead, 1e-9), min_step_us, max_step_us)
    out = [0]
    t = 0
    while t < duration_us:
        t = min(duration_us, t + int(steps[min(t // GRID_US, steps.size - 1)]))
        out.append(t)
    return np.asarray(out, np.int64)


@njit(cache=True)
def _render_background_kernel(bg, margin, ox, oy, zoom, out):
    hgt, wid = out.shape
    hb, wb = bg.shape
    for y in range(hgt):
        fy = (y + 0.5 - 0.5 * hgt) / zoom + 0.5 * hgt + oy + margin - 0.5
        fy = min(max(fy, 0.0), hb - 1.000001)
        i0 = int(fy)
        ay = fy - i0
        for x in range(wid):
            fx = (x + 0.5 - 0.5 * wid) / zoom + 0.5 * wid + ox + margin - 0.5
            fx = min(max(fx, 0.0), wb - 1.000001)
            j0 = int(fx)
            ax = fx - j0
            top = bg[i0, j0] + ax * (bg[i0, j0 + 1] - bg[i0, j0])
            bot = bg[i0 + 1, j0] + ax * (bg[i0 + 1, j0 + 1] - bg[i0 + 1, j0])
            out[y, x] = top + ay * (bot - top)


def render_background_reference(bg: np.ndarray, margin: int, ox: float, oy: float, zoom: float,
                                 height: int, width: int) -> np.ndarray:
    """Numpy reference of the background sampler: bilinear lookup of the camera view.

    Returns:
        float64 ndarray[height, width].
    """
    hb, wb = bg.shape
    fy = (np.arange(height) + 0.5 - 0.5 * height) / zoom + 0.5 * height + oy + margin - 0.5
    fx = (np.arange(width) + 0.5 - 0.5 * width) / zoom + 0.5 * width + ox + margin - 0.5
    fy = np.clip(fy, 0.0, hb - 1.000001)[:, None]
    fx = np.clip(fx, 0.0, wb - 1.000001)[None, :]
    i0, j0 = fy.astype(np.int64), fx.astype(np.int64)
    ay, ax = fy - i0, fx - j0
    b = bg.astype(np.float64)
    top = b[i0, j0] + ax * (b[i0, j0 + 1] - b[i0, j0])
    bot = b[i0 + 1, j0] + ax * (b[i0 + 1, j0 + 1] - b[i0 + 1, j0])
    return top + ay * (bot - top)


@njit(cache=True)
def _clip01(v):
    return min(max(v, 0.0), 1.0)


@njit(cache=True)
def _cover(sd):
    """Fraction of a pixel covered by a region whose signed distance (pixels, < 0 inside) is ``sd``."""
    return min(max(0.5 - sd, 0.0), 1.0)


@njit(cache=True)
def _object_sample(params, tex, k, px, py):
    """(alpha, intensity) of object ``k`` at screen point (px, py); alpha 0 outside its silhouette."""
    cx, cy, w, h = params[k, CX], params[k, CY], params[k, W], params[k, H]
    a, b = 0.5 * w, 0.5 * h
    dx, dy = px - cx, py - cy
    r = params[k, RADIUS] * min(a, b)
    qx, qy = abs(dx) - (a - r), abs(dy) - (b - r)
    ox, oy = max(qx, 0.0), max(qy, 0.0)
    sd = math.sqrt(ox * ox + oy * oy) + min(max(qx, qy), 0.0) - r  # rounded box, pixels, < 0 inside
    alpha = _clip01(0.5 - sd)
    if alpha <= 0.0:
        return 0.0, 0.0
    u, v = (dx + a) / w, (dy + b) / h
    ts = tex.shape[1]
    fu, fv = _clip01(u) * (ts - 1.000001), _clip01(v) * (ts - 1.000001)
    j0, i0 = int(fu), int(fv)
    au, av = fu - j0, fv - i0
    t0 = tex[k, i0, j0] + au * (tex[k, i0, j0 + 1] - tex[k, i0, j0])
    t1 = tex[k, i0 + 1, j0] + au * (tex[k, i0 + 1, j0 + 1] - tex[k, i0 + 1, j0])
    base, acc = params[k, BASE], params[k, ACCENT]
    val = base * (1.0 + params[k, TEX_AMP] * (t0 + av * (t1 - t0)))
    shape = int(params[k, SHAPE])
    # Every feature is blended over about one pixel (``_cover`` of a signed distance in pixels), so the
    # image changes continuously as an object moves: no pixel jumps by many thresholds in one step.
    if shape == 0:  # car: two windows, a trim line, two wheels with light hubs
        for uc in (0.315, 0.685):
            sd = max((abs(u - uc) - 0.155) * w, (abs(v - 0.26) - 0.16) * h)
            val += (acc - val) * _cover(sd)
        val += (0.5 * (base + acc) - val) * _cover((abs(v - 0.59) - 0.03) * h)
        for uc in (0.22, 0.78):
            d = math.sqrt(((u - uc) * w) ** 2 + ((v - 0.9) * h) ** 2)
            val += (0.04 - val) * _cover(d - 0.17 * h)
            val += (acc - val) * _cover(d - 0.076 * h)
    elif shape == 1:  # pedestrian: head, torso, legs with a gap that opens and closes with the stride
        val += (acc - val) * _cover((v - 0.2) * h)
        val += (acc - val) * _cover((0.55 - v) * h)
        if v > 0.55:
            gap = (v - 0.55) / 0.45 * (0.04 + 0.22 * abs(math.sin(params[k, PHASE])))
            alpha *= _clip01(0.5 + (abs(u - 0.5) - gap) * w)
    else:  # two wheeler: rider on top of the bike, helmet, two large wheels with light rims
        inside_cut = min((0.45 - v) * h, (abs(u - 0.5) - 0.2) * w)
        alpha *= _clip01(0.5 - inside_cut)
        val += (acc - val) * _cover((v - 0.12) * h)
        for uc in (0.24, 0.76):
            d = math.sqrt(((u - uc) * w) ** 2 + ((v - 0.74) * h) ** 2)
            val += (0.04 - val) * _cover(d - 0.26 * h)
            val += (acc - val) * _cover(d - 0.156 * h)
    return alpha, min(max(val, 0.01), 1.0)


@njit(cache=True)
def _object_window(params, k, hgt, wid):
    """Pixel window ``[x0, x1) × [y0, y1)`` that can hold object ``k`` (its box plus one pixel), clipped
    to the ``hgt × wid`` frame."""
    hw, hh = 0.5 * params[k, W] + 1.0, 0.5 * params[k, H] + 1.0
    x0, x1 = max(0, int(params[k, CX] - hw)), min(wid, int(params[k, CX] + hw) + 1)
    y0, y1 = max(0, int(params[k, CY] - hh)), min(hgt, int(params[k, CY] + hh) + 1)
    return x0, x1, y0, y1


@njit(cache=True)
def _composite_objects_kernel(params, tex, out):
    hgt, wid = out.shape
    for k in range(params.shape[0]):
        if params[k, ALIVE] == 0.0:
            continue
        x0, x1, y0, y1 = _object_window(params, k, hgt, wid)
        for y in range(y0, y1):
            for x in range(x0, x1):
                alpha, val = _object_sample(params, tex, k, x + 0.5, y + 0.5)
                if alpha > 0.0:
                    out[y, x] += alpha * (val - out[y, x])


@njit(cache=True)
def _coverage_kernel(params, tex, ids, counts):
    hgt, wid = ids.shape
    for k in range(params.shape[0]):
        if params[k, ALIVE] == 0.0:
            continue
        x0, x1, y0, y1 = _object_window(params, k, hgt, wid)
        for y in range(y0, y1):
            for x in range(x0, x1):
                alpha, _ = _object_sample(params, tex, k, x + 0.5, y + 0.5)
                if alpha >= 0.5:
                    ids[y, x] = k
                    counts[k, 0] += 1
    for y in range(hgt):
        for x in range(wid):
            if ids[y, x] >= 0:
                counts[ids[y, x], 1] += 1


class SceneRenderer:
    """Renders a scene frame by frame, re-sampling the background only when the camera moved."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self._bg = np.empty((scene.height, scene.width), np.float64)
        self._camera: tuple[float, float, float] | None = None

    def render(self, t_us: float, out: np.ndarray | None = None) -> np.ndarray:
        """Intensity image at ``t_us``: float64 ndarray[H, W] in [0, 1] (written into ``out`` if given)."""
        s = self.scene
        cam = s.camera_at(t_us)
        if cam != self._camera:
            _render_background_kernel(s.background, float(s.margin), cam[0], cam[1], cam[2], self._bg)
            self._camera = cam
        if out is None:
            out = np.empty_like(self._bg)
        out[:] = self._bg
        if s.num_objects:
            _composite_objects_kernel(s.params_at(t_us), s.textures, out)
        return out


def render_frame(scene: Scene, t_us: float) -> np.ndarray:
    """Intensity image of ``scene`` at ``t_us`` (µs): float64 ndarray[H, W], values in [0, 1]."""
    return SceneRenderer(scene).render(t_us)


def object_coverage(scene: Scene, t_us: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of each object at ``t_us``: the object's own silhouette inside the frame and the part of it
    not hidden by nearer objects (alpha >= 0.5 counts as covered).

    Returns:
        (params float64 ndarray[N, NUM_PARAMS], counts int64 ndarray[N, 2] = (in-frame, visible)).
    """
    params = scene.params_at(t_us)
    ids = np.full((scene.height, scene.width), -1, np.int64)
    counts = np.zeros((scene.num_objects, 2), np.int64)
    if scene.num_objects:
        _coverage_kernel(params, scene.textures, ids, counts)
    return params, counts
