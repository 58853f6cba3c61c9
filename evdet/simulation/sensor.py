"""The event-camera model (as in ESIM / v2e), turning log-intensity frames into events.

Each pixel keeps a reference log intensity. Between two render instants ``t0 < t1`` its log intensity
is taken to move linearly from ``L0`` to ``L1``; every time it moves a full contrast threshold away from
the reference the pixel fires (ON upwards, OFF downwards) and the reference moves by that threshold.
Several events are fired for a large change, each stamped at the interpolated crossing instant.
Thresholds differ per pixel (Gaussian mismatch); a pixel that fired stays silent for the refractory
period (a crossing inside it is dropped but still moves the reference, as in v2e). Background-activity
noise (Poisson, uniform over pixels and time) and hot pixels are added separately.

``threshold_crossings`` (numba) and ``threshold_crossings_reference`` (plain numpy/python) compute
the same events; ``EventSensor`` runs the kernel frame after frame on its own state.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from evdet.io.dtypes import EVENT_DTYPE
from evdet.simulation.config import SensorConfig


@njit(cache=True)
def _fire_pixel(x, y, l0, l1, ref, thr_on, thr_off, last_t, t0, dt, refractory, xs, ys, ps, ts, n):
    """Fire the events of pixel ``(x, y)`` whose log intensity moves from l0 to l1 into the buffers from
    index ``n``, and move its ``ref`` and ``last_t``; returns ``(new n, full)``, ``full`` when the buffers
    cannot hold them (nothing written or moved then)."""
    r = ref[y, x]
    lt = last_t[y, x]
    d = l1 - r
    if d >= thr_on[y, x]:
        c = thr_on[y, x]
        pol = 1
    elif -d >= thr_off[y, x]:
        c = -thr_off[y, x]
        pol = 0
    else:
        return n, False
    k = int(d / c)
    if n + k > xs.shape[0]:
        return n, True
    dl = l1 - l0
    for j in range(1, k + 1):
        frac = min(max((r + j * c - l0) / dl, 0.0), 1.0) if dl != 0.0 else 1.0
        te = t0 + int(np.floor(frac * dt + 0.5))
        if te - lt >= refractory:
            xs[n] = x
            ys[n] = y
            ps[n] = pol
            ts[n] = te
            n += 1
            lt = te
    ref[y, x] = r + k * c
    last_t[y, x] = lt
    return n, False


@njit(cache=True)
def _crossings_kernel(log0, log1, ref, thr_on, thr_off, last_t, t0, t1, refractory,
                      xs, ys, ps, ts, n, start):
    """Fire the events of pixels ``start..`` (row-major index) into the buffers from index ``n``.
    Updates ``ref`` and ``last_t`` in place. Returns (new n, next pixel); next pixel < H*W means the
    buffers are full."""
    hgt, wid = log0.shape
    dt = t1 - t0
    for y in range(start // wid, hgt):
        for x in range(start % wid if y == start // wid else 0, wid):
            n, full = _fire_pixel(x, y, log0[y, x], log1[y, x], ref, thr_on, thr_off, last_t, t0, dt,
                                  refractory, xs, ys, ps, ts, n)
            if full:
                return n, y * wid + x
    return n, hgt * wid


@njit(cache=True)
def _sensor_step_kernel(img0, img1, log0, eps, ref, thr_on, thr_off, last_t, t0, t1, refractory,
                        xs, ys, ps, ts, n, start):
    """Like ``_crossings_kernel`` but from intensity images: pixels whose intensity did not change are
    skipped (their log intensity, hence their events, cannot change); ``img0`` and ``log0`` are updated
    to the new frame for the pixels processed."""
    hgt, wid = img0.shape
    dt = t1 - t0
    for y in range(start // wid, hgt):
        for x in range(start % wid if y == start // wid else 0, wid):
            v1 = img1[y, x]
            if v1 == img0[y, x]:
                continue
            l1 = np.log(v1 + eps)
            n, full = _fire_pixel(x, y, log0[y, x], l1, ref, thr_on, thr_off, last_t, t0, dt, refractory,
                                  xs, ys, ps, ts, n)
            if full:
                return n, y * wid + x
            img0[y, x] = v1
            log0[y, x] = l1
    return n, hgt * wid


def _pack(xs: np.ndarray, ys: np.ndarray, ps: np.ndarray, ts: np.ndarray) -> np.ndarray:
    ev = np.empty(ts.size, EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = xs, ys, ps, ts
    return ev


def threshold_crossings(log0: np.ndarray, log1: np.ndarray, ref: np.ndarray, thr_on: np.ndarray,
                        thr_off: np.ndarray, last_t: np.ndarray, t0: int, t1: int,
                        refractory_us: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events fired while log intensity moves linearly from ``log0`` (at ``t0``) to ``log1`` (at ``t1``).

    Args:
        log0, log1: float64 ndarray[H, W], log intensity at ``t0`` and ``t1`` (µs, ``t0 < t1``).
        ref: float64 ndarray[H, W], reference log intensity per pixel (``|log0 - ref| <`` threshold).
        thr_on, thr_off: float64 ndarray[H, W] > 0, per-pixel contrast thresholds.
        last_t: int64 ndarray[H, W], time of each pixel's last event (µs; very negative = never).
        refractory_us: refractory period (µs).

    Returns:
        (events ``EVENT_DTYPE`` in pixel-major order, new ``ref``, new ``last_t``); inputs are not changed.

    Raises:
        ValueError: shapes differ or ``t1 < t0``.
    """
    shapes = {a.shape for a in (log0, log1, ref, thr_on, thr_off, last_t)}
    if len(shapes) != 1 or log0.ndim != 2:
        raise ValueError(f"threshold_crossings: all maps must share one [H, W] shape, got {sorted(shapes)}")
    if t1 < t0:
        raise ValueError(f"threshold_crossings: t1 = {t1} < t0 = {t0}")
    ref = np.array(ref, np.float64)
    last_t = np.array(last_t, np.int64)
    buf = _EventBuffer(1024)
    buf.run(_crossings_kernel, np.asarray(log0, np.float64), np.asarray(log1, np.float64), ref,
            np.asarray(thr_on, np.float64), np.asarray(thr_off, np.float64), last_t, int(t0), int(t1),
            int(refractory_us))
    return buf.events(), ref, last_t


