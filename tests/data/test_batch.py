"""SequenceBatch: uint8 inputs (float_inputs, to), pickling (the worker-to-main transfer)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from evdet.data.batch import SequenceBatch, VideoInfo


def make_batch(t=3, b=2, inputs=None, input_scale=1.0):
    labels = [[torch.tensor([[1.0, 2.0, 5.0, 6.0, float(k)]]) if col == 0 else torch.zeros((0, 5))
               for col in range(b)] for k in range(t)]
    infos = [VideoInfo("a.h5", 10, 5, 100, num_valid_bins=t), VideoInfo("", 0, 5, 0)]
    return SequenceBatch(torch.empty(0) if inputs is None else inputs, labels, torch.tensor([1.0, 0.0]),
                         torch.ones((t, b), dtype=torch.bool), infos, torch.tensor([False, True]),
                         input_scale)


def uint8_batch(rng, scale=255.0):
    """A batch whose uint8 inputs are a [T, B] view of [B, T] memory, as the dataset builds them."""
    raw = rng.integers(0, 256, (2, 3, 2, 4, 5), dtype=np.uint8)  # [B, T, C, H, W]
    return raw, make_batch(inputs=torch.from_numpy(raw).transpose(0, 1), input_scale=scale)


def test_float_inputs_of_uint8_equal_numpy_division_bit_exact(rng):
    raw, batch = uint8_batch(rng)
    out = batch.float_inputs()
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 2, 2, 4, 5) and out.is_contiguous()
    expected = raw.transpose(1, 0, 2, 3, 4).astype(np.float32) / np.float32(255)
    assert np.array_equal(out.numpy(), expected)  # the same values as the float32 read path


def test_float_inputs_scale_one_gives_counts():
    raw = np.arange(24, dtype=np.uint8).reshape(1, 2, 1, 3, 4)
    batch = make_batch(t=2, b=1, inputs=torch.from_numpy(raw).transpose(0, 1), input_scale=1.0)
    assert torch.equal(batch.float_inputs()[1, 0, 0], torch.arange(12, 24, dtype=torch.float32).view(3, 4))


def test_float_inputs_of_float_is_the_tensor_itself():
    x = torch.rand(3, 2, 1, 2, 2)
    assert make_batch(inputs=x).float_inputs() is x


def test_float_inputs_rejects_other_dtypes():
    with pytest.raises(TypeError, match="int64"):
        make_batch(inputs=torch.zeros((3, 2, 1, 2, 2), dtype=torch.int64)).float_inputs()


def test_to_converts_uint8_inputs_to_float(rng):
    raw, batch = uint8_batch(rng, scale=5.0)
    moved = batch.to("cpu")
    assert moved.inputs.dtype == torch.float32 and moved.input_scale == 1.0
    assert torch.equal(moved.inputs, batch.float_inputs())
    assert batch.inputs.dtype == torch.uint8  # the original is unchanged
    assert torch.equal(moved.labels[2][0], batch.labels[2][0])


def test_uint8_batch_pickles_as_uint8(rng):
    raw, batch = uint8_batch(rng, scale=5.0)
    out = pickle.loads(pickle.dumps(batch))
    assert isinstance(out, SequenceBatch) and out.inputs.dtype == torch.uint8 and out.input_scale == 5.0
    assert torch.equal(out.inputs, batch.inputs) and torch.equal(out.float_inputs(), batch.float_inputs())
    assert torch.equal(out.labels[2][0], torch.tensor([[1.0, 2.0, 5.0, 6.0, 2.0]]))
    assert out.labels[1][1].shape == (0, 5) and out.video_infos[1].path == ""
    assert torch.equal(out.padding, torch.tensor([False, True]))


def test_sequence_batch_pickles_float_inputs():
    x = torch.rand(3, 2, 1, 2, 2)
    out = pickle.loads(pickle.dumps(make_batch(inputs=x)))
    assert torch.equal(out.inputs, x) and torch.equal(out.labels[1][0][:, 4], torch.tensor([1.0]))
    assert out.input_scale == 1.0


def test_video_info_bin_end_contiguous_and_stored():
    from evdet.data.batch import VideoInfo

    contiguous = VideoInfo("a.h5", 1_000_000, 50_000, 5_000_000)
    assert [contiguous.bin_end(k) for k in range(3)] == [1_050_000, 1_100_000, 1_150_000]
    stored = VideoInfo("seq", 0, 50_000, 5_000_000, bin_end_ts=(100_000, 225_000, 350_000))
    assert [stored.bin_end(k) for k in range(3)] == [100_000, 225_000, 350_000]
