import pickle

import numpy as np
import pytest

from evdet.evaluation import DetectionAccumulator, evaluate_detection, filter_boxes
from evdet.io import BBOX_DTYPE


def _video(rng, n=40):
    g = np.zeros(n, BBOX_DTYPE)
    g["t"] = np.sort(rng.choice(np.arange(0, 2_000_000, 50_000), n))
    g["x"], g["y"] = rng.uniform(0, 200, n), rng.uniform(0, 150, n)
    g["w"], g["h"] = rng.uniform(5, 80, n), rng.uniform(5, 80, n)
    g["class_id"] = rng.integers(0, 2, n)
    d = g.copy()
    d["x"] += rng.normal(0, 3, n).astype(np.float32)
    d["class_confidence"] = rng.uniform(0, 1, n)
    return g, d


def test_chunks_ranks_and_pickle_equal_one_call(rng):
    videos = {f"rec{i}": _video(rng) for i in range(3)}
    ref = evaluate_detection([videos[k][0] for k in sorted(videos)], [videos[k][1] for k in sorted(videos)],
                             ["car", "pedestrian"], 240, 304)
    ranks = [DetectionAccumulator(), DetectionAccumulator()]
    for i, (name, (g, d)) in enumerate(sorted(videos.items(), reverse=True)):
        acc = ranks[i % 2]
        half = len(g) // 2  # add in two chunks, the later one first
        acc.add(name, g[half:], d[half:])
        acc.add(name, g[:half], d[:half])
    gathered = [pickle.loads(pickle.dumps(a)) for a in ranks]
    merged = DetectionAccumulator().merge(gathered)
    assert merged.videos == sorted(videos) and len(merged) == 3
    gt1, dt1 = merged.boxes("rec1")
    assert gt1.dtype == BBOX_DTYPE and dt1.dtype == BBOX_DTYPE
    assert np.array_equal(gt1["t"], np.sort(videos["rec1"][0]["t"]))
    assert merged.evaluate(["car", "pedestrian"], 240, 304) == ref


def test_preset_filters_both_sides(rng):
    g, d = _video(rng)
    acc = DetectionAccumulator()
    acc.add("a", g, d)
    got = acc.evaluate(["car", "pedestrian"], preset="gen1")
    want = evaluate_detection([filter_boxes(g, 500_000, 30, 10)], [filter_boxes(d, 500_000, 30, 10)],
                              ["car", "pedestrian"], 240, 304)
    assert got == want
    assert got != acc.evaluate(["car", "pedestrian"], 240, 304)  # unfiltered differs


def test_errors():
    acc = DetectionAccumulator()
    with pytest.raises(TypeError):
        acc.add(3, np.zeros(0, BBOX_DTYPE), np.zeros(0, BBOX_DTYPE))
    with pytest.raises(ValueError, match="height and width"):
        acc.evaluate(["car"])
    with pytest.raises(ValueError, match="gen4-half"):
        acc.evaluate(["car"], preset="gen9")
    with pytest.raises(TypeError):
        acc.merge([object()])
    with pytest.raises(KeyError, match="nope"):
        acc.boxes("nope")