def threshold_crossings_reference(log0, log1, ref, thr_on, thr_off, last_t, t0, t1, refractory_us):
    """Plain numpy/python reference of ``threshold_crossings`` (same arguments and results; slow)."""
    ref = np.array(ref, np.float64)
    last_t = np.array(last_t, np.int64)
    d = log1 - ref
    n_on = np.where(d >= thr_on, np.floor(d / thr_on), 0).astype(np.int64)
    n_off = np.where((d < thr_on) & (-d >= thr_off), np.floor(-d / thr_off), 0).astype(np.int64)
    out = []
    for y, x in zip(*np.nonzero(n_on + n_off), strict=True):
        pol = 1 if n_on[y, x] else 0
        c = thr_on[y, x] if pol else -thr_off[y, x]
        k = int(n_on[y, x] + n_off[y, x])
        levels = ref[y, x] + c * np.arange(1, k + 1)
        dl = log1[y, x] - log0[y, x]
        frac = np.clip((levels - log0[y, x]) / dl, 0, 1) if dl != 0 else np.ones(k)
        times = t0 + np.floor(frac * (t1 - t0) + 0.5).astype(np.int64)
        lt = last_t[y, x]
        for te in times:
            if te - lt >= refractory_us:
                out.append((x, y, pol, te))
                lt = te
        ref[y, x] += k * c
        last_t[y, x] = lt
    arr = np.array(out, np.int64).reshape(-1, 4)
    return _pack(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]), ref, last_t


