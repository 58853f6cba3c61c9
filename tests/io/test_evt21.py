"""EVT 2.1 (64-bit vectorised words): hand-built words with known decoding, a numpy reference, RAW files."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.io.dtypes import EVENT_DTYPE, concatenate_events
from evdet.io.evt2 import new_evt2_state
from evdet.io.evt21 import decode_evt21
from evdet.io.raw import RawReader
from evdet.io.read import detect_format, read_events


def time_high(th: int) -> int:
    return (8 << 60) | (th << 32)


def cd(p: int, t_low: int, x: int, y: int, mask: int) -> int:
    """An EVT_POS (p=1) / EVT_NEG (p=0) word, laid out as the format's published description."""
    return (p << 60) | (t_low << 54) | (x << 43) | (y << 32) | mask


def swap_halves(words: np.ndarray) -> np.ndarray:
    """IMX636's 'legacy' layout: the 32-bit halves of each word exchanged."""
    w = words.astype(np.uint64)
    return (w >> np.uint64(32)) | ((w & np.uint64(0xFFFFFFFF)) << np.uint64(32))


def reference(words: list[int]) -> np.ndarray:
    """Independent plain-Python statement of the decoding rule."""
    out, th = [], None
    for w in words:
        kind = w >> 60
        if kind in (0, 1) and th is not None:
            t = (th << 6) | ((w >> 54) & 63)
            x, y = (w >> 43) & 0x7FF, (w >> 32) & 0x7FF
            out += [(x + i, y, kind, t) for i in range(32) if (w >> i) & 1]
        elif kind == 8:
            th = (w >> 32) & 0xFFFFFFF
    return np.array(out, dtype=EVENT_DTYPE)


def test_hand_built_words_decode_to_known_events():
    words = [cd(1, 5, 64, 3, 0b101),  # before any time high: dropped
             time_high(10),  # t = 640 + low
             cd(1, 5, 64, 3, 0b101),  # (64, 3) and (66, 3) ON at t = 645
             cd(0, 63, 2016, 719, 1 << 31),  # (2047, 719) OFF at 703
             (10 << 60) | 123, (14 << 60) | 7, (15 << 60),  # trigger, others, continued: ignored
             time_high(11),
             cd(0, 0, 0, 0, 0xFFFFFFFF)]  # a full group: x 0..31 at 704
    got = decode_evt21(np.array(words, dtype=np.uint64))
    want = [(64, 3, 1, 645), (66, 3, 1, 645), (2047, 719, 0, 703)] + [(x, 0, 0, 704) for x in range(32)]
    np.testing.assert_array_equal(got, np.array(want, dtype=EVENT_DTYPE))
    np.testing.assert_array_equal(got, reference(words))


def test_random_stream_chunked_legacy_and_wrap_match_the_reference(rng):
    words = []
    for th in range(200):
        words.append(time_high(th))
        for _ in range(int(rng.integers(0, 6))):
            words.append(cd(int(rng.integers(0, 2)), int(rng.integers(0, 64)), 32 * int(rng.integers(0, 40)),
                            int(rng.integers(0, 720)), int(rng.integers(0, 1 << 32))))
    arr = np.array(words, dtype=np.uint64)
    want = reference(words)
    np.testing.assert_array_equal(decode_evt21(arr), want)
    state = new_evt2_state()  # any chunking gives the same events
    parts = [decode_evt21(arr[i:i + 37], state) for i in range(0, arr.size, 37)]
    np.testing.assert_array_equal(concatenate_events(parts), want)
    np.testing.assert_array_equal(decode_evt21(swap_halves(arr), legacy=True), want)

    wrap = np.array([time_high((1 << 28) - 1), cd(1, 1, 0, 0, 1), time_high(0), cd(1, 2, 0, 0, 1)], np.uint64)
    t = decode_evt21(wrap)["t"]
    assert list(t) == [(((1 << 28) - 1) << 6) | 1, (1 << 34) | 2]  # the 34-bit time wraps


