"""Issue 14: every ``evdet-*`` console script answers ``--help`` at once: no torch, Lightning, numba, h5py or
OpenCV is imported before the arguments are parsed (robust on a loaded machine), and a fresh process
finishes well under a second."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

HEAVY = ("torch", "lightning", "numba", "h5py", "cv2", "scipy", "numpy")
SCRIPTS = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
    "scripts"]

_PROBE = """
import contextlib, io, sys
module, func = sys.argv[1].split(":")
sys.argv = [module, "--help"]
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        getattr(__import__(module, fromlist=[func]), func)(["--help"])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
assert "usage:" in out.getvalue()
print(" ".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_imports_nothing_heavy_and_is_fast(script):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), SCRIPTS[script]],
                          capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [], f"{script} --help imported {proc.stdout.split()}"
    assert wall < 1.0, f"{script} --help took {wall:.2f} s"  # < 0.1 s on an idle machine