class _EventBuffer:
    """Growing column buffers filled by the crossing kernel."""

    def __init__(self, capacity: int):
        self.xs = np.empty(capacity, np.uint16)
        self.ys = np.empty(capacity, np.uint16)
        self.ps = np.empty(capacity, np.int16)
        self.ts = np.empty(capacity, np.int64)
        self.n = 0

    def _grow(self) -> None:
        cap = 2 * self.xs.size
        for name in ("xs", "ys", "ps", "ts"):
            old = getattr(self, name)
            new = np.empty(cap, old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def run(self, kernel, *args) -> None:
        """Call ``kernel(*args, xs, ys, ps, ts, n, start)`` until every pixel is done, growing as needed."""
        start, total = 0, args[0].size
        while True:
            self.n, start = kernel(*args, self.xs, self.ys, self.ps, self.ts, self.n, start)
            if start >= total:
                return
            self._grow()

    def events(self) -> np.ndarray:
        return _pack(self.xs[: self.n], self.ys[: self.n], self.ps[: self.n], self.ts[: self.n])


class EventSensor:
    """An event camera fed with intensity frames at increasing times.

    Args:
        config: sensor parameters.
        height, width: sensor size (pixels).
        rng: draws the per-pixel threshold mismatch.
    """

    def __init__(self, config: SensorConfig, height: int, width: int, rng: np.random.Generator):
        self.config = config
        sigma = config.threshold_sigma
        floor = 0.25 * min(config.threshold_on, config.threshold_off)
        self.thr_on = np.maximum(config.threshold_on + sigma * rng.standard_normal((height, width)), floor)
        self.thr_off = np.maximum(config.threshold_off + sigma * rng.standard_normal((height, width)), floor)
        self.ref = np.zeros((height, width))
        self.log = np.zeros((height, width))
        self.image = np.zeros((height, width))
        self.last_t = np.full((height, width), -(1 << 40), np.int64)
        self.t = 0
        self._buffer = _EventBuffer(1 << 16)

    def log_intensity(self, image: np.ndarray) -> np.ndarray:
        """``log(I + log_eps)`` of an intensity image (float64 ndarray[H, W])."""
        return np.log(image + self.config.log_eps)

    def reset(self, image: np.ndarray, t_us: int) -> None:
        """Start at ``t_us`` with every pixel's reference at the log intensity of ``image`` [H, W]."""
        self.image = np.array(image, np.float64)
        self.log = self.log_intensity(self.image)
        self.ref = self.log.copy()
        self.t = int(t_us)

    def step(self, image: np.ndarray, t_us: int) -> None:
        """Advance to ``t_us`` (µs, > previous) where the intensity is ``image`` [H, W]; events accumulate."""
        if int(t_us) <= self.t:
            raise ValueError(f"EventSensor.step: t_us = {t_us} must be > the previous time {self.t}")
        self._buffer.run(_sensor_step_kernel, self.image, np.asarray(image, np.float64), self.log,
                         float(self.config.log_eps), self.ref, self.thr_on, self.thr_off, self.last_t, self.t,
                         int(t_us), int(self.config.refractory_us))
        self.t = int(t_us)

    def events(self, sort: bool = True) -> np.ndarray:
        """Events fired so far (``EVENT_DTYPE``), sorted by ``t`` (``sort=False``: in step order)."""
        ev = self._buffer.events()
        return ev[np.argsort(ev["t"], kind="stable")] if sort else ev


def noise_events(height: int, width: int, duration_us: int, rate_hz: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Background-activity noise: Poisson with ``rate_hz`` events per pixel per second, uniform over
    pixels and ``[0, duration_us)``, ON/OFF with probability 1/2. Returns ``EVENT_DTYPE``, unsorted."""
    n = int(rng.poisson(rate_hz * height * width * duration_us * 1e-6))
    return _pack(rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n),
                 rng.integers(0, duration_us, n))


def hot_pixel_events(height: int, width: int, duration_us: int, fraction: float, rate_hz: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Events of hot pixels: ``round(fraction * H * W)`` random pixels firing at ``rate_hz`` each
    (Poisson), random polarity. Returns ``EVENT_DTYPE``, unsorted."""
    n_hot = int(round(fraction * height * width))
    if n_hot == 0:
        return np.empty(0, EVENT_DTYPE)
    pix = rng.choice(height * width, n_hot, replace=False)
    counts = rng.poisson(rate_hz * duration_us * 1e-6, n_hot)
    where = np.repeat(pix, counts)
    return _pack(where % width, where // width, rng.integers(0, 2, where.size),
                 rng.integers(0, duration_us, where.size))
