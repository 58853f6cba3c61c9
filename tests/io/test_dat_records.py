"""Tests of evdet.io.dat_records: the DAT record decoders (numba kernels and the numpy path for clean
records) against a numpy reference and each other."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from evdet.io import dat_records
from evdet.io.dat_kernels import decode_dat_kernel, decode_dat_kernel_parallel
from evdet.io.dat_records import (
    DAT_MAX_COORD,
    HALF_TIME_WRAP,
    OUTLIER_STEP,
    TIME_WRAP,
    dat_drops,
    decode_dat_records,
    encode_dat_records,
    max_xy,
    new_dat_state,
)
from evdet.io.dtypes import EVENT_DTYPE

WRAP = TIME_WRAP


pytestmark = pytest.mark.usefixtures("decode_path")


def reference_decode(records: np.ndarray, geometry: tuple[int, int] | None = None) -> np.ndarray:
    """Plain numpy DAT decode with the rules of ``dat_records`` for isolated corrupt records (no two
    corrupt records closer than 2 apart): a record that jumps (> 2^31) from its predecessor and to its
    successor (or is the last) is dropped, and so is an inner record more than OUTLIER_STEP (mod 2^32)
    from both neighbours while they are within it of each other, and the first one when it jumps to the
    second and the second does not jump to the third; a decrease > 2^31 between kept records is a wrap;
    events outside
    ``geometry`` (height, width) are dropped."""
    t32 = records[:, 0].astype(np.int64)
    n = t32.size
    jump = np.abs(np.diff(t32)) > HALF_TIME_WRAP  # jump[i]: between records i and i + 1

    def far(a, b):  # more than OUTLIER_STEP apart, modulo 2^32
        d = np.abs(b - a)
        return np.minimum(d, WRAP - d) > OUTLIER_STEP

    corrupt = np.zeros(n, dtype=bool)
    if n >= 2:
        corrupt[1:-1] = jump[:-1] & jump[1:]
        outlier = far(t32[:-2], t32[1:-1]) & far(t32[1:-1], t32[2:]) & ~far(t32[:-2], t32[2:])
        corrupt[1:-1] |= outlier
        corrupt[-1] = jump[-1]
    if n >= 3:
        corrupt[0] = jump[0] & ~jump[1]
    t32, w = t32[~corrupt], records[~corrupt, 1].astype(np.int64)
    wraps = np.concatenate([[0], np.cumsum(np.diff(t32) < -HALF_TIME_WRAP)])
    out = np.zeros(t32.size, dtype=EVENT_DTYPE)
    out["x"] = w & 0x3FFF
    out["y"] = (w >> 14) & 0x3FFF
    out["p"] = (w >> 28) & 1
    out["t"] = t32 + wraps * WRAP
    if geometry is not None:
        out = out[(out["y"] < geometry[0]) & (out["x"] < geometry[1])]
    return out


def corrupt_records(rng, records: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``records`` whose time word is replaced, at ``count`` random positions at least 3 apart
    and from the ends and away from wraps, by a value more than 2^31 away from both neighbours.
    Returns (copy, positions)."""
    t = records[:, 0].astype(np.int64)
    wraps = np.flatnonzero(np.abs(np.diff(t)) > HALF_TIME_WRAP)
    ok = np.ones(t.size, dtype=bool)
    for w in wraps:
        ok[max(w - 2, 0):w + 4] = False
    ok &= np.abs(t - HALF_TIME_WRAP) > (1 << 28)
    ok[:3] = ok[-3:] = False
    candidates = np.flatnonzero(ok)
    positions: list[int] = []
    for i in rng.permutation(candidates):
        if len(positions) == count:
            break
        if all(abs(int(i) - q) >= 3 for q in positions):
            positions.append(int(i))
    positions = sorted(positions)
    bad = records.copy()
    bad[positions, 0] = np.where(t[positions] < HALF_TIME_WRAP, 0xFFFFFFFF, 0).astype(np.uint32)
    return bad, np.array(positions)


