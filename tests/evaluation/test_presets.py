import pytest

from evdet.evaluation import PRESETS, EvalPreset, get_preset
from evdet.evaluation.presets import AUTO_SKIP_TS, eval_preset_for


def test_preset_values_follow_spec():
    g1, g4, half, legacy = (PRESETS[k] for k in ("gen1", "gen4", "gen4-half", "legacy"))
    assert (g1.skip_ts, g1.min_box_diag, g1.min_box_side, g1.height, g1.width) == (500_000, 30, 10, 240, 304)
    assert (g4.skip_ts, g4.min_box_diag, g4.min_box_side, g4.height, g4.width) == (500_000, 60, 20, 720, 1280)
    assert (half.min_box_diag, half.min_box_side, half.height, half.width) == (30, 10, 360, 640)
    assert (legacy.skip_ts, legacy.min_box_diag, legacy.min_box_side) == (100_000, 30, 20)
    assert all(PRESETS[k].time_tol == 50_000 for k in ("gen1", "gen4", "gen4-half", "legacy"))


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="gen4-half"):
        get_preset("gen2")


def test_overrides_and_frozen():
    p = get_preset("gen1").with_overrides(min_box_side=5, height=None)
    assert p.min_box_side == 5 and p.height == 240 and PRESETS["gen1"].min_box_side == 10
    with pytest.raises(ValueError, match="unknown preset field"):
        p.with_overrides(diag=3)
    with pytest.raises(AttributeError):
        p.skip_ts = 0  # frozen
    with pytest.raises(ValueError, match="height"):
        EvalPreset("x", 0, 0, 0, height=0, width=10)
    assert get_preset(p) is p


def test_eval_preset_for_sizes():
    assert eval_preset_for("auto", (240, 304)).name == "gen1"
    assert eval_preset_for("auto", (720, 1280)).min_box_diag == 60
    p = eval_preset_for("auto", (96, 128))
    assert p.skip_ts == AUTO_SKIP_TS and p.min_box_diag == pytest.approx(30 * 128 / 304)
    assert (p.height, p.width) == (96, 128)
    assert eval_preset_for("gen1", (96, 128), skip_ts=7, time_tol=3).skip_ts == 7
    with pytest.raises(ValueError, match="unknown evaluation preset 'bogus'"):
        eval_preset_for("bogus", (96, 128))
