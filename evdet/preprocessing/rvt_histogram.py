"""RVT's stacked histogram (``rvt_stacked_histogram``): the input representation of RVT and of the detectors
trained on RVT's preprocessed Gen1/1Mpx datasets, computed exactly as RVT's preprocessing computes it.

One representation is computed from the events of one window (for RVT's preprocessed datasets: the events
with ``T − 50 ms ≤ t ≤ T`` before the representation's end time ``T``, both ends inclusive). With
``t_first`` and ``t_last`` the times of the window's first and last event (the window is not the nominal
time span: the micro-bins stretch from the first to the last event actually present):

* micro-bin ``b = min(floor(float32(float32(t − t_first) / float32(max(t_last − t_first, 1))) · 10), 9)``,
  every product and quotient rounded to float32 as RVT's torch code computes it;
* channel ``c = p · U + b`` (``U = 10`` micro-bins; OFF micro-bins first, then ON; ``p < 0`` counts as
  OFF, as RVT clips polarities at 0);
* counts accumulate in uint8, **wrapping at 256** (RVT's "fastmode", a pixel with 260 events counts 4),
  and are only then clipped to ``max_count`` (10).

Downsampling by ``d`` reproduces torch's ``interpolate(mode="nearest-exact", scale_factor=2**-d)`` of the
full-resolution histogram (RVT's 1Mpx ``_ds2_nearest`` files, ``d = 1``): output pixel ``(i, j)`` is
sensor pixel ``(i·2^d + 2^(d−1), j·2^d + 2^(d−1))`` (``rep[:, 1::2, 1::2]`` for ``d = 1``); events at
other pixels are not counted, but they still set ``t_first`` / ``t_last``. The frame is
``(H >> d, W >> d)``.

Timestamps are first made non-decreasing by a running maximum (an event earlier than one before it gets
that one's time), as RVT's HDF5 reader does to the whole recording before cutting windows.

Differences from RVT, on inputs RVT's code does not handle: events outside the frame are ignored (RVT
adds them at the flattened index ``x + W·y + …``, i.e. into a neighbouring row or channel, or fails);
polarities above 1 count as ON (RVT fails an assertion).

``rvt_histogram_windows`` is the pure function (numba kernel behind it, tested against a plain numpy
statement of the rules above); ``rvt_stacked_histogram`` is the registry kernel (SPEC 3) that computes one
representation per time bin of a chunk, for recordings converted on the fly.
"""

from __future__ import annotations

import numba
import numpy as np

from evdet.preprocessing.registry import check_out, check_window, event_fields


@numba.njit(cache=True, nogil=True)
def _windows_kernel(x, y, p, t, starts, stops, out, num_bins, d):  # pragma: no cover - numba
    """Counts (uint8, wrapping) of window ``i`` = events ``starts[i] : stops[i]`` into ``out[i]``
    (``uint8 [N, 2·num_bins, H, W]``, zeroed by the caller)."""
    height = out.shape[2]
    width = out.shape[3]
    step = np.int64(1) << d
    mask = step - 1
    offset = step >> 1  # nearest-exact sample inside each 2^d block (0 when d = 0)
    nb = np.float32(num_bins)
    last_bin = num_bins - 1
    for i in range(starts.shape[0]):
        s0 = starts[i]
        s1 = stops[i]
        if s1 <= s0:
            continue
        t0 = t[s0]
        span = t[s1 - 1] - t0
        if span < 1:
            span = 1
        fspan = np.float32(span)
        for e in range(s0, s1):
            xi = np.int64(x[e])
            yi = np.int64(y[e])
            if d > 0:
                if (xi & mask) != offset or (yi & mask) != offset:
                    continue
                xi >>= d
                yi >>= d
            if xi < 0 or yi < 0 or xi >= width or yi >= height:
                continue
            tn = np.float32(np.float32(t[e] - t0) / fspan) * nb  # float32 throughout, as RVT's torch code
            b = np.int64(np.floor(tn))
            if b > last_bin:
                b = last_bin
            c = b + num_bins if p[e] > 0 else b
            out[i, c, yi, xi] = np.uint8(out[i, c, yi, xi] + np.uint8(1))  # uint8: wraps at 256


def correct_time(t: np.ndarray, start: int | None = None) -> np.ndarray:
    """Non-decreasing copy of ``t`` (int64 µs): the running maximum, starting from ``start`` when given (the
    last corrected time of a previous block of the same recording), as RVT's HDF5 reader corrects times."""
    t = np.asarray(t, dtype=np.int64)
    if start is None or t.size == 0:
        return np.maximum.accumulate(t) if t.size else t.copy()
    return np.maximum.accumulate(np.maximum(t, np.int64(start)))