def random_records(rng, n: int, span: int) -> tuple[np.ndarray, np.ndarray]:
    """(records, unwrapped t) of n sorted random events over ``span`` µs."""
    records = np.zeros((n, 2), dtype=np.uint32)
    t = np.sort(rng.integers(0, span, n))
    records[:, 0] = t % WRAP
    records[:, 1] = (rng.integers(0, 1 << 14, n) | (rng.integers(0, 1 << 14, n) << 14)
                     | (rng.integers(0, 2, n) << 28)).astype(np.uint32)
    return records, t


def test_kernel_matches_numpy_reference_with_wraps(rng):
    n = 2000
    records = np.zeros((n, 2), dtype=np.uint32)
    t = np.sort(rng.integers(0, 3 * WRAP, n))
    records[:, 0] = t % WRAP
    records[:, 1] = (rng.integers(0, 1 << 14, n) | (rng.integers(0, 1 << 14, n) << 14)
                     | (rng.integers(0, 2, n) << 28)).astype(np.uint32)
    events, backward = decode_dat_records(records)
    ref = reference_decode(records)
    assert backward == 0
    np.testing.assert_array_equal(events, ref)
    np.testing.assert_array_equal(events["t"], t)
    # decoding in two pieces with the carried state gives the same result
    state = new_dat_state()
    a, _ = decode_dat_records(records[:777], state)
    b, _ = decode_dat_records(records[777:], state)
    np.testing.assert_array_equal(np.concatenate([a, b]), ref)
    assert dat_drops(state) == (0, -1, 0, -1)


def test_isolated_jumps_skipped_as_reference(rng):
    records, _ = random_records(rng, 3000, 3 * WRAP)
    clean = reference_decode(records)
    bad, positions = corrupt_records(rng, records, 40)
    positions = np.union1d(positions, [0, 2999])  # also the first and the last record
    bad[0, 0] = 0xFFFFFFFF if records[0, 0] < HALF_TIME_WRAP else 0
    bad[-1, 0] = 0xFFFFFFFF if records[-1, 0] < HALF_TIME_WRAP else 0
    kept = np.setdiff1d(np.arange(3000), positions)
    state = new_dat_state()
    events, backward = decode_dat_records(bad, state)
    assert backward == 0
    np.testing.assert_array_equal(events, reference_decode(bad))
    np.testing.assert_array_equal(events, clean[kept])  # nothing but the corrupt records changes
    assert dat_drops(state) == (positions.size, 0, 0, -1)
    # pieces cut at, before and after corrupt records: the record after the cut is read ahead
    cuts = sorted({0, 3000, *positions.tolist(), *(positions + 1).tolist(), *(positions - 1).tolist()} - {-1})
    state = new_dat_state()
    parts = [decode_dat_records(bad, state, a, b)[0] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(parts), events)
    assert dat_drops(state)[:2] == (positions.size, 0)
    # one event per record when asked, skipped ones marked p = -1 with the previous kept time
    every, _ = decode_dat_records(bad, keep_dropped=True)
    np.testing.assert_array_equal(every[kept], events)
    assert np.all(every["p"][positions] == -1) and np.all(np.diff(every["t"]) >= 0)


@pytest.mark.parametrize("parallel", [False, True])
def test_outliers_less_than_half_a_wrap_away_are_skipped_as_reference(rng, parallel):
    # a corrupt time word 2^26..2^31 µs away from both neighbours is no jump, but an outlier: skipped
    records, _ = random_records(rng, 4000, 3 * WRAP)
    clean = reference_decode(records)
    bad, positions = corrupt_records(rng, records, 40)
    t = records[positions, 0].astype(np.int64)
    step = rng.integers(OUTLIER_STEP + 1, HALF_TIME_WRAP, positions.size)
    sign = np.where(rng.random(positions.size) < 0.5, 1, -1)
    bad[positions, 0] = ((t + sign * step) % WRAP).astype(np.uint32)
    state = new_dat_state()
    if parallel:
        out = np.zeros(4000, dtype=EVENT_DTYPE)
        decode_dat_kernel_parallel(bad, 0, 4000, out.view(np.int64), state, None, True, 512)
        events = out[out["p"] >= 0]
    else:
        events, _ = decode_dat_records(bad, state)
    np.testing.assert_array_equal(events, reference_decode(bad))
    np.testing.assert_array_equal(events, clean[np.setdiff1d(np.arange(4000), positions)])
    assert dat_drops(state)[0] == positions.size


