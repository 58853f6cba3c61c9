"""Compiled pieces shared by the representation kernels (``histo.py``, ``event_cube.py``,
``timesurface.py``), inlined into each: where an event falls, and the exact bin division."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def event_cell(x, y, t, i, t0, total, d, height, width):  # pragma: no cover - numba
    """``(tr, xi, yi)`` of event ``i``: its time relative to the window start ``t0`` (µs) and its column
    and row downsampled by ``2**d``; ``tr = -1`` when the event is outside ``[0, total)`` or outside the
    ``height x width`` frame."""
    tr = np.int64(t[i]) - t0
    if tr < 0 or tr >= total:
        return np.int64(-1), np.int64(0), np.int64(0)
    xi = np.int64(x[i]) >> d
    yi = np.int64(y[i]) >> d
    if xi >= width or yi >= height:
        return np.int64(-1), xi, yi
    return tr, xi, yi


@numba.njit(cache=True, nogil=True, inline="always")
def floor_div_scaled(tr, tu, total, inv):  # pragma: no cover - numba
    """``(tr * tu) // total`` for ``tr >= 0`` without an integer division: a float estimate
    ``tr * inv`` (``inv = tu / total``) corrected to the exact value (integer division is the slowest
    step of the kernels)."""
    num = tr * tu
    m = np.int64(tr * inv)
    if m * total > num:
        m -= 1
    elif (m + 1) * total <= num:
        m += 1
    return m


@numba.njit(cache=True, nogil=True, inline="always")
def micro_bin(tr, tu, total, inv, num_utbins, inv_u):  # pragma: no cover - numba
    """``(m, k, u)`` of relative time ``tr`` (``0 <= tr < total``) in a window of ``tu = T·U`` micro-bins:
    ``m = (tr·tu) // total`` the micro-bin over the window, ``k = m // U`` the time bin and
    ``u = m − k·U`` the micro-bin within it (``inv = tu / total``, ``inv_u = 1 / U``)."""
    m = floor_div_scaled(tr, tu, total, inv)
    k = floor_div_scaled(m, 1, num_utbins, inv_u)
    return m, k, m - k * num_utbins


@numba.njit(cache=True, nogil=True, inline="always")
def micro_bin_grid(out, total, num_utbins):  # pragma: no cover - numba
    """``(height, width, tu, inv, inv_u)`` of ``out: [T, C, H, W]`` for :func:`event_cell` and
    :func:`micro_bin` over a window of ``total`` µs with ``num_utbins`` micro-bins per bin."""
    tu = out.shape[0] * num_utbins
    return out.shape[2], out.shape[3], tu, tu / total, 1.0 / num_utbins
