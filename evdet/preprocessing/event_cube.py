"""``event_cube`` (2·U or U channels): events split linearly between micro-bins (SPEC 3).

Each time bin (length ``window / T``) has ``U`` micro-bins with centres at ``(u + 0.5) · window / (T·U)``.
An event at relative time ``t`` in bin ``k`` sits at ``s = t·T·U / window − k·U − 0.5`` micro-bins,
clamped to ``[0, U − 1]`` (events before the first centre or after the last go wholly to the edge
micro-bin, so every event has total weight 1). Its weight goes ``1 − (s − ⌊s⌋)`` to micro-bin ``⌊s⌋``
and ``s − ⌊s⌋`` to ``⌊s⌋ + 1``, times ``1 / (max_incr_per_pixel · 4**d)``.

- ``split_polarity=True`` (default): ``2·U`` channels, ``c = p·U + u`` (OFF first), clamped to ``[0, 1]``.
- ``split_polarity=False``: ``U`` channels, ON events add and OFF events subtract, clamped to ``[-1, 1]``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from evdet.preprocessing.kernels import event_cell, floor_div_scaled
from evdet.preprocessing.registry import check_max_incr, prepare_kernel_call


@numba.njit(cache=True, nogil=True)
def _event_cube_kernel(x, y, p, t, out, total, t0, d, num_utbins, split):  # pragma: no cover - numba
    num_t = out.shape[0]
    height = out.shape[2]
    width = out.shape[3]
    tu = num_t * num_utbins
    last = num_utbins - 1
    inv_t = num_t / total
    inv_tu = tu / total
    for i in range(x.shape[0]):
        tr, xi, yi = event_cell(x, y, t, i, t0, total, d, height, width)
        if tr < 0:
            continue
        k = floor_div_scaled(tr, num_t, total, inv_t)
        s = tr * inv_tu - k * num_utbins - 0.5
        if s < 0.0:
            s = 0.0
        elif s > last:
            s = float(last)
        lo = int(math.floor(s))
        w_hi = s - lo
        if split:
            c = lo + num_utbins if p[i] > 0 else lo
            sign = 1.0
        else:
            c = lo
            sign = 1.0 if p[i] > 0 else -1.0
        out[k, c, yi, xi] += sign * (1.0 - w_hi)
        if w_hi > 0.0:
            out[k, c + 1, yi, xi] += sign * w_hi


def _prepare(events, out, window, downsampling_factor, num_utbins, split_polarity, max_incr_per_pixel, zero):
    check_max_incr(max_incr_per_pixel)
    return prepare_kernel_call(events, out, window, downsampling_factor, num_utbins,
                               2 if split_polarity else 1,
                               f" (num_utbins={num_utbins}, split_polarity={split_polarity})", zero=zero)


def event_cube_accumulate(events: np.ndarray, acc: np.ndarray, window: int, downsampling_factor: int = 0, *,
                          num_utbins: int = 3, split_polarity: bool = True, max_incr_per_pixel: float = 5.0,
                          start_ts: int = 0) -> None:
    """Add the events' unscaled micro-bin weights to ``acc``: the accumulating step of :func:`event_cube`
    for a window built from pieces (arguments as :func:`event_cube`)."""
    acc, total, x, y, p, t = _prepare(events, acc, window, downsampling_factor, num_utbins, split_polarity,
                                      max_incr_per_pixel, zero=False)
    _event_cube_kernel(x, y, p, t, acc, np.int64(total), np.int64(start_ts), np.int64(downsampling_factor),
                       np.int64(num_utbins), bool(split_polarity))


def event_cube_finalize(acc: np.ndarray, downsampling_factor: int = 0, *, num_utbins: int = 3,
                        split_polarity: bool = True, max_incr_per_pixel: float = 5.0) -> None:
    """Weights -> :func:`event_cube` values, in place: scaled by ``1 / (max_incr_per_pixel * 4**d)`` and
    clamped to ``[0, 1]`` (``[-1, 1]`` without ``split_polarity``)."""
    np.multiply(acc, np.float32(1.0 / (check_max_incr(max_incr_per_pixel) * 4.0 ** downsampling_factor)),
                out=acc)
    np.clip(acc, np.float32(0.0 if split_polarity else -1.0), np.float32(1.0), out=acc)


def event_cube(events: np.ndarray, out: np.ndarray, window: int, downsampling_factor: int = 0, *,
               num_utbins: int = 3, split_polarity: bool = True, max_incr_per_pixel: float = 5.0,
               start_ts: int = 0) -> None:
    """Linearly time-interpolated event counts over micro-bins, overwriting ``out``.

    Args:
        events: structured events ``x, y, p, t`` (``t`` in µs).
        out: ``float32 ndarray[T, 2·U, H, W]`` with ``split_polarity``, else ``[T, U, H, W]``.
        window: whole window covered by the ``T`` bins (µs); events with ``t - start_ts`` outside
            ``[0, window)`` or outside the frame are ignored.
        downsampling_factor: ``d``: coordinates divided by ``2**d``, increment by ``4**d``.
        num_utbins: ``U`` micro-bins per time bin.
        split_polarity: separate channels per polarity (values in ``[0, 1]``) or signed (``[-1, 1]``).
        max_incr_per_pixel: total event weight that saturates a micro-bin pixel.
        start_ts: window start (µs), subtracted from event times.

    The same as zeroing ``out``, then :func:`event_cube_accumulate` and :func:`event_cube_finalize`.

    Raises:
        ValueError: ``num_utbins < 1``, ``max_incr_per_pixel <= 0``, bad ``window``, wrong channel count.
        TypeError: ``out`` not float32.
    """
    out, total, x, y, p, t = _prepare(events, out, window, downsampling_factor, num_utbins, split_polarity,
                                      max_incr_per_pixel, zero=True)
    _event_cube_kernel(x, y, p, t, out, np.int64(total), np.int64(start_ts), np.int64(downsampling_factor),
                       np.int64(num_utbins), bool(split_polarity))
    event_cube_finalize(out, downsampling_factor, num_utbins=num_utbins, split_polarity=split_polarity,
                        max_incr_per_pixel=max_incr_per_pixel)