def test_genuine_gaps_and_sparse_recordings_are_not_outliers():
    # a gap of 100 s after which the stream continues, and events 100 s apart: every record is kept
    for times in ([1000, 2000, 100_002_000, 100_003_000, 100_004_000], [0, 10**8, 2 * 10**8, 3 * 10**8]):
        records = np.zeros((len(times), 2), dtype=np.uint32)
        records[:, 0] = times
        state = new_dat_state()
        events, _ = decode_dat_records(records, state)
        assert events["t"].tolist() == times and dat_drops(state)[0] == 0


def test_wrap_versus_isolated_jump_by_hand():
    # 0xF0000000 among ordinary times: a corrupt record, not a wrap (it used to add 2^32 to the rest)
    records = np.array([[1000, 1], [2000, 2], [0xF0000000, 3], [3000, 4], [4000, 5]], dtype=np.uint32)
    state = new_dat_state()
    events, _ = decode_dat_records(records, state)
    np.testing.assert_array_equal(events["t"], [1000, 2000, 3000, 4000])
    np.testing.assert_array_equal(events["x"], [1, 2, 4, 5])
    assert dat_drops(state) == (1, 2, 0, -1)
    # a decrease of more than 2^31 followed by times continuing from near zero: a wrap
    records = np.array([[WRAP - 2000, 1], [WRAP - 1000, 2], [500, 3], [1500, 4]], dtype=np.uint32)
    events, _ = decode_dat_records(records)
    np.testing.assert_array_equal(events["t"], [WRAP - 2000, WRAP - 1000, WRAP + 500, WRAP + 1500])
    # a jump at the last record has no continuation: corrupt; the first record jumping to the rest: corrupt
    records = np.array([[0xF0000000, 9], [1000, 1], [2000, 2], [10, 3]], dtype=np.uint32)
    records[3, 0] = 0xF0000001
    state = new_dat_state()
    events, _ = decode_dat_records(records, state)
    np.testing.assert_array_equal(events["t"], [1000, 2000])
    assert dat_drops(state) == (2, 0, 0, -1)