def rvt_histogram_windows(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, starts: np.ndarray,
                          stops: np.ndarray, height: int, width: int, num_bins: int = 10, max_count: int = 10,
                          downsampling_factor: int = 0) -> np.ndarray:
    """RVT stacked histograms of ``N`` windows of one event stream (rules in the module docstring).

    Args:
        x, y, p, t: events (1-D, same length; ``t`` int µs, non-decreasing: see :func:`correct_time`).
        starts, stops: int ``[N]``: window ``i`` is events ``starts[i] : stops[i]``.
        height, width: sensor size (pixels).
        num_bins: micro-bins per polarity (RVT: 10).
        max_count: counts are clipped to this after the uint8 accumulation (1..255; RVT: 10).
        downsampling_factor: ``d``; the output is ``(height >> d, width >> d)`` by nearest-exact sampling.

    Returns:
        ``uint8 ndarray[N, 2 * num_bins, height >> d, width >> d]``.

    Raises:
        ValueError: mismatched lengths, ``num_bins < 1``, ``max_count`` outside 1..255, windows outside
            the event arrays or with ``stop < start``, decreasing ``t`` inside a window, bad sizes or ``d``.
    """
    n = len(t)
    if not (len(x) == len(y) == len(p) == n):
        raise ValueError(f"rvt_histogram_windows: x, y, p, t have lengths {len(x)}, {len(y)}, {len(p)}, {n}")
    if int(num_bins) != num_bins or num_bins < 1:
        raise ValueError(f"rvt_histogram_windows: num_bins must be an integer >= 1, got {num_bins!r}")
    if int(max_count) != max_count or not 1 <= max_count <= 255:
        raise ValueError(f"rvt_histogram_windows: max_count must be an integer in 1..255, got {max_count!r}")
    d = int(downsampling_factor)
    if d != downsampling_factor or d < 0:
        raise ValueError(f"rvt_histogram_windows: downsampling_factor must be an integer >= 0, got "
                         f"{downsampling_factor!r}")
    if height < 1 or width < 1 or (height >> d) < 1 or (width >> d) < 1:
        raise ValueError(f"rvt_histogram_windows: bad frame (height, width) = ({height}, {width}) "
                         f"for d = {d}")
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    stops = np.asarray(stops, dtype=np.int64).reshape(-1)
    if starts.shape != stops.shape:
        raise ValueError(f"rvt_histogram_windows: {starts.size} starts but {stops.size} stops")
    if starts.size and (starts.min() < 0 or stops.max() > n or np.any(stops < starts)):
        bad = int(np.flatnonzero((starts < 0) | (stops > n) | (stops < starts))[0])
        raise ValueError(f"rvt_histogram_windows: window {bad} = events [{starts[bad]}, {stops[bad]}) "
                         f"outside the {n} events")
    t = np.ascontiguousarray(t, dtype=np.int64)
    if n > 1 and np.any(t[1:] < t[:-1]):
        raise ValueError("rvt_histogram_windows: t must be non-decreasing (apply correct_time first)")
    out = np.zeros((starts.size, 2 * int(num_bins), int(height) >> d, int(width) >> d), dtype=np.uint8)
    if starts.size == 0 or n == 0:
        return out
    x, y, p = (np.ascontiguousarray(a) for a in (x, y, p))
    _windows_kernel(x, y, p, t, starts, stops, out, np.int64(num_bins), np.int64(d))
    if max_count < 255:
        np.minimum(out, np.uint8(max_count), out=out)
    return out


def rvt_stacked_histogram(events: np.ndarray, out: np.ndarray, window: int, downsampling_factor: int = 0, *,
                          num_utbins: int = 10, max_count: int = 10, start_ts: int = 0) -> None:
    """Registry kernel (SPEC 3): one RVT stacked histogram per time bin, overwriting ``out``.

    Time bin ``k`` of the ``T`` bins is the window of the events with (running-maximum corrected)
    ``t − start_ts`` in ``[k·window/T, (k+1)·window/T)`` (half-open, the loader's chunks; RVT's
    preprocessed windows also include an event exactly at their end time); within it the micro-bins span
    its first to last event (see the module docstring).

    Args:
        events: structured events ``x, y, p, t`` (``t`` in µs).
        out: ``float32 ndarray[T, 2 * num_utbins, H >> d, W >> d]``; values are counts ``0..max_count``.
        window: whole window covered by the ``T`` bins (µs).
        downsampling_factor: ``d``: nearest-exact sampling of the full-resolution histogram.
        num_utbins: micro-bins per polarity. max_count: count clip (1..255).
        start_ts: window start (µs), subtracted from event times.

    Raises:
        ValueError: bad ``window``, parameters or channel count. TypeError: ``out`` not float32.
    """
    out = check_out(out)
    total = check_window(window, out.shape[0], downsampling_factor)
    if int(num_utbins) != num_utbins or num_utbins < 1:
        raise ValueError(f"num_utbins must be an integer >= 1, got {num_utbins!r}")
    if out.shape[1] != 2 * int(num_utbins):
        raise ValueError(f"out has {out.shape[1]} channels, expected {2 * int(num_utbins)} "
                         f"(num_utbins={num_utbins})")
    x, y, p, t = event_fields(events)
    tr = correct_time(t) - np.int64(start_ts)
    num_t = out.shape[0]
    edges = -((-np.arange(num_t + 1, dtype=np.int64) * total) // num_t)  # ceil(k * total / T)
    bounds = np.searchsorted(tr, edges, side="left")
    d = int(downsampling_factor)
    height, width = out.shape[2] << d, out.shape[3] << d
    frames = rvt_histogram_windows(x, y, p, tr, bounds[:-1], bounds[1:], height, width, num_utbins,
                                   max_count, d)
    out[...] = frames
