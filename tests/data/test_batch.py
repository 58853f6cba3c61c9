"""SequenceBatch pickling, and Uint8Batch (worker-to-main transfer of uint8 inputs)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from evdet.data.batch import SequenceBatch, Uint8Batch, VideoInfo, uint8_to_inputs


def make_batch(t=3, b=2, inputs=None):
    labels = [[torch.tensor([[1.0, 2.0, 5.0, 6.0, float(k)]]) if col == 0 else torch.zeros((0, 5))
               for col in range(b)] for k in range(t)]
    infos = [VideoInfo("a.h5", 10, 5, 100, num_valid_bins=t), VideoInfo("", 0, 5, 0)]
    return SequenceBatch(torch.empty(0) if inputs is None else inputs, labels, torch.tensor([1.0, 0.0]),
                         torch.ones((t, b), dtype=torch.bool), infos, torch.tensor([False, True]))


def test_uint8_batch_unpickles_to_float_inputs_equal_to_division(rng):
    raw = rng.integers(0, 256, (2, 3, 2, 4, 5), dtype=np.uint8)  # [B, T, C, H, W]
    out = pickle.loads(pickle.dumps(Uint8Batch(raw, 255.0, make_batch())))
    assert isinstance(out, SequenceBatch)
    assert out.inputs.dtype == torch.float32 and tuple(out.inputs.shape) == (3, 2, 2, 4, 5)
    expected = raw.transpose(1, 0, 2, 3, 4).astype(np.float32) / np.float32(255)
    assert np.array_equal(out.inputs.numpy(), expected)  # bit-exact, like the in-process path
    assert torch.equal(out.labels[2][0], torch.tensor([[1.0, 2.0, 5.0, 6.0, 2.0]]))
    assert out.labels[1][1].shape == (0, 5) and out.video_infos[1].path == ""
    assert torch.equal(out.padding, torch.tensor([False, True]))
    assert torch.equal(Uint8Batch(raw, 255.0, make_batch()).to_batch().inputs, out.inputs)


def test_uint8_to_inputs_scale_one_gives_counts():
    raw = np.arange(24, dtype=np.uint8).reshape(1, 2, 1, 3, 4)
    expected = torch.arange(12, 24, dtype=torch.float32).view(3, 4)
    assert torch.equal(uint8_to_inputs(raw, 1.0)[1, 0, 0], expected)


def test_uint8_batch_rejects_float_raw():
    with pytest.raises(ValueError, match="uint8"):
        Uint8Batch(np.zeros((1, 1, 1, 2, 2), dtype=np.float32), 255.0, make_batch())


def test_sequence_batch_pickles_float_inputs():
    x = torch.rand(3, 2, 1, 2, 2)
    out = pickle.loads(pickle.dumps(make_batch(inputs=x)))
    assert torch.equal(out.inputs, x) and torch.equal(out.labels[1][0][:, 4], torch.tensor([1.0]))