def test_events_outside_geometry_dropped_and_counted(rng):
    records, _ = random_records(rng, 2000, WRAP // 2)
    state = new_dat_state()
    events, _ = decode_dat_records(records, state, geometry=(480, 640))
    np.testing.assert_array_equal(events, reference_decode(records, (480, 640)))
    inside = ((records[:, 1] & 0x3FFF) < 640) & (((records[:, 1] >> 14) & 0x3FFF) < 480)
    assert events.size == inside.sum() > 0
    assert dat_drops(state) == (0, -1, 2000 - inside.sum(), int(np.flatnonzero(~inside)[0]))
    full, _ = decode_dat_records(records, geometry=(DAT_MAX_COORD, DAT_MAX_COORD))
    assert full.size == 2000


@pytest.mark.parametrize("span", [4 * WRAP, WRAP // 2])  # many wraps (shifted blocks) / none
@pytest.mark.parametrize("block", [1, 7, 256, 5000])
def test_parallel_kernel_equals_sequential(rng, block, span):
    n = 3000
    records = np.zeros((n, 2), dtype=np.uint32)
    t = np.sort(rng.integers(0, span, n))
    t[100:110] = t[100:110][::-1]  # a few backward steps that are not wraps
    records[:, 0] = t % WRAP
    records[:, 1] = rng.integers(0, 1 << 29, n).astype(np.uint32)
    records, _ = corrupt_records(rng, records, 30)
    for b in (1, 2, 3):  # corrupt records ending, starting and following a block of 7 or 256 records
        records[7 * b - b % 2, 0] = 0xFFFFFFFF if records[7 * b - b % 2, 0] < HALF_TIME_WRAP else 0
        records[256 * b - 1, 0] = 0xFFFFFFFF if records[256 * b - 1, 0] < HALF_TIME_WRAP else 0
    for first in ([0, -1], [WRAP, int(records[0, 0]) + 5]):
        s_seq = new_dat_state()
        s_seq[:2] = first
        s_par = s_seq.copy()
        out_seq = np.empty(2 * (n - 3), dtype=np.int64)
        out_par = np.empty(2 * (n - 3), dtype=np.int64)
        back_seq = decode_dat_kernel(records, 1, n - 2, out_seq, s_seq, (400, 600), True)
        back_par = decode_dat_kernel_parallel(records, 1, n - 2, out_par, s_par, (400, 600), True, block)
        np.testing.assert_array_equal(out_par, out_seq)
        np.testing.assert_array_equal(s_par, s_seq)
        assert back_par == back_seq > 0
        assert s_seq[2] >= 30 and s_seq[4] > 0  # corrupt records and outside events were counted


def test_kernel_counts_backward_steps():
    records = np.array([[10, 0], [5, 0], [7, 0]], dtype=np.uint32)
    events, backward = decode_dat_records(records)
    assert backward == 1
    np.testing.assert_array_equal(events["t"], [10, 5, 7])  # small decrease is not a wrap


def test_encode_decode_round_trip_and_max_xy(rng):
    events = np.zeros(500, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 1 << 14, 500)
    events["y"] = rng.integers(0, 1 << 14, 500)
    events["p"] = rng.integers(0, 2, 500)
    events["t"] = np.sort(rng.integers(0, 3 * WRAP, 500))
    records = encode_dat_records(events)
    decoded, backward = decode_dat_records(records)
    assert backward == 0
    np.testing.assert_array_equal(decoded, events)
    assert max_xy(records) == (events["x"].max(), events["y"].max())
    assert max_xy(records[:0]) == (-1, -1)


def test_random_single_word_corruptions_of_the_real_sample_stay_local(real_data, rng):
    """Property (issue 12): corrupting any one 32-bit word of the real N-CARS records (a random value or
    one flipped bit) changes at most the event of that record."""
    data = (real_data / "sample_ncars.dat").read_bytes()
    records = np.frombuffer(data[93:], dtype="<u4").reshape(-1, 2)
    geometry = (42, 78)
    clean = decode_dat_records(records, keep_dropped=True, geometry=geometry)[0]
    for trial in range(60):
        k, field = int(rng.integers(0, records.shape[0])), trial % 2
        bad = records.copy()
        bad[k, field] = (int(rng.integers(0, 1 << 32)) if trial % 4 < 2
                         else int(records[k, field]) ^ (1 << int(rng.integers(0, 32))))
        out = decode_dat_records(bad, keep_dropped=True, geometry=geometry)[0]
        np.testing.assert_array_equal(np.delete(out, k), np.delete(clean, k))


def kernel_decode(records, state, start, stop, geometry):
    """The numba kernels' result for records ``[start, stop)``: (events, backward), ``state`` updated."""
    out = np.empty(stop - start, dtype=EVENT_DTYPE)
    backward = decode_dat_kernel(records, start, stop, out.view(np.int64), state, geometry, True)
    return out, backward


def clean_records(rng, n=1000):
    """Records without jumps over the full 14-bit x/y range, with small backward steps (unsorted data) at
    a chunk boundary (64), a part boundary (333) and elsewhere."""
    records, _ = random_records(rng, n, 10**6)
    for i in (64, 333, 500, 501):
        records[i, 0] = records[i - 1, 0] - 3
    return records


@pytest.mark.parametrize("parts", [1, 3])
@pytest.mark.parametrize("start, stop, offset", [(0, 1000, 0), (37, 901, 2 * WRAP), (999, 1000, WRAP)])
def test_numpy_path_equals_the_kernels_on_clean_records(rng, monkeypatch, parts, start, stop, offset):
    monkeypatch.setattr(dat_records, "_NUMPY_CHUNK", 64)
    monkeypatch.setattr(dat_records, "_NUMPY_THREADS", parts)
    monkeypatch.setattr(dat_records, "PARALLEL_MIN_RECORDS", 1)
    records = clean_records(rng)
    geometry = (DAT_MAX_COORD, DAT_MAX_COORD)
    state = new_dat_state()
    if start:
        state[:2] = offset, int(records[start, 0]) + 1  # the previous time: a backward step to start
    ref_state = state.copy()
    ref, ref_back = kernel_decode(records, ref_state, start, stop, geometry)
    out = np.empty(stop - start, dtype=EVENT_DTYPE)
    back = dat_records._decode_clean_numpy(records.view(np.uint64).reshape(-1), start, stop, out, state,
                                           *geometry)
    assert back == ref_back and back >= (4 if stop - start > 900 else 1)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(state, ref_state)


@pytest.mark.parametrize("where", ["from the state", "in a chunk", "at a chunk boundary",
                                   "at a part boundary", "after stop", "before start", "x outside",
                                   "y outside"])
def test_numpy_path_declines_what_needs_the_rules(rng, monkeypatch, where):
    """A step of more than OUTLIER_STEP anywhere the kernels would look, or an event outside the geometry,
    makes the numpy path decline (state untouched); the dispatch then gives the kernels' result."""
    monkeypatch.setattr(dat_records, "_NUMPY_CHUNK", 64)
    monkeypatch.setattr(dat_records, "_NUMPY_THREADS", 3)
    monkeypatch.setattr(dat_records, "PARALLEL_MIN_RECORDS", 1)
    records = clean_records(rng)
    start, stop, geometry = 10, 990, (DAT_MAX_COORD, DAT_MAX_COORD)
    state = new_dat_state()
    state[1] = records[start - 1, 0]
    far = OUTLIER_STEP + 2 * 10**6  # more than any step of clean_records added
    if where == "from the state":
        state[1] = int(records[start, 0]) + far
    elif where in ("in a chunk", "at a chunk boundary", "at a part boundary", "after stop", "before start"):
        i = {"in a chunk": 100, "at a chunk boundary": 10 + 64, "at a part boundary": 10 + 980 // 3,
             "after stop": stop, "before start": start - 1}[where]
        records[i:, 0] += far if where != "before start" else 0
        if where == "before start":
            records[i, 0] += far
            state[1] = -1
    else:
        geometry = (DAT_MAX_COORD, 300) if where == "x outside" else (200, DAT_MAX_COORD)
        records[500, 1] = 301 | (201 << 14)
    before = state.copy()
    out = np.empty(stop - start, dtype=EVENT_DTYPE)
    assert dat_records._decode_clean_numpy(records.view(np.uint64).reshape(-1), start, stop, out, state,
                                           *geometry) is None
    np.testing.assert_array_equal(state, before)
    ref_state = state.copy()
    ref, ref_back = kernel_decode(records, ref_state, start, stop, geometry)
    ref = ref[ref["p"] >= 0]
    events, back = decode_dat_records(records, state, start, stop, geometry)
    np.testing.assert_array_equal(events, ref)
    assert back == ref_back
    np.testing.assert_array_equal(state, ref_state)


@pytest.mark.parametrize("wrap", [False, True])
def test_a_fresh_process_reads_a_clean_file_without_numba(tmp_path, wrap):
    """The point of the numpy path: ``read_events`` of a clean DAT file in a fresh process never imports
    numba (its load costs more than the decode); a file with a wrap needs the kernels."""
    from evdet.io import write_dat

    events = np.zeros(3000, dtype=EVENT_DTYPE)
    events["t"] = np.arange(3000) * (2 * WRAP // 3000 if wrap else 100)
    events["x"] = np.arange(3000) % 300
    path = tmp_path / "rec.dat"
    write_dat(path, events, height=240, width=304)
    code = ("import sys, numpy as np; from evdet.io import read_events; e = read_events(sys.argv[1]); "
            "print(len(e), int(e['t'][-1]), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3000", str(int(events["t"][-1])), str(wrap)]
