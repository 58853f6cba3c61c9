"""Tests of evdet.io.label_map and of the dataset label maps shipped in label_maps/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evdet.io.label_map import (
    EMPTY_CLASS,
    GEN1_LABEL_MAP,
    GEN4_LABEL_MAP,
    LABEL_MAP_FILENAME,
    class_names,
    load_label_map,
    save_label_map,
)

LABEL_MAPS = Path(__file__).resolve().parents[2] / "label_maps"


def test_repo_label_maps_agree_with_constants():
    assert load_label_map(LABEL_MAPS / "gen1_label_map_dictionary.json") == GEN1_LABEL_MAP
    assert load_label_map(LABEL_MAPS / "gen4_label_map_dictionary.json") == GEN4_LABEL_MAP
    assert GEN1_LABEL_MAP == {0: "car", 1: "pedestrian"}
    assert class_names(GEN4_LABEL_MAP) == ["pedestrian", "two wheeler", "car", "truck", "bus", "traffic sign",
                                           "traffic light"]
    synthetic = load_label_map(LABEL_MAPS / "synthetic_label_map_dictionary.json")
    assert synthetic == {0: "car", 1: "pedestrian", 2: "two wheeler"}


def test_roundtrip_and_folder_path(tmp_path):
    m = {1: "pedestrian", 0: "car", 2: EMPTY_CLASS}
    save_label_map(tmp_path, m)
    assert (tmp_path / LABEL_MAP_FILENAME).exists()
    written = json.loads((tmp_path / LABEL_MAP_FILENAME).read_text())
    assert written == {"0": "car", "1": "pedestrian", "2": "empty"}
    loaded = load_label_map(tmp_path)
    assert loaded == {0: "car", 1: "pedestrian", 2: "empty"}
    assert list(loaded) == [0, 1, 2]
    assert class_names(loaded) == ["car", "pedestrian"]


@pytest.mark.parametrize("content, pattern", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "non-empty JSON object"),
    ("{}", "non-empty JSON object"),
    ('{"a": "car"}', "key 'a' is not a decimal class id"),
    ('{"0": ""}', "class 0 has name ''"),
    ('{"0": 5}', "class 0 has name 5"),
    ('{"0": "car", "1": "car"}', "duplicate class names"),
    ('{"0": "car", "0": "truck"}', r"m.json: key '0' is given twice"),
    ('{"0": "car", "1": "ped", "00": "truck"}', r"m.json: keys '0' and '00' are both class id 0"),
])
def test_bad_label_maps(tmp_path, content, pattern):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=pattern):
        load_label_map(path)


def test_a_label_map_that_is_not_utf8_names_the_file(tmp_path):
    (tmp_path / "m.json").write_bytes('{"0": "caf\u00e9"}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"label map .*m.json: not UTF-8 text \(invalid continuation byte at "
                                         r"byte 10\)"):
        load_label_map(tmp_path / "m.json")


def test_missing_label_map(tmp_path):
    with pytest.raises(FileNotFoundError, match=LABEL_MAP_FILENAME):
        load_label_map(tmp_path)
