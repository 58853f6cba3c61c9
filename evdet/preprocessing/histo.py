"""Event-count representations: ``histo`` (2 channels) and ``diff`` (1 channel), SPEC 3.

Both count events per pixel and time bin, scaled by ``1 / max_incr_per_pixel`` (and ``1 / 4**d`` when
downsampling by ``d``), then clamped: ``histo`` to ``[0, 1]`` per polarity (channel 0 = OFF,
channel 1 = ON), ``diff`` to ``[-1, 1]`` (+1 per ON event, -1 per OFF event). The clamp is applied
once, after all events are counted, so the result does not depend on event order.

Time bin of an event (integer µs, relative to the window start): ``k = (t * T) // window`` for
``0 <= t < window``. Events with ``p > 0`` are ON.
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.preprocessing.kernels import event_cell, micro_bin, micro_bin_grid
from evdet.preprocessing.registry import check_max_incr, prepare_kernel_call


@numba.njit(cache=True, nogil=True)
def _count_kernel(x, y, p, t, out, total, t0, d, num_utbins, signed):  # pragma: no cover - numba
    """Add one per event to ``out[k, c, y >> d, x >> d]`` (``[T, C, H, W]``).

    Unsigned: channel ``c = (p > 0) * U + u``; signed: channel ``u``, +1 for ON and -1 for OFF.
    ``u = (t * T * U) // total - k * U`` is the micro-bin within time bin ``k``.
    """
    height, width, tu, inv, inv_u = micro_bin_grid(out, total, num_utbins)
    # micro-bin m of the previous event and its time range [lo, hi): sorted events (the usual case)
    # reuse it, so the bin arithmetic runs once per micro-bin instead of once per event
    lo = np.int64(0)
    hi = np.int64(0)
    k = np.int64(0)
    u = np.int64(0)
    for i in range(x.shape[0]):
        tr, xi, yi = event_cell(x, y, t, i, t0, total, d, height, width)
        if tr < 0:
            continue
        if tr < lo or tr >= hi:
            m, k, u = micro_bin(tr, tu, total, inv, num_utbins, inv_u)
            lo = (m * total + tu - 1) // tu  # ceil(m * total / tu): first tr of micro-bin m
            hi = ((m + 1) * total + tu - 1) // tu
        if signed:
            if p[i] > 0:
                out[k, u, yi, xi] += 1.0
            else:
                out[k, u, yi, xi] -= 1.0
        else:
            c = u + num_utbins if p[i] > 0 else u
            out[k, c, yi, xi] += 1.0


def count_events(events: np.ndarray, out: np.ndarray, window: int, downsampling_factor: int, start_ts: int,
                 num_utbins: int, signed: bool, zero: bool = True) -> None:
    """Zero ``out`` (``float32 [T, C, H, W]``; not with ``zero=False``: the events are added to it) and
    write raw event counts into it (see ``_count_kernel``).

    Raises:
        ValueError / TypeError: bad ``window``, ``out`` or ``num_utbins``; the channel count of ``out``
            does not match.
    """
    out, total, x, y, p, t = prepare_kernel_call(events, out, window, downsampling_factor, num_utbins,
                                                 1 if signed else 2, zero=zero)
    _count_kernel(x, y, p, t, out, np.int64(total), np.int64(start_ts), np.int64(downsampling_factor),
                  np.int64(num_utbins), bool(signed))


def _scale(max_incr_per_pixel: float, downsampling_factor: int) -> np.float32:
    """The per-event increment ``1 / (max_incr_per_pixel * 4**d)``; raises ValueError on a bad value."""
    return np.float32(1.0 / (check_max_incr(max_incr_per_pixel) * 4.0 ** downsampling_factor))


def histo_accumulate(events: np.ndarray, acc: np.ndarray, window: int, downsampling_factor: int = 0, *,
                     max_incr_per_pixel: float = 5.0, start_ts: int = 0) -> None:
    """Add the events' raw counts to ``acc`` (``float32 [T, 2, H, W]``): the accumulating step of
    :func:`histo` for a window built from pieces (arguments as :func:`histo`)."""
    _scale(max_incr_per_pixel, downsampling_factor)
    count_events(events, acc, window, downsampling_factor, start_ts, 1, False, zero=False)


def histo_finalize(acc: np.ndarray, downsampling_factor: int = 0, *, max_incr_per_pixel: float = 5.0) -> None:
    """Counts -> :func:`histo` values, in place: scale by ``1 / (max_incr_per_pixel * 4**d)``, clamp at 1."""
    np.multiply(acc, _scale(max_incr_per_pixel, downsampling_factor), out=acc)
    np.minimum(acc, np.float32(1.0), out=acc)


def histo(events: np.ndarray, out: np.ndarray, window: int, downsampling_factor: int = 0, *,
          max_incr_per_pixel: float = 5.0, start_ts: int = 0) -> None:
    """Per-polarity event histogram, overwriting ``out``.

    Args:
        events: structured events ``x, y, p, t`` (``t`` in µs).
        out: ``float32 ndarray[T, 2, H, W]`` (channel 0 OFF, 1 ON), ``H, W`` the downsampled frame.
        window: whole window covered by the ``T`` bins (µs); events with ``t - start_ts`` outside
            ``[0, window)`` or outside the frame are ignored.
        downsampling_factor: ``d``: coordinates divided by ``2**d``, increment by ``4**d``.
        max_incr_per_pixel: number of events that saturate a pixel (each adds ``1 / max_incr_per_pixel``).
        start_ts: window start (µs), subtracted from event times.

    Values are ``min(count / (max_incr_per_pixel * 4**d), 1)`` in ``[0, 1]``. The same as zeroing ``out``,
    then :func:`histo_accumulate` and :func:`histo_finalize`.

    Raises:
        ValueError: ``max_incr_per_pixel <= 0``, bad ``window``, ``out`` without 2 channels.
        TypeError: ``out`` not float32.
    """
    _scale(max_incr_per_pixel, downsampling_factor)
    count_events(events, out, window, downsampling_factor, start_ts, 1, False)
    histo_finalize(out, downsampling_factor, max_incr_per_pixel=max_incr_per_pixel)


def diff_accumulate(events: np.ndarray, acc: np.ndarray, window: int, downsampling_factor: int = 0, *,
                    max_incr_per_pixel: float = 5.0, start_ts: int = 0) -> None:
    """Add the events' signed counts (ON minus OFF) to ``acc`` (``float32 [T, 1, H, W]``): the
    accumulating step of :func:`diff` (arguments as :func:`diff`)."""
    _scale(max_incr_per_pixel, downsampling_factor)
    count_events(events, acc, window, downsampling_factor, start_ts, 1, True, zero=False)


def diff_finalize(acc: np.ndarray, downsampling_factor: int = 0, *, max_incr_per_pixel: float = 5.0) -> None:
    """Signed counts -> :func:`diff` values, in place: scale by ``1 / (max_incr_per_pixel * 4**d)``, clip
    to ``[-1, 1]``."""
    np.multiply(acc, _scale(max_incr_per_pixel, downsampling_factor), out=acc)
    np.clip(acc, np.float32(-1.0), np.float32(1.0), out=acc)


def diff(events: np.ndarray, out: np.ndarray, window: int, downsampling_factor: int = 0, *,
         max_incr_per_pixel: float = 5.0, start_ts: int = 0) -> None:
    """Signed event count (ON minus OFF), overwriting ``out``.

    Args:
        out: ``float32 ndarray[T, 1, H, W]``.
        (others as :func:`histo`)

    Values are ``clip((n_on - n_off) / (max_incr_per_pixel * 4**d), -1, 1)``; the same as zeroing ``out``,
    then :func:`diff_accumulate` and :func:`diff_finalize`.

    Raises:
        ValueError: ``max_incr_per_pixel <= 0``, bad ``window``, ``out`` without 1 channel.
        TypeError: ``out`` not float32.
    """
    _scale(max_incr_per_pixel, downsampling_factor)
    count_events(events, out, window, downsampling_factor, start_ts, 1, True)
    diff_finalize(out, downsampling_factor, max_incr_per_pixel=max_incr_per_pixel)
