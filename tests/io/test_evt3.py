"""Tests of evdet.io.evt3: the EVT 3.0 decoder (numba kernel and numpy path for clean streams) against a
per-word Python reference, and the numpy path against the kernel."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io import evt3
from evdet.io.dtypes import EVENT_DTYPE
from evdet.io.evt3 import decode_evt3, evt3_drops, evt3_outside, new_evt3_state
from evdet.io.evt3_kernels import decode_evt3_kernel

pytestmark = pytest.mark.usefixtures("decode_path")  # numpy path and numba kernel alike


def reference_decode_evt3(words, time_mode: str = "spec",
                          geometry: tuple[int, int] | None = None) -> np.ndarray:
    """Per-word reference decoder (SPEC 2.3 and the module docstring); events outside ``geometry``
    (height, width) are dropped. A time-high step other than 0/1 is corrupt (skipped) when the next time
    high is nearer, going forward modulo 2^12, to the current time high than to the new one (at the end:
    when it goes backwards; for the first one: when neither of the next two is forward from it)."""
    compat = time_mode == "expelliarmus"
    R = 4096
    highs = [(i, int(w) & 0xFFF) for i, w in enumerate(words) if int(w) >> 12 == 0x8]
    next_high = {i: (highs[k + 1][1] if k + 1 < len(highs) else None) for k, (i, _) in enumerate(highs)}
    after_next = {i: (highs[k + 2][1] if k + 2 < len(highs) else None) for k, (i, _) in enumerate(highs)}
    out = []
    y = base_x = pol = time_low = loop = tl_ovf = 0
    time_high = None
    for i, w in enumerate(int(v) for v in words):
        kind, value = w >> 12, w & 0xFFF
        t = None if time_high is None else loop + ((time_high + tl_ovf) << 12) + time_low
        if kind == 0x0:
            y = w & 0x7FF
        elif kind == 0x2:
            if t is not None:
                out.append((w & 0x7FF, y, (w >> 11) & 1, t))
        elif kind == 0x3:
            base_x, pol = w & 0x7FF, (w >> 11) & 1
        elif kind in (0x4, 0x5):
            nbits = 12 if kind == 0x4 else 8
            for b in range(nbits):
                if t is not None and (value >> b) & 1:
                    out.append(((base_x + b) & 0x7FF, y, pol, t))
            base_x += nbits
        elif kind == 0x6:
            if compat and value < time_low:
                tl_ovf += 1
            time_low = value
        elif kind == 0x8:
            nxt = next_high[i]
            if time_high is None:
                if nxt is not None and (nxt - value) % R >= R // 2 and (
                        after_next[i] is not None and (after_next[i] - value) % R >= R // 2):
                    continue
            elif (value - time_high) % R > 1:
                if nxt is None and (value - time_high) % R >= R // 2:
                    continue
                if nxt is not None and (nxt - time_high) % R < (nxt - value) % R:
                    continue
            if time_high is not None and (time_high - value > 2048 or (compat and value < time_high)):
                loop += 1 << 24
            time_high = value
        elif kind not in (0x7, 0xA, 0xE, 0xF):
            raise ValueError(f"unknown type {kind}")
    if geometry is not None:
        out = [e for e in out if e[1] < geometry[0] and e[0] < geometry[1]]
    return np.array(out, dtype=[("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")]).astype(EVENT_DTYPE)


def addr_y(y):
    return y


def addr_x(x, p):
    return (0x2 << 12) | (p << 11) | x


def base_x(x, p):
    return (0x3 << 12) | (p << 11) | x


def vect12(mask):
    return (0x4 << 12) | mask


def vect8(mask):
    return (0x5 << 12) | mask


def time_low(v):
    return (0x6 << 12) | v


def time_high(v):
    return (0x8 << 12) | v


EXT_TRIGGER = (0xA << 12) | 0x101
OTHERS = (0xE << 12) | 0x0AB
CONTINUED_12 = (0xF << 12) | 0xFFF
CONTINUED_4 = (0x7 << 12) | 0xF


def random_stream(rng, n: int, corrupt: float = 0.0) -> np.ndarray:
    """Random EVT3 words; with probability ``corrupt`` a time-high word is replaced by a random value.
    Uncorrupted (and ``n`` < 40 000), a clean stream that the numpy path decodes: time-high steps 0 or 1,
    time lows that jump back (backward steps)."""
    words, high, low = [addr_x(3, 1), time_high(7), time_low(0)], 7, 0  # event before time high: dropped
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            jump = rng.random() < 0.2
            low = int(rng.integers(0, 4096)) if jump else min(low + int(rng.integers(0, 50)), 4095)
            words.append(time_low(low))
        elif r < 0.2:
            high = (high + int(rng.integers(0, 2))) % 4096
            words.append(time_high(int(rng.integers(0, 4096)) if rng.random() < corrupt else high))
        elif r < 0.3:
            words.append(addr_y(int(rng.integers(0, 720))))
        elif r < 0.45:
            words.append(addr_x(int(rng.integers(0, 1280)), int(rng.integers(0, 2))))
        elif r < 0.55:
            words.append(base_x(int(rng.integers(0, 1200)), int(rng.integers(0, 2))))
        elif r < 0.75:
            words.append(vect12(int(rng.integers(0, 4096))))
        elif r < 0.9:
            words.append(vect8(int(rng.integers(0, 256))))
        else:
            words.append(int(rng.choice([EXT_TRIGGER, OTHERS, CONTINUED_12, CONTINUED_4])))
    return np.array(words, dtype=np.uint16)


@pytest.mark.parametrize("time_mode", ["spec", "expelliarmus"])
def test_kernel_matches_reference_on_random_stream(rng, time_mode):
    words = random_stream(rng, 4000)
    ref = reference_decode_evt3(words, time_mode)
    out = decode_evt3(words, time_mode=time_mode)
    assert out.dtype == EVENT_DTYPE
    assert out.size == ref.size > 4000
    np.testing.assert_array_equal(out, ref)


def test_events_outside_geometry_dropped_as_reference(rng):
    words = random_stream(rng, 4000)
    state = new_evt3_state()
    out = decode_evt3(words, state, geometry=(1000, 700))
    ref = reference_decode_evt3(words, geometry=(1000, 700))
    np.testing.assert_array_equal(out, ref)
    n_out, first = evt3_outside(state)
    assert n_out == decode_evt3(words).size - ref.size > 100
    assert decode_evt3(words[:first + 1], geometry=(1000, 700)).size == decode_evt3(words[:first],
                                                                                    geometry=(1000, 700)).size
    # by hand: a vector of 5 events from x = 1278 in a 1280-wide frame keeps 2
    words = np.array([time_high(0), time_low(0), addr_y(3), base_x(1278, 1), vect8(0b11111)], dtype=np.uint16)
    state = new_evt3_state()
    np.testing.assert_array_equal(decode_evt3(words, state, geometry=(720, 1280))["x"], [1278, 1279])
    assert evt3_outside(state) == (3, 4)


def test_chunked_decoding_with_cuts_inside_vectors(rng):
    words = random_stream(rng, 3000)
    ref = decode_evt3(words)
    is_vector = np.isin(words >> 12, [0x4, 0x5])
    vector_words = np.flatnonzero(is_vector[1:] & is_vector[:-1]) + 1  # between two vector words
    cuts = sorted({0, words.size, *vector_words[::40].tolist()})
    assert len(cuts) > 5
    state = new_evt3_state()
    parts = [decode_evt3(words[a:b], state) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(parts), ref)


def test_vectors_and_addresses():
    words = np.array([time_high(1), time_low(5), addr_y(10), addr_x(100, 1), base_x(200, 0),
                      vect12(0b100000000101), vect8(0b10000001), addr_y(11), base_x(7, 1),
                      vect8(0xF00 | 0b10),  # bits 8-11 of VECT_8 are not part of the mask
                      EXT_TRIGGER, OTHERS, CONTINUED_12, CONTINUED_4], dtype=np.uint16)
    out = decode_evt3(words)
    t = (1 << 12) | 5
    expected = [(100, 10, 1), (200, 10, 0), (202, 10, 0), (211, 10, 0), (212, 10, 0), (219, 10, 0),
                (8, 11, 1)]
    assert [(int(e["x"]), int(e["y"]), int(e["p"])) for e in out] == expected
    assert np.all(out["t"] == t)


def test_dense_vectors_exceed_first_buffer():
    words = np.array([time_high(0), time_low(0), addr_y(1), base_x(0, 1)] + [vect12(0xFFF)] * 100,
                     dtype=np.uint16)
    out = decode_evt3(words)
    assert out.size == 1200
    np.testing.assert_array_equal(out["x"], np.arange(1200))


def test_vect_base_x_increments_never_carry_into_y():
    # 6000 VECT_12 words after one VECT_BASE_X: base x grows to 72 000 (> 16 bits); x keeps its 11-bit
    # field width (wraps at 2048) and y stays the one of EVT_ADDR_Y (the old decoder carried into y)
    words = np.array([time_high(0), time_low(0), addr_y(7), base_x(0, 1)] + [vect12(0xFFF)] * 6000,
                     dtype=np.uint16)
    out = decode_evt3(words)
    assert out.size == 72000
    assert np.all(out["y"] == 7)
    np.testing.assert_array_equal(out["x"], np.arange(72000) & 0x7FF)


def test_time_high_wrap_and_small_time_low_steps():
    words = np.array([time_high(4095), time_low(4000), addr_x(1, 1), time_low(3990), addr_x(2, 1),
                      time_high(0), time_low(3), addr_x(3, 0)], dtype=np.uint16)
    spec = decode_evt3(words)
    np.testing.assert_array_equal(spec["t"], [(4095 << 12) + 4000, (4095 << 12) + 3990, (1 << 24) + 3])
    compat = decode_evt3(words, time_mode="expelliarmus")
    np.testing.assert_array_equal(compat, reference_decode_evt3(words, "expelliarmus"))
    assert compat["t"][1] == (4096 << 12) + 3990  # a time-low decrease counts as an overflow there


@pytest.mark.parametrize("time_mode", ["spec", "expelliarmus"])
def test_random_corrupt_time_highs_match_reference(rng, time_mode):
    words = random_stream(rng, 6000, corrupt=0.05)
    state = new_evt3_state()
    out = decode_evt3(words, state, time_mode=time_mode)
    np.testing.assert_array_equal(out, reference_decode_evt3(words, time_mode))
    assert evt3_drops(state)[0] > 5
    # chunked decoding reads ahead: the same result wherever the stream is cut
    state = new_evt3_state()
    cuts = list(range(0, words.size, 97)) + [words.size]
    parts = [decode_evt3(words, state, time_mode=time_mode, start=a, stop=b)
             for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(parts), out)


def test_one_corrupt_time_high_moves_nothing():
    # time high 100, 101, 102, 102; the second word corrupted: without the rule a backward value counted
    # as a 24-bit wrap (the rest of the stream moved by 2^24 µs) and a forward one moved 2 events
    clean = [time_high(100), time_low(10), addr_x(1, 1), time_high(101), time_low(20), addr_x(2, 0),
             time_high(102), time_low(30), addr_x(3, 1), time_high(102), time_low(40), addr_x(4, 1)]
    for bad_value in (101 + 2048 + 5, 101 - 50, 101 + 700, 0):
        words = np.array(clean, dtype=np.uint16)
        words[3] = time_high(bad_value)
        state = new_evt3_state()
        out = decode_evt3(words, state)
        np.testing.assert_array_equal(out["x"], [1, 2, 3, 4])
        np.testing.assert_array_equal(out["t"], [(100 << 12) | 10, (100 << 12) | 20, (102 << 12) | 30,
                                                 (102 << 12) | 40])
        assert evt3_drops(state)[:2] == (1, 3)
        np.testing.assert_array_equal(out, reference_decode_evt3(words))


def test_real_gaps_wraps_and_corrupt_first_or_last_time_high():
    # a jump followed by time highs continuing from it is a gap in the recording, not corruption
    words = np.array([time_high(100), addr_x(1, 1), time_high(1500), addr_x(2, 1), time_high(1501),
                      addr_x(3, 1)], dtype=np.uint16)
    state = new_evt3_state()
    np.testing.assert_array_equal(decode_evt3(words, state)["t"], [100 << 12, 1500 << 12, 1501 << 12])
    assert evt3_drops(state)[0] == 0
    # the genuine 12-bit wrap 4095 -> 0 -> 1 (a step of 1 modulo 2^12) adds 2^24 µs, skips nothing
    words = np.array([time_high(4094), addr_x(1, 1), time_high(4095), addr_x(2, 1), time_high(0),
                      addr_x(3, 1), time_high(1), addr_x(4, 1)], dtype=np.uint16)
    state = new_evt3_state()
    np.testing.assert_array_equal(decode_evt3(words, state)["t"],
                                  [4094 << 12, 4095 << 12, 1 << 24, (1 << 24) + (1 << 12)])
    assert evt3_drops(state)[0] == 0
    # ... and a corrupt word just before the wrap does not hide it
    words[2] = time_high(2000)
    state = new_evt3_state()
    np.testing.assert_array_equal(decode_evt3(words, state)["t"],
                                  [4094 << 12, 4094 << 12, 1 << 24, (1 << 24) + (1 << 12)])
    assert evt3_drops(state)[:2] == (1, 2)
    # last time high going backwards: corrupt; going forward: a gap
    words = np.array([time_high(100), addr_x(1, 1), time_high(40), addr_x(2, 1)], dtype=np.uint16)
    np.testing.assert_array_equal(decode_evt3(words)["t"], [100 << 12, 100 << 12])
    words[2] = time_high(1000)
    np.testing.assert_array_equal(decode_evt3(words)["t"], [100 << 12, 1000 << 12])
    # a first time high that the next one does not move forward from: corrupt, its events dropped
    words = np.array([time_high(2048 + 7), addr_x(1, 1), time_high(8), addr_x(2, 1), time_high(9),
                      addr_x(3, 1)], dtype=np.uint16)
    state = new_evt3_state()
    np.testing.assert_array_equal(decode_evt3(words, state)["t"], [8 << 12, 9 << 12])
    assert evt3_drops(state)[:2] == (1, 0)


def test_unknown_type_names_byte_offset():
    words = np.array([time_high(1), 0x1000], dtype=np.uint16)
    with pytest.raises(ValueError, match="g.raw: unknown EVT 3.0 event type 0x1 .* byte offset 12"):
        decode_evt3(words, source="g.raw", byte_offset=10)
    with pytest.raises(ValueError, match="time_mode"):
        decode_evt3(words, time_mode="bogus")


def test_empty_input():
    out = decode_evt3(np.zeros(0, dtype=np.uint16))
    assert out.size == 0 and out.dtype == EVENT_DTYPE


def test_real_sample_matches_reference_npy(real_data):
    data = (real_data / "evt3_sample.raw").read_bytes()
    words = np.frombuffer(data[data.index(b"% system_ID 48\n") + 15:], dtype="<u2")
    reference = np.load(real_data / "evt3_sample.npy")
    compat = decode_evt3(words, time_mode="expelliarmus")
    assert compat.size == reference.size == 219_596
    for field in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(compat[field].astype(np.int64), reference[field].astype(np.int64))
    spec = decode_evt3(words)
    for field in ("x", "y", "p"):
        np.testing.assert_array_equal(spec[field].astype(np.int64), reference[field].astype(np.int64))
    assert (spec["t"][0], spec["t"][-1]) == (11_718_656, 11_727_457)
    assert np.all(np.diff(spec["t"]) >= 0)


_EVT3_RESETS = {0x0: (0x0,), 0x3: (0x3,), 0x4: (0x3,), 0x5: (0x3,), 0x6: (0x6,), 0x8: (0x8,)}
"""Word type -> the types whose next word sets again all the state a word of that type touches (y; the
vector base x; the time low; the time high); other types (ADDR_X, ...) touch only their own events."""


def test_random_single_word_corruptions_of_the_real_sample_stay_local(real_data, rng):
    """Property (issue 12): corrupting any one word of the real EVT 3.0 sample (a random 16-bit value, or
    one flipped bit) either raises naming the byte offset (unknown word type) or changes only the events
    of the words from it to where the state it touches (as its old and its new type) is set again."""
    data = (real_data / "evt3_sample.raw").read_bytes()
    offset = data.index(b"% system_ID 48\n") + 15
    words = np.frombuffer(data[offset:], dtype="<u2")
    clean = decode_evt3(words, geometry=(720, 1280))
    kinds = words >> 12
    positions = {t: np.flatnonzero(kinds == t) for t in range(16)}

    def group_end(k: int, kind: int) -> int:
        ends = [k + 1]
        for reset in _EVT3_RESETS.get(kind, ()):
            pos = positions[reset]
            i = np.searchsorted(pos, k, side="right")
            ends.append(int(pos[i]) if i < pos.size else words.size)
        return max(ends)

    first_high = int(positions[0x8][0])
    checked = 0
    for trial in range(60):
        k = int(rng.integers(first_high + 1, words.size - 1))
        bad = words.copy()
        flip = int(words[k]) ^ (1 << int(rng.integers(0, 16)))
        bad[k] = int(rng.integers(0, 1 << 16)) if trial % 2 else flip
        try:
            out = decode_evt3(bad, geometry=(720, 1280))
        except ValueError as err:
            assert f"byte offset {2 * k}" in str(err)
            continue
        end = max(group_end(k, int(words[k]) >> 12), group_end(k, int(bad[k]) >> 12))
        a = decode_evt3(words[:k], geometry=(720, 1280)).size  # clean events of the words before k
        b = decode_evt3(words[:end], geometry=(720, 1280)).size  # ... and before the group's end
        tail = clean.size - b
        assert b - a < clean.size // 20  # the group is local
        np.testing.assert_array_equal(out[:a], clean[:a])
        np.testing.assert_array_equal(out[out.size - tail:], clean[b:])
        checked += 1
    assert checked >= 20


def kernel_decode(words, state, start, stop, geometry=(2048, 2048)):
    """The numba kernel's events for words ``[start, stop)``, ``state`` updated (one large buffer)."""
    out = np.empty(12 * (stop - start) + 12, dtype=EVENT_DTYPE)
    n, i = decode_evt3_kernel(words, start, stop, out.view(np.int64), state, 0, geometry[1], geometry[0])
    assert i == stop
    return out[:n]


