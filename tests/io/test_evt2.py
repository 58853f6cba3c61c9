"""Tests of evdet.io.evt2: the EVT 2.0 decoder (numba kernel and numpy path for clean streams) against a
per-word Python reference, and the numpy path against the kernel."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io import evt2
from evdet.io.dtypes import EVENT_DTYPE
from evdet.io.evt2 import decode_evt2, evt2_drops, new_evt2_state
from evdet.io.evt2_kernels import decode_evt2_kernel

R = 1 << 28  # time-high range
pytestmark = pytest.mark.usefixtures("decode_path")  # numpy path and numba kernel alike


def reference_decode_evt2(words, geometry: tuple[int, int] = (2048, 2048)) -> np.ndarray:
    """Per-word reference: CD words before the first time high dropped; wrap of 2^34 on big decrease; a
    time-high step other than 0/1 is corrupt (skipped) when the next time high is nearer, going forward
    modulo 2^28, to the current time high than to the new one (at the end: when it goes backwards; for
    the first one: when neither of the next two is forward from it); events outside ``geometry`` dropped."""
    words = [int(v) for v in words]
    highs = [(i, w & (R - 1)) for i, w in enumerate(words) if w >> 28 == 8]
    next_high = {i: (highs[k + 1][1] if k + 1 < len(highs) else None) for k, (i, _) in enumerate(highs)}
    after_next = {i: (highs[k + 2][1] if k + 2 < len(highs) else None) for k, (i, _) in enumerate(highs)}
    out = []
    time_high, loop = None, 0
    for i, w in enumerate(words):
        kind = w >> 28
        if kind in (0, 1):
            x, y = (w >> 11) & 0x7FF, w & 0x7FF
            if time_high is not None and y < geometry[0] and x < geometry[1]:
                t = loop + ((time_high << 6) | ((w >> 22) & 0x3F))
                out.append((x, y, kind, t))
        elif kind == 8:
            new, nxt = w & (R - 1), next_high[i]
            if time_high is None:
                if nxt is not None and (nxt - new) % R >= R // 2 and (
                        after_next[i] is not None and (after_next[i] - new) % R >= R // 2):
                    continue
            elif (new - time_high) % R > 1:
                if nxt is None and (new - time_high) % R >= R // 2:
                    continue
                if nxt is not None and (nxt - time_high) % R < (nxt - new) % R:
                    continue
            if time_high is not None and time_high - new > (1 << 27):
                loop += 1 << 34
            time_high = new
        elif kind not in (10, 14, 15):
            raise ValueError(f"unknown type {kind}")
    return np.array(out, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")]).astype(EVENT_DTYPE)


def cd(x: int, y: int, p: int, t_low: int) -> int:
    return (p << 28) | (t_low << 22) | (x << 11) | y


def th(value: int) -> int:
    return (8 << 28) | value


def encode_evt2(events: np.ndarray) -> np.ndarray:
    """Sorted events -> EVT 2.0 words (a time-high word whenever t >> 6 changes)."""
    words, last = [], None
    for x, y, p, t in zip(events["x"], events["y"], events["p"], events["t"], strict=True):
        high = (int(t) >> 6) & 0xFFFFFFF
        if high != last:
            words.append(th(high))
            last = high
        words.append(cd(int(x), int(y), int(p), int(t) & 0x3F))
    return np.array(words, dtype=np.uint32)


def random_stream(rng, n: int, corrupt: float = 0.0,
                  steps: tuple[int, ...] = (0, 1, 1, 2, 1000)) -> np.ndarray:
    """Random valid words: CD, time high (increasing by one of ``steps``: gaps), ext trigger, others,
    continued; with probability ``corrupt`` a time-high word is replaced by a random 28-bit value. With
    ``steps=(0, 1)``, a clean stream that the numpy path decodes."""
    words, high = [cd(1, 2, 1, 3)], 5  # a CD word before the first time high (dropped)
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            high += int(rng.choice(steps))
            value = int(rng.integers(0, R)) if rng.random() < corrupt else high
            words.append(th(value))
        elif r < 0.13:
            words.append((int(rng.choice([10, 14, 15])) << 28) | int(rng.integers(0, 1 << 28)))
        else:
            words.append(cd(int(rng.integers(0, 2048)), int(rng.integers(0, 2048)), int(rng.integers(0, 2)),
                            int(rng.integers(0, 64))))
    return np.array(words, dtype=np.uint32)


def test_kernel_matches_reference_on_random_stream(rng):
    words = random_stream(rng, 3000)
    ref = reference_decode_evt2(words)
    out = decode_evt2(words)
    assert out.dtype == EVENT_DTYPE
    assert out.size == ref.size > 2000
    np.testing.assert_array_equal(out, ref)


def test_chunked_decoding_carries_state(rng):
    words = random_stream(rng, 2000, corrupt=0.05)
    ref = decode_evt2(words)
    state = new_evt2_state()
    highs = np.flatnonzero(words >> 28 == 8)
    cuts = sorted({0, 1, 17, 500, 501, 1999, words.size, *highs.tolist(), *(highs + 1).tolist()})
    parts = [decode_evt2(words, state, start=a, stop=b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(parts), ref)
    assert evt2_drops(state)[0] > 0


def test_random_corrupt_time_highs_match_reference(rng):
    words = random_stream(rng, 5000, corrupt=0.03)
    state = new_evt2_state()
    out = decode_evt2(words, state, geometry=(300, 1000))
    np.testing.assert_array_equal(out, reference_decode_evt2(words, geometry=(300, 1000)))
    assert evt2_drops(state)[0] > 5 and evt2_drops(state)[2] > 1000


def test_one_corrupt_time_high_moves_nothing():
    # time high 100, 101, 102 with one CD word each; the middle word corrupted to a jump of 2^27 + 5
    # (it used to count the return to 102 as a 34-bit wrap, moving the rest of the stream by 2^34 µs)
    clean = [th(100), cd(1, 1, 1, 10), th(101), cd(2, 2, 0, 20), th(102), cd(3, 3, 1, 30), th(102),
             cd(4, 4, 1, 40)]
    for bad_value in (101 + (1 << 27) + 5, 101 - 50, (101 + (1 << 20)), 0):
        words = np.array(clean, dtype=np.uint32)
        words[2] = th(bad_value)
        state = new_evt2_state()
        out = decode_evt2(words, state)
        np.testing.assert_array_equal(out["x"], [1, 2, 3, 4])
        # the corrupt word's CD event keeps the previous time high; nothing else moves
        np.testing.assert_array_equal(out["t"], [(100 << 6) | 10, (100 << 6) | 20, (102 << 6) | 30,
                                                 (102 << 6) | 40])
        assert evt2_drops(state)[:2] == (1, 2)
        np.testing.assert_array_equal(out, reference_decode_evt2(words))


def test_real_gaps_and_corrupt_first_or_last_time_high():
    # a jump followed by time highs continuing from it is a gap in the recording, not corruption
    words = np.array([th(100), cd(1, 1, 1, 0), th(5000), cd(2, 2, 1, 0), th(5001), cd(3, 3, 1, 0)],
                     dtype=np.uint32)
    np.testing.assert_array_equal(decode_evt2(words)["t"], [100 << 6, 5000 << 6, 5001 << 6])
    # last time high going backwards: corrupt; going forward: a gap
    words = np.array([th(100), cd(1, 1, 1, 0), th(40), cd(2, 2, 1, 0)], dtype=np.uint32)
    np.testing.assert_array_equal(decode_evt2(words)["t"], [100 << 6, 100 << 6])
    words[2] = th(4000)
    np.testing.assert_array_equal(decode_evt2(words)["t"], [100 << 6, 4000 << 6])
    # a first time high that the next one does not move forward from: corrupt, its CD words dropped
    words = np.array([th(1 << 27 | 7), cd(1, 1, 1, 0), th(8), cd(2, 2, 1, 0), th(9), cd(3, 3, 1, 0)],
                     dtype=np.uint32)
    state = new_evt2_state()
    np.testing.assert_array_equal(decode_evt2(words, state)["t"], [8 << 6, 9 << 6])
    assert evt2_drops(state)[:2] == (1, 0)


def test_events_outside_geometry_dropped():
    words = np.array([th(1), cd(639, 479, 1, 0), cd(640, 0, 1, 1), cd(0, 480, 0, 2), cd(5, 6, 0, 3)],
                     dtype=np.uint32)
    state = new_evt2_state()
    out = decode_evt2(words, state, geometry=(480, 640))
    np.testing.assert_array_equal(out["x"], [639, 5])
    assert evt2_drops(state)[2:] == (2, 2)
    assert decode_evt2(words).size == 4


def test_encode_decode_roundtrip(rng):
    events = np.zeros(500, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, 640, 500)
    events["y"] = rng.integers(0, 480, 500)
    events["p"] = rng.integers(0, 2, 500)
    events["t"] = np.sort(rng.integers(1_000_000, 1_050_000, 500))
    np.testing.assert_array_equal(decode_evt2(encode_evt2(events)), events)


def test_fields_and_time():
    words = np.array([th(0x123), cd(599, 475, 1, 0x2A), cd(0, 0, 0, 0)], dtype=np.uint32)
    out = decode_evt2(words)
    assert out.size == 2
    assert (out["x"][0], out["y"][0], out["p"][0], out["t"][0]) == (599, 475, 1, (0x123 << 6) | 0x2A)
    assert (out["x"][1], out["y"][1], out["p"][1], out["t"][1]) == (0, 0, 0, 0x123 << 6)


def test_time_high_wrap():
    top = (1 << 28) - 1
    words = np.array([th(top), cd(1, 1, 1, 63), th(0), cd(2, 2, 0, 1)], dtype=np.uint32)
    out = decode_evt2(words)
    np.testing.assert_array_equal(out["t"], [(top << 6) | 63, (1 << 34) + 1])
    assert np.all(np.diff(out["t"]) > 0)


def test_unknown_type_names_byte_offset():
    words = np.array([th(1), cd(1, 1, 1, 1), 5 << 28], dtype=np.uint32)
    with pytest.raises(ValueError, match="f.raw: unknown EVT 2.0 event type 5 .* byte offset 108"):
        decode_evt2(words, source="f.raw", byte_offset=100)


def test_empty_input():
    out = decode_evt2(np.zeros(0, dtype=np.uint32))
    assert out.size == 0 and out.dtype == EVENT_DTYPE


def test_random_single_word_corruptions_of_the_real_sample_stay_local(real_data, rng):
    """Property (issue 12): corrupting any one word of the real EVT 2.0 sample (a random value, or one
    flipped bit) either raises naming the byte offset (unknown word type) or changes only the events
    of that word and of the word group after it (up to the next time-high word)."""
    data = (real_data / "evt2_sample.raw").read_bytes()
    words = np.frombuffer(data[data.index(b"% evt 2.0\n") + 10:], dtype="<u4")
    clean = decode_evt2(words, geometry=(480, 640))
    is_cd = (words >> 28) <= 1
    first_high = int(np.flatnonzero(words >> 28 == 8)[0])
    events_before = np.concatenate([[0], np.cumsum(is_cd & (np.arange(words.size) > first_high))])
    highs = np.flatnonzero(words >> 28 == 8)
    for trial in range(40):
        k = int(rng.integers(first_high + 1, words.size - 1)) if trial else first_high
        bad = words.copy()
        flip = int(words[k]) ^ (1 << int(rng.integers(0, 32)))
        bad[k] = int(rng.integers(0, 1 << 32)) if trial % 2 else flip
        try:
            out = decode_evt2(bad, geometry=(480, 640))
        except ValueError as err:
            assert f"byte offset {4 * k}" in str(err)
            continue
        nxt = highs[np.searchsorted(highs, k, side="right")] if k < highs[-1] else words.size
        a, b = int(events_before[k]), int(events_before[nxt])  # clean events of words [k, nxt)
        tail = clean.size - b
        assert abs(out.size - clean.size) <= b - a + 1
        np.testing.assert_array_equal(out[:a], clean[:a])
        np.testing.assert_array_equal(out[out.size - tail:], clean[b:])


def kernel_decode(words, state, start, stop, geometry):
    """The numba kernel's events for words ``[start, stop)``, ``state`` updated."""
    out = np.empty(stop - start, dtype=EVENT_DTYPE)
    n = decode_evt2_kernel(words, start, stop, out.view(np.int64), state, geometry)
    return out[:n]


