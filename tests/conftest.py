"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "real-data"


@pytest.fixture
def real_data() -> Path:
    """Folder of real sensor recordings (``../shared/real-data``); skips the test when absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real sensor recordings not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (the test machine is shared: avoids thread oversubscription);
    use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