@pytest.mark.parametrize("start, stop, carried", [(0, 3003, False), (37, 2001, True), (1500, 1503, True)])
def test_numpy_path_equals_the_kernel_on_clean_streams(rng, monkeypatch, start, stop, carried):
    monkeypatch.setattr(evt3, "_NUMPY_CHUNK", 64)
    words = random_stream(rng, 3000)
    state = new_evt3_state()
    if carried:  # a stream decoded up to start: the kernel's state there, with a wrap offset
        kernel_decode(words, state, 0, start)
        state[5] = 3 << 24
    ref_state = state.copy()
    ref = kernel_decode(words, ref_state, start, stop)
    out = evt3._decode_clean_numpy(words, start, stop, state, 2048, 2048, 16)  # 16: the buffer grows
    assert out.shape[0] == ref.shape[0] and (ref.shape[0] > (stop - start) // 2 or stop - start < 1000)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(state, ref_state)
    if stop - start > 1000:
        assert evt3.backward_steps(state) > 10


@pytest.mark.parametrize("where", ["unknown type", "step of 2", "step back", "wrap", "x outside",
                                   "y outside", "vector outside", "first time high last",
                                   "step from the state"])
def test_numpy_path_declines_what_needs_the_rules(rng, monkeypatch, where):
    """A word the format's rules act on makes the numpy path decline (state untouched); the dispatch then
    gives the kernel's result (or error)."""
    monkeypatch.setattr(evt3, "_NUMPY_CHUNK", 64)
    words = random_stream(rng, 3000)
    highs = np.flatnonzero(words >> 12 == 8)
    clean = kernel_decode(words, new_evt3_state(), 0, words.size)
    start, stop, state = 0, words.size, new_evt3_state()
    geometry = (int(clean["y"].max()) + 1, int(clean["x"].max()) + 1)  # every event inside
    k = len(highs) // 2
    if where == "unknown type":
        words[900] = 0x1 << 12
    elif where == "step of 2":  # every time high from the k-th on 2 higher
        words[highs[k:]] += np.uint16(2)
    elif where == "step back":  # the k-th time high one below the one before it
        words[highs[k]] = time_high((int(words[highs[k - 1]]) & 0xFFF) - 1)
    elif where == "wrap":  # time highs counting up through 4095 to 0: the stream wraps at the k-th
        steps = np.cumsum(words[highs] != np.r_[words[highs[0]], words[highs[:-1]]])
        words[highs] = time_high(0) + ((steps - steps[k] + 4096) % 4096).astype(np.uint16)
    elif where in ("x outside", "y outside"):
        x_out = where == "x outside"
        words[1000:1002] = [addr_y(0 if x_out else geometry[0]), addr_x(geometry[1] if x_out else 0, 1)]
    elif where == "vector outside":  # a vector from x = width - 5: its bit 5 is at x = width
        words[1000:1002] = [base_x(geometry[1] - 5, 1), vect8(0b100000)]
    elif where == "first time high last":
        stop = int(highs[1])  # the range holds the stream's first time high and no other
    else:
        state[3] = (int(words[highs[0]]) & 0xFFF) + 2
    before = state.copy()
    assert evt3._decode_clean_numpy(words, start, stop, state, *geometry, stop - start) is None
    np.testing.assert_array_equal(state, before)
    if where == "unknown type":
        with pytest.raises(ValueError, match="unknown EVT 3.0 event type 0x1 .* byte offset 1800"):
            decode_evt3(words, state, start=start, stop=stop, geometry=geometry)
        return
    ref_state = state.copy()
    ref = kernel_decode(words, ref_state, start, stop, geometry)
    np.testing.assert_array_equal(decode_evt3(words, state, start=start, stop=stop, geometry=geometry), ref)
    np.testing.assert_array_equal(state, ref_state)
