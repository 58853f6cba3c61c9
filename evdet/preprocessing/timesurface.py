"""Time surfaces: ``timesurface`` (2 channels) and ``multi_channel_timesurface`` (2·U channels), SPEC 3.

Per polarity (channel ``c = p·U + u``, OFF first), each pixel holds the normalised time of the latest
event in its (micro-)bin, in ``(0, 1]``; 0 means no event. With bins of length ``L = window / (T·U)``
and an event at relative time ``t`` (integer µs) in micro-bin ``m = (t·T·U) // window``, the value is
``min((t + 1 − m·L) / L, 1)``: an event in the last µs of the bin gives 1, one in its first µs gives
``1 / L``. With downsampling the latest event of the ``2**d × 2**d`` block wins (no ``4**d`` factor).
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.preprocessing.kernels import event_cell, micro_bin, micro_bin_grid
from evdet.preprocessing.registry import prepare_kernel_call


@numba.njit(cache=True, nogil=True)
def _timesurface_kernel(x, y, p, t, out, total, t0, d, num_utbins):  # pragma: no cover - numba
    height, width, tu, inv, inv_u = micro_bin_grid(out, total, num_utbins)
    for i in range(x.shape[0]):
        tr, xi, yi = event_cell(x, y, t, i, t0, total, d, height, width)
        if tr < 0:
            continue
        m, k, u = micro_bin(tr, tu, total, inv, num_utbins, inv_u)
        c = u + num_utbins if p[i] > 0 else u
        v = (tr * tu - m * total + tu) / total
        if v > 1.0:
            v = 1.0
        if v > out[k, c, yi, xi]:
            out[k, c, yi, xi] = v


def _timesurface(events: np.ndarray, out: np.ndarray, window: int, downsampling_factor: int, num_utbins: int,
                 start_ts: int, zero: bool = True) -> None:
    out, total, x, y, p, t = prepare_kernel_call(events, out, window, downsampling_factor, num_utbins, 2,
                                                 f" (num_utbins={num_utbins})", zero=zero)
    _timesurface_kernel(x, y, p, t, out, np.int64(total), np.int64(start_ts), np.int64(downsampling_factor),
                        np.int64(num_utbins))


def timesurface(events: np.ndarray, out: np.ndarray, window: int, downsampling_factor: int = 0, *,
                start_ts: int = 0) -> None:
    """Normalised time of the latest event per polarity and bin, overwriting ``out``.

    Args:
        events: structured events ``x, y, p, t`` (``t`` in µs).
        out: ``float32 ndarray[T, 2, H, W]`` (channel 0 OFF, 1 ON); values in ``(0, 1]``, 0 = no event.
        window: whole window covered by the ``T`` bins (µs); events with ``t - start_ts`` outside
            ``[0, window)`` or outside the frame are ignored.
        downsampling_factor: ``d``: coordinates divided by ``2**d``.
        start_ts: window start (µs), subtracted from event times.

    Raises:
        ValueError: bad ``window``, ``out`` without 2 channels.  TypeError: ``out`` not float32.
    """
    _timesurface(events, out, window, downsampling_factor, 1, start_ts)


def multi_channel_timesurface(events: np.ndarray, out: np.ndarray, window: int,
                              downsampling_factor: int = 0, *, num_utbins: int = 3,
                              start_ts: int = 0) -> None:
    """Time surface over ``U`` micro-bins per time bin, overwriting ``out``.

    Args:
        out: ``float32 ndarray[T, 2·U, H, W]``, channel ``p·U + u``; values in ``(0, 1]``, 0 = no event.
        num_utbins: ``U`` micro-bins per time bin.
        (others as :func:`timesurface`)

    Raises:
        ValueError: ``num_utbins < 1``, bad ``window``, wrong channel count.  TypeError: ``out`` not float32.
    """
    _timesurface(events, out, window, downsampling_factor, num_utbins, start_ts)


def timesurface_accumulate(events: np.ndarray, acc: np.ndarray, window: int, downsampling_factor: int = 0, *,
                           num_utbins: int = 1, start_ts: int = 0) -> None:
    """Raise ``acc`` to the events' normalised times where they are later (a maximum, so pieces of a window
    may come in any order): the accumulating step of :func:`timesurface` (``num_utbins = 1``) and
    :func:`multi_channel_timesurface`, whose values need no final step."""
    _timesurface(events, acc, window, downsampling_factor, num_utbins, start_ts, zero=False)


def timesurface_finalize(acc: np.ndarray, downsampling_factor: int = 0, **_params) -> None:
    """Nothing to do: the accumulated maxima are the time-surface values."""