def test_unknown_type_names_the_byte_offset():
    words = np.array([time_high(1), 3 << 60], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"f.raw: unknown EVT 2.1 event type 3 .* byte offset 108"):
        decode_evt21(words, source="f.raw", byte_offset=100)


LEGACY_HEADER = "% format EVT21;endianness=legacy;height=720;width=1280\n"


@pytest.mark.parametrize("header, legacy", [("% evt 2.1\n", False), (LEGACY_HEADER, True)])
def test_raw_file_streams_like_load_all(tmp_path, rng, header, legacy):
    words = []
    for th in range(0, 2000, 3):
        words.append(time_high(th))
        words.append(cd(int(rng.integers(0, 2)), int(rng.integers(0, 64)), 32 * int(rng.integers(0, 40)),
                        int(rng.integers(0, 720)), int(rng.integers(1, 1 << 32))))
    arr = np.array(words, dtype=np.uint64)
    path = tmp_path / "f.raw"
    path.write_bytes(header.encode() + (swap_halves(arr) if legacy else arr).tobytes())
    assert detect_format(path) == "evt21"
    want = reference(words)
    np.testing.assert_array_equal(read_events(path), want)
    with RawReader(path, chunk_words=50) as r:
        assert r.format == "evt21" and r.legacy == legacy and r.word_size == 8
        for t0, ev in r.iter_windows(5_000):
            np.testing.assert_array_equal(ev, want[(want["t"] >= t0) & (want["t"] < t0 + 5_000)])
        assert r.time_range() == (int(want["t"][0]), int(want["t"][-1]))
    np.testing.assert_array_equal(read_events(path, 30_000, 60_000),
                                  want[(want["t"] >= 30_000) & (want["t"] < 60_000)])


def test_events_outside_the_geometry_are_dropped_and_counted():
    from evdet.io.evt2 import evt2_drops

    words = np.array([time_high(1), cd(1, 0, 32, 2, 0b11 | (1 << 31)), cd(0, 1, 0, 9, 1)], dtype=np.uint64)
    state = new_evt2_state()
    got = decode_evt21(words, state, geometry=(8, 60))  # x 32, 33 kept; x 63 and row 9 outside
    np.testing.assert_array_equal(got, np.array([(32, 2, 1, 64), (33, 2, 1, 64)], dtype=EVENT_DTYPE))
    assert evt2_drops(state) == (0, -1, 2, 1)  # two events, the first in word 1