@pytest.mark.parametrize("start, stop, carried", [(0, 1500, False), (37, 901, True), (1, 1501, False),
                                                  (700, 702, True)])
def test_numpy_path_equals_the_kernel_on_clean_streams(rng, monkeypatch, start, stop, carried):
    monkeypatch.setattr(evt2, "_NUMPY_CHUNK", 64)
    words = random_stream(rng, 1500, steps=(0, 1))
    state = new_evt2_state()
    if carried:  # a stream decoded up to start: the kernel's state there, with a wrap offset
        kernel_decode(words, state, 0, start, None)
        state[1] = 3 << 34
    ref_state = state.copy()
    ref = kernel_decode(words, ref_state, start, stop, (2048, 2048))
    out = np.empty(stop - start, dtype=EVENT_DTYPE)
    n = evt2._decode_clean_numpy(words, start, stop, out, state, None)
    assert n == ref.shape[0] and (n > 1000 or stop - start < 1000)
    np.testing.assert_array_equal(out[:n], ref)
    np.testing.assert_array_equal(state, ref_state)
    if stop - start > 1000:
        assert evt2.backward_steps(state) > 100


@pytest.mark.parametrize("where", ["unknown type", "step of 2", "step back", "wrap", "x outside",
                                   "y outside", "first time high last", "step from the state"])
