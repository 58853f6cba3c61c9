"""Plain numpy implementations of the SPEC 3 representations, written from the definitions in
``evdet/preprocessing/*`` docstrings, to test the numba kernels against. Slow but obvious."""

from __future__ import annotations

import numpy as np
from rvt_reference import rvt_stacked_histogram_ref


def _select(events, shape, total, d, start_ts):
    """Events inside the window and frame: integer arrays x, y, p (0/1), relative t."""
    _, _, height, width = shape
    t = events["t"].astype(np.int64) - start_ts
    x = events["x"].astype(np.int64) >> d
    y = events["y"].astype(np.int64) >> d
    keep = (t >= 0) & (t < total) & (x < width) & (y < height)
    return x[keep], y[keep], (events["p"][keep] > 0).astype(np.int64), t[keep]


def counts(events, shape, total, d, start_ts, num_utbins, signed):
    num_t = shape[0]
    x, y, p, t = _select(events, shape, total, d, start_ts)
    m = (t * num_t * num_utbins) // total
    k, u = m // num_utbins, m % num_utbins
    out = np.zeros(shape, dtype=np.float64)
    if signed:
        np.add.at(out, (k, u, y, x), np.where(p > 0, 1.0, -1.0))
    else:
        np.add.at(out, (k, p * num_utbins + u, y, x), 1.0)
    return out


def histo_ref(events, shape, total, d=0, start_ts=0, max_incr_per_pixel=5.0):
    c = counts(events, shape, total, d, start_ts, 1, False)
    return np.minimum(c / (max_incr_per_pixel * 4.0 ** d), 1.0).astype(np.float32)


def diff_ref(events, shape, total, d=0, start_ts=0, max_incr_per_pixel=5.0):
    c = counts(events, shape, total, d, start_ts, 1, True)
    return np.clip(c / (max_incr_per_pixel * 4.0 ** d), -1.0, 1.0).astype(np.float32)


def stacked_histogram_ref(events, shape, total, d=0, start_ts=0, num_utbins=10, max_count=10):
    c = counts(events, shape, total, d, start_ts, num_utbins, False)
    return np.minimum(c / 4.0 ** d, max_count).astype(np.float32)


def event_cube_ref(events, shape, total, d=0, start_ts=0, num_utbins=3, split_polarity=True,
                   max_incr_per_pixel=5.0):
    num_t = shape[0]
    x, y, p, t = _select(events, shape, total, d, start_ts)
    out = np.zeros(shape, dtype=np.float64)
    k = (t * num_t) // total
    # position in micro-bin units relative to the first micro-bin centre of bin k
    s = np.clip((t * num_t * num_utbins) / total - k * num_utbins - 0.5, 0.0, num_utbins - 1)
    for u in range(num_utbins):
        w = np.maximum(0.0, 1.0 - np.abs(s - u))
        if split_polarity:
            np.add.at(out, (k, p * num_utbins + u, y, x), w)
        else:
            np.add.at(out, (k, np.full_like(k, u), y, x), np.where(p > 0, w, -w))
    low = 0.0 if split_polarity else -1.0
    return np.clip(out / (max_incr_per_pixel * 4.0 ** d), low, 1.0).astype(np.float32)


def timesurface_ref(events, shape, total, d=0, start_ts=0, num_utbins=1):
    num_t = shape[0]
    x, y, p, t = _select(events, shape, total, d, start_ts)
    tu = num_t * num_utbins
    m = (t * tu) // total
    bin_len = total / tu
    value = np.minimum((t + 1 - m * bin_len) / bin_len, 1.0)
    out = np.zeros(shape, dtype=np.float64)
    np.maximum.at(out, (m // num_utbins, p * num_utbins + m % num_utbins, y, x), value)
    return out.astype(np.float32)


def multi_channel_timesurface_ref(events, shape, total, d=0, start_ts=0, num_utbins=3):
    return timesurface_ref(events, shape, total, d, start_ts, num_utbins)


REFERENCES = {
    "histo": histo_ref,
    "diff": diff_ref,
    "event_cube": event_cube_ref,
    "timesurface": timesurface_ref,
    "multi_channel_timesurface": multi_channel_timesurface_ref,
    "stacked_histogram": stacked_histogram_ref,
    "rvt_stacked_histogram": rvt_stacked_histogram_ref,
}


def random_events(rng, n, height, width, total, start_ts=0):
    """``EVENT_DTYPE`` events, unsorted, about 20 % of them outside the window or the frame."""
    from evdet.io.dtypes import EVENT_DTYPE

    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, width + width // 8 + 1, n)
    ev["y"] = rng.integers(0, height + height // 8 + 1, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = start_ts + rng.integers(-total // 10, total + total // 10, n)
    return ev


def dat_events(path):
    """Events of a Prophesee DAT file (header, type/size bytes, 8-byte records), parsed plainly."""
    from evdet.io.dtypes import EVENT_DTYPE

    data = path.read_bytes()
    pos = 0
    while data[pos:pos + 1] == b"%":
        pos = data.index(b"\n", pos) + 1
    pos += 2
    rec = np.frombuffer(data[pos:], dtype=np.dtype([("t", "<u4"), ("w", "<u4")]))
    ev = np.zeros(rec.size, dtype=EVENT_DTYPE)
    ev["t"] = rec["t"]
    ev["x"] = rec["w"] & 0x3FFF
    ev["y"] = (rec["w"] >> 14) & 0x3FFF
    ev["p"] = (rec["w"] >> 28) & 1
    return ev
