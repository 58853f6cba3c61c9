"""``stacked_histogram`` (2·U channels): per polarity and micro-bin event counts, clipped (SPEC 3).

This is the input of current recurrent detectors (RVT-style). Each time bin of length
``window / T`` is split into ``U`` micro-bins; channel ``c = p * U + u`` (OFF micro-bins first, then
ON) holds the number of events of polarity ``p`` in micro-bin ``u``, clipped at ``max_count``.

Values are counts, not normalised: the in-memory tensor is float32 in ``[0, max_count]``; with
downsampling by ``d`` each event adds ``1 / 4**d`` (a mean count per sensor pixel), so values may be
fractional. In HDF5 with ``store_as_uint8`` the counts are stored as ``round(count)`` in uint8
(``uint8_scale = 1``, readers do not divide by 255), which needs ``max_count <= 255``.
"""

from __future__ import annotations

import numpy as np

from evdet.preprocessing.histo import count_events


def _check_max_count(max_count: float) -> None:
    if not np.isfinite(max_count) or max_count <= 0:
        raise ValueError(f"max_count must be a finite number > 0, got {max_count!r}")


def stacked_histogram_accumulate(events: np.ndarray, acc: np.ndarray, window: int,
                                 downsampling_factor: int = 0, *, num_utbins: int = 10, max_count: int = 10,
                                 start_ts: int = 0) -> None:
    """Add the events' raw counts per polarity and micro-bin to ``acc`` (``float32 [T, 2 * num_utbins, H,
    W]``): the accumulating step of :func:`stacked_histogram` (arguments as there)."""
    _check_max_count(max_count)
    count_events(events, acc, window, downsampling_factor, start_ts, num_utbins, False, zero=False)


def stacked_histogram_finalize(acc: np.ndarray, downsampling_factor: int = 0, *, num_utbins: int = 10,
                               max_count: int = 10) -> None:
    """Counts -> :func:`stacked_histogram` values, in place: divided by ``4**d``, clipped at ``max_count``."""
    _check_max_count(max_count)
    if downsampling_factor:
        np.multiply(acc, np.float32(1.0 / 4.0 ** downsampling_factor), out=acc)
    np.minimum(acc, np.float32(max_count), out=acc)


def stacked_histogram(events: np.ndarray, out: np.ndarray, window: int, downsampling_factor: int = 0, *,
                      num_utbins: int = 10, max_count: int = 10, start_ts: int = 0) -> None:
    """Clipped event counts per polarity and micro-bin, overwriting ``out``.

    Args:
        events: structured events ``x, y, p, t`` (``t`` in µs).
        out: ``float32 ndarray[T, 2 * num_utbins, H, W]``.
        window: whole window covered by the ``T`` bins (µs); event ``t - start_ts`` falls in micro-bin
            ``m = (t * T * U) // window`` (time bin ``m // U``); events outside ``[0, window)`` or
            outside the frame are ignored.
        downsampling_factor: ``d``: coordinates divided by ``2**d``, increment by ``4**d``.
        num_utbins: ``U`` micro-bins per time bin.
        max_count: counts are clipped at this value (> 0).
        start_ts: window start (µs), subtracted from event times.

    The same as zeroing ``out``, then :func:`stacked_histogram_accumulate` and
    :func:`stacked_histogram_finalize`.

    Raises:
        ValueError: ``max_count <= 0``, ``num_utbins < 1``, bad ``window``, wrong channel count.
        TypeError: ``out`` not float32.
    """
    _check_max_count(max_count)
    count_events(events, out, window, downsampling_factor, start_ts, num_utbins, False)
    stacked_histogram_finalize(out, downsampling_factor, num_utbins=num_utbins, max_count=max_count)
