"""The inference layer runs a trained model without Lightning; viz and export sit on inference, never on
training."""

import subprocess
import sys


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_evdet_inference_does_not_import_lightning():
    loaded = _modules_after_import("evdet.inference")
    assert not {m for m in loaded if m.split(".")[0] in ("lightning", "pytorch_lightning")}
    assert "evdet.training" not in loaded


def test_viz_and_export_do_not_import_training():
    for module in ("evdet.viz.demo", "evdet.export"):
        loaded = _modules_after_import(module)
        assert "evdet.training" not in loaded, module
        assert not {m for m in loaded if m.split(".")[0] == "lightning"}, module