def reference_with_corrupt_rule(words: list[int]) -> np.ndarray:
    """``reference`` plus the corrupt time-high rule (issue 12), stated on the list of time highs: a step
    other than 0/1 is skipped when the next time high is nearer, forward modulo 2^28, to the current one
    than to the new one (without a next one: when it goes backwards; the first time high: when neither of
    the next two is forward from it)."""
    r = 1 << 28
    highs = [(i, (w >> 32) & (r - 1)) for i, w in enumerate(words) if w >> 60 == 8]
    following = {i: [v for _, v in highs[k + 1:k + 3]] for k, (i, _) in enumerate(highs)}
    out, th, loop = [], None, 0
    for i, w in enumerate(words):
        kind = w >> 60
        if kind in (0, 1) and th is not None:
            t = loop + ((th << 6) | ((w >> 54) & 63))
            x, y = (w >> 43) & 0x7FF, (w >> 32) & 0x7FF
            out += [(x + b, y, kind, t) for b in range(32) if (w >> b) & 1]
        elif kind == 8:
            new, nxt = (w >> 32) & (r - 1), following[i]
            if th is None:
                if len(nxt) == 2 and all((v - new) % r >= r // 2 for v in nxt):
                    continue
            elif (new - th) % r > 1:
                if not nxt and (new - th) % r >= r // 2:
                    continue
                if nxt and (nxt[0] - th) % r < (nxt[0] - new) % r:
                    continue
            if th is not None and th - new > r // 2:
                loop += 1 << 34
            th = new
    return np.array(out, dtype=EVENT_DTYPE)


def test_an_isolated_corrupt_time_high_is_skipped_and_counted():
    from evdet.io.evt2 import evt2_drops

    clean = [time_high(100), cd(1, 10, 1, 1, 1), time_high(101), cd(0, 20, 2, 2, 1), time_high(102),
             cd(1, 30, 3, 3, 1), time_high(102), cd(1, 40, 4, 4, 1)]
    for bad in (101 + (1 << 27) + 5, 101 - 50, 101 + (1 << 20), 0):
        words = list(clean)
        words[2] = time_high(bad)
        for legacy in (False, True):
            arr = np.array(words, dtype=np.uint64)
            state = new_evt2_state()
            out = decode_evt21(swap_halves(arr) if legacy else arr, state, legacy=legacy)
            np.testing.assert_array_equal(out["x"], [1, 2, 3, 4])
            # the corrupt word's events keep the previous time high; nothing else moves
            np.testing.assert_array_equal(out["t"], [(100 << 6) | 10, (100 << 6) | 20, (102 << 6) | 30,
                                                     (102 << 6) | 40])
            assert evt2_drops(state)[:2] == (1, 2)
            np.testing.assert_array_equal(out, reference_with_corrupt_rule(words))
    # a gap (the next time highs continue from the jump) is kept, and so is the wrap
    gap = [time_high(100), cd(1, 0, 1, 1, 1), time_high(5000), cd(1, 0, 2, 2, 1), time_high(5001),
           cd(1, 0, 3, 3, 1)]
    np.testing.assert_array_equal(decode_evt21(np.array(gap, np.uint64))["t"],
                                  [100 << 6, 5000 << 6, 5001 << 6])


def test_random_corrupt_time_highs_match_the_reference_whatever_the_chunking(rng):
    from evdet.io.evt2 import evt2_drops

    words, r = [], 1 << 28
    for high in range(3000, 3400):
        value = int(rng.integers(0, r)) if rng.random() < 0.04 else high
        words.append(time_high(value))
        for _ in range(int(rng.integers(0, 3))):
            words.append(cd(int(rng.integers(0, 2)), int(rng.integers(0, 64)), 32 * int(rng.integers(0, 40)),
                            int(rng.integers(0, 720)), int(rng.integers(1, 1 << 32))))
    arr = np.array(words, dtype=np.uint64)
    want = reference_with_corrupt_rule(words)
    state = new_evt2_state()
    np.testing.assert_array_equal(decode_evt21(arr, state), want)
    assert evt2_drops(state)[0] > 0
    chunked = new_evt2_state()
    parts = [decode_evt21(arr, chunked, start=i, stop=i + 23) for i in range(0, arr.size, 23)]
    np.testing.assert_array_equal(concatenate_events(parts), want)
    np.testing.assert_array_equal(chunked, state)


def test_raw_reader_warns_once_naming_the_file_and_byte_offset_of_a_corrupt_time_high(tmp_path):
    words = [time_high(100), cd(1, 10, 1, 1, 1), time_high(101), cd(0, 20, 2, 2, 1), time_high(102),
             cd(1, 30, 3, 3, 1)]
    words[2] = time_high(7)
    header = "% evt 2.1\n% geometry 1280x720\n% end\n"
    path = tmp_path / "bad.raw"
    path.write_bytes(header.encode() + np.array(words, dtype=np.uint64).tobytes())
    offset = len(header) + 8 * 2
    with RawReader(path, chunk_words=3) as r:
        with pytest.warns(UserWarning, match=rf"bad.raw: EVT_TIME_HIGH word .* at byte offset {offset} "
                                             r"is an implausible time jump"):
            got = r.load_n_events(10)
        assert r.skipped_corrupt == 1
    np.testing.assert_array_equal(got["t"], [(100 << 6) | 10, (100 << 6) | 20, (102 << 6) | 30])