def test_numpy_path_declines_what_needs_the_rules(rng, monkeypatch, where):
    """A word the format's rules act on makes the numpy path decline (state untouched); the dispatch then
    gives the kernel's result (or error)."""
    monkeypatch.setattr(evt2, "_NUMPY_CHUNK", 64)
    words = random_stream(rng, 1500, steps=(0, 1))
    highs = np.flatnonzero(words >> 28 == 8)
    start, stop, geometry, state = 0, words.size, None, new_evt2_state()
    if where == "unknown type":
        words[900] = 3 << 28
    elif where in ("step of 2", "step back", "wrap"):
        k = len(highs) // 2
        if where == "step of 2":  # every time high from the k-th on 2 higher
            words[highs[k:]] += np.uint32(2)
        elif where == "step back":  # the k-th time high one below the one before it
            words[highs[k]] = th((int(words[highs[k - 1]]) & (R - 1)) - 1)
        else:  # time highs counting up through 2^28 - 1 to 0: the stream wraps at the k-th
            steps = np.cumsum(words[highs] != np.r_[words[highs[0]], words[highs[:-1]]])
            words[highs] = th(0) + ((steps - steps[k] + R) % R).astype(np.uint32)
    elif where in ("x outside", "y outside"):
        geometry = (2048, 1000) if where == "x outside" else (1000, 2048)
        words[1000] = cd(1500, 1500, 1, 0)
    elif where == "first time high last":
        stop = int(highs[1])  # the range holds the stream's first time high and no other
    else:
        state[0] = (int(words[highs[0]]) & (R - 1)) + 2
    before = state.copy()
    out = np.empty(stop - start, dtype=EVENT_DTYPE)
    assert evt2._decode_clean_numpy(words, start, stop, out, state, geometry) is None
    np.testing.assert_array_equal(state, before)
    if where == "unknown type":
        with pytest.raises(ValueError, match="unknown EVT 2.0 event type 3 .* byte offset 3600"):
            decode_evt2(words, state, start=start, stop=stop, geometry=geometry)
        return
    ref_state = state.copy()
    ref = kernel_decode(words, ref_state, start, stop, geometry)
    np.testing.assert_array_equal(decode_evt2(words, state, start=start, stop=stop, geometry=geometry), ref)
    np.testing.assert_array_equal(state, ref_state)


def test_numpy_path_without_a_time_high_decodes_nothing(rng):
    words = np.array([cd(1, 2, 1, 3), cd(4, 5, 0, 6), (10 << 28) | 7], dtype=np.uint32)
    state = new_evt2_state()
    out = np.empty(3, dtype=EVENT_DTYPE)
    assert evt2._decode_clean_numpy(words, 0, 3, out, state, (10, 10)) == 0
    np.testing.assert_array_equal(state, new_evt2_state())
