"""Fixtures of the data tests: small HDF5 tensor files written on the fly."""

from __future__ import annotations

import numpy as np
import pytest

from evdet.data.sources import VideoSpec, probe_video
from evdet.io.h5 import H5TensorWriter


@pytest.fixture
def tensor_video(tmp_path):
    """``make(name, data: float32 [N, C, H, W], start_ts=0, delta_t=1000) -> VideoSpec``: ``data`` written
    to ``tmp_path/<name>.h5`` (histo, uncompressed, sensor = stored size) and probed as the loader does."""
    def make(name: str, data: np.ndarray, start_ts: int = 0, delta_t: int = 1000) -> VideoSpec:
        path = tmp_path / f"{name}.h5"
        with H5TensorWriter(path, data.shape[1:], representation="histo", delta_t=delta_t,
                            sensor_size=data.shape[2:], start_ts=start_ts, compression=None) as writer:
            writer.write(np.asarray(data, np.float32))
        return probe_video(path)
    return make
