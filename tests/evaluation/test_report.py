from evdet.evaluation import METRIC_NAMES, format_metrics


def test_table_lists_every_metric_and_class():
    m = {k: 0.1 * i for i, k in enumerate(METRIC_NAMES)}
    m["AP_L"] = -1.0
    m["AP_car"] = 0.4567
    text = format_metrics(m, title="val")
    lines = text.splitlines()
    assert lines[0] == "val"
    assert all(any(line.startswith(k + " ") for line in lines) for k in METRIC_NAMES)
    assert "n/a" in next(line for line in lines if line.startswith("AP_L "))
    assert any("car" in line and "0.4567" in line for line in lines)
