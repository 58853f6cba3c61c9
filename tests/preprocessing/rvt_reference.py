"""Plain numpy statement of RVT's stacked histogram (RVT's ``data/utils/representations.py`` as described in
``evdet/preprocessing/rvt_histogram.py`` and SPEC 2.8), written independently of the numba kernel: the
full-resolution histogram first, counts in int64 reduced modulo 256, then clipped; downsampling by slicing."""

from __future__ import annotations

import numpy as np


def rvt_window_ref(x, y, p, t, height, width, num_bins=10, max_count=10, d=0):
    """One window of events (``t`` non-decreasing) -> ``uint8 [2 * num_bins, height >> d, width >> d]``."""
    full = np.zeros((2 * num_bins, height, width), dtype=np.int64)
    x, y, p, t = (np.asarray(a).astype(np.int64) for a in (x, y, p, t))
    if t.size:
        span = np.float32(max(int(t[-1] - t[0]), 1))
        frac = (t - t[0]).astype(np.float32) / span  # float32 / float32 -> float32
        b = np.minimum(np.floor(frac * np.float32(num_bins)), num_bins - 1).astype(np.int64)
        c = (p > 0).astype(np.int64) * num_bins + b
        inside = (x >= 0) & (y >= 0) & (x < width) & (y < height)
        np.add.at(full, (c[inside], y[inside], x[inside]), 1)
    full = np.minimum(full % 256, max_count).astype(np.uint8)
    if d:
        off, step = 1 << (d - 1), 1 << d
        full = full[:, off::step, off::step][:, : height >> d, : width >> d]
    return full


def rvt_stacked_histogram_ref(events, shape, total, d=0, start_ts=0, num_utbins=10, max_count=10):
    """The registry kernel: bin k = events with running-max corrected ``t - start_ts`` in
    ``[k * total / T, (k + 1) * total / T)``, one RVT window each; float32 ``shape = [T, C, H, W]``."""
    num_t, _, h, w = shape
    t = events["t"].astype(np.int64)
    t = np.maximum.accumulate(t) - start_ts if t.size else t
    out = np.zeros(shape, dtype=np.float32)
    k = np.where((t >= 0) & (t < total), (t * num_t) // total, -1)
    for b in range(num_t):
        sel = k == b
        ev = events[sel]
        out[b] = rvt_window_ref(ev["x"], ev["y"], ev["p"], t[sel], h << d, w << d, num_utbins, max_count, d)
    return out
