"""evdet.preprocessing.builder: a window's tensor built from pieces of its events is bit-identical to the
single-shot ``events_to_tensor`` of the joined events, for every representation, on synthetic and real
recordings read piece by piece."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io.dtypes import EVENT_DTYPE
from evdet.io.read import open_events
from evdet.preprocessing import REPRESENTATIONS, TensorBuilder, events_to_tensor, register_representation

CASES = [("histo", {}), ("histo", {"max_incr_per_pixel": 3.0}), ("diff", {}), ("event_cube", {}),
         ("event_cube", {"split_polarity": False, "num_utbins": 4}), ("timesurface", {}),
         ("multi_channel_timesurface", {}), ("stacked_histogram", {}),
         ("stacked_histogram", {"max_count": 200}), ("rvt_stacked_histogram", {})]


def assert_bit_identical(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))  # -0.0 != 0.0 here


def make_events(rng, n: int, height: int, width: int, span: int) -> np.ndarray:
    """Random events, a burst at one pixel and one time, and events outside the window and the frame."""
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, width + 3, n)  # some outside the frame
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = rng.integers(-50, span + 50, n)  # some outside the window
    ev["x"][: n // 3], ev["y"][: n // 3], ev["t"][: n // 3] = 5, 4, span // 3  # a burst on one pixel
    return ev[np.argsort(ev["t"], kind="stable")]


def test_every_builtin_representation_is_covered():
    builtin = {n for n, rep in REPRESENTATIONS.items() if rep.kernel.__module__.startswith("evdet.")}
    assert {name for name, _ in CASES} == builtin
    assert not REPRESENTATIONS["rvt_stacked_histogram"].piecewise  # needs each bin's first/last event
    assert all(REPRESENTATIONS[name].piecewise for name, _ in CASES if name != "rvt_stacked_histogram")


@pytest.mark.parametrize("name, params", CASES)
@pytest.mark.parametrize("d", [0, 1])
def test_pieces_give_the_single_shot_tensor_bit_for_bit(rng, name, params, d):
    height, width, dt, num_tbins, start = 12, 16, 1000, 3, 10_000
    ev = make_events(rng, 3000, height, width, num_tbins * dt)
    ev["t"] += start
    want = events_to_tensor(ev, name, num_tbins, height, width, dt, start_ts=start, downsampling_factor=d,
                            **params)
    for cuts in ([], [1, 2, 2, 1000, 2999], sorted(rng.integers(0, ev.size, 20).tolist())):
        builder = TensorBuilder(name, num_tbins, height, width, dt, start_ts=start, downsampling_factor=d,
                                **params)
        for piece in np.split(ev, cuts):
            builder.add(piece)
        assert builder.count == ev.size and builder.t_max == int(ev["t"].max())
        assert_bit_identical(builder.result(), want)
    assert want.any()


def test_empty_window_and_result_finishes_the_builder():
    builder = TensorBuilder("histo", 2, 4, 6, 100)
    builder.add(np.zeros(0, EVENT_DTYPE))
    out = builder.result()
    assert_bit_identical(out, events_to_tensor(np.zeros(0, EVENT_DTYPE), "histo", 2, 4, 6, 100))
    assert builder.result() is out and builder.t_max is None and builder.count == 0
    with pytest.raises(RuntimeError, match="after result"):
        builder.add(np.zeros(1, EVENT_DTYPE))


def test_bad_arguments_are_refused_at_construction():
    with pytest.raises(ValueError, match="unknown representation"):
        TensorBuilder("nope", 1, 4, 4, 10)
    with pytest.raises(ValueError, match="max_incr_per_pixel"):
        TensorBuilder("histo", 1, 4, 4, 10, max_incr_per_pixel=0)
    with pytest.raises(ValueError, match="delta_t"):
        TensorBuilder("histo", 1, 4, 4, 0)
    with pytest.raises(ValueError, match="both accumulate and finalize"):
        register_representation("test_half", lambda *a, **k: None, 1, accumulate=lambda *a, **k: None)


def window_tensors_match(path, name: str, delta_t: int, num_tbins: int, max_events: int, start_ts: int = 0,
                         **params) -> int:
    """Every window of ``num_tbins`` bins: pieces through TensorBuilder == events_to_tensor of the whole
    window; returns the number of windows read in more than one piece."""
    span = delta_t * num_tbins
    with open_events(path) as r:
        height, width = r.height, r.width
        whole = {t0: ev for t0, ev in r.iter_windows(span, start_ts, max_events=None)}
    split, builder, pieces = 0, None, 0
    with open_events(path) as r:
        for t0, piece, last in r.iter_window_pieces(span, start_ts, max_events=max_events):
            if builder is None:
                builder = TensorBuilder(name, num_tbins, height, width, delta_t, start_ts=t0, **params)
            builder.add(piece)
            pieces += 1
            if last:
                want = events_to_tensor(whole.pop(t0), name, num_tbins, height, width, delta_t, start_ts=t0,
                                        **params)
                assert_bit_identical(builder.result(), want)
                split += pieces > 1
                builder, pieces = None, 0
    assert not whole and builder is None
    return split


@pytest.mark.parametrize("fmt", ["dat", "evt2", "evt21", "h5"])
@pytest.mark.parametrize("name, params", [("histo", {}), ("event_cube", {}), ("timesurface", {}),
                                          ("stacked_histogram", {"max_count": 255})])
def test_burst_windows_read_in_pieces_give_the_whole_window_tensor(burst_recording, fmt, name, params):
    _, paths = burst_recording
    assert window_tensors_match(paths[fmt], name, 5000, 2, 400, **params) >= 2  # both bursts split


@pytest.mark.parametrize("file, max_events", [("sample_ncars.dat", 50), ("evt2_sample.raw", 1500),
                                              ("evt3_sample.raw", 1500)])
@pytest.mark.parametrize("name", ["histo", "diff", "event_cube", "multi_channel_timesurface",
                                  "stacked_histogram"])
def test_real_recordings_read_in_pieces_give_the_whole_window_tensor(real_data, file, max_events, name):
    path = real_data / file
    with open_events(path) as r:
        t0 = r.time_range()[0] // 10_000 * 10_000
    assert window_tensors_match(path, name, 5000, 2, max_events, start_ts=t0) >= 1
