import numpy as np
import torch

from evdet.data.batch import SequenceBatch, VideoInfo
from evdet.viz.demo import batch_frames, default_scale
from evdet.viz.draw import GT_BGR


def _batch(t=3, b=2, h=24, w=32):
    inputs = torch.zeros(t, b, 2, h, w)
    labels = [[torch.tensor([[4.0, 4.0, 12.0, 12.0, 0.0]]) for _ in range(b)] for _ in range(t)]
    labeled = torch.zeros(t, b, dtype=torch.bool)
    labeled[1, 0] = True
    infos = [VideoInfo(path="a_td.dat", start_ts=0, delta_t=50_000, duration=0, num_valid_bins=2),
             VideoInfo(path="", start_ts=0, delta_t=50_000, duration=0, num_valid_bins=0)]
    return SequenceBatch(inputs, labels, torch.ones(b), labeled, infos, torch.tensor([False, True]))


def test_batch_frames_one_per_valid_bin_gt_only_when_labelled():
    dets = [[torch.zeros(0, 6), torch.zeros(0, 6)] for _ in range(3)]
    frames = batch_frames(_batch(), dets, ("car",), scale=2, cols=2)
    assert len(frames) == 2  # bin 2 is the zero-padded tail
    assert frames[0].shape == frames[1].shape and frames[0].dtype == np.uint8
    white = [(f == np.asarray(GT_BGR, np.uint8)).all(axis=2) for f in frames]
    # GT (white box) only in the labelled bin 1; the header/legend text is white too, so compare counts
    assert white[1].sum() > white[0].sum() + 40


def test_default_scale():
    assert default_scale((96, 128)) == 4 and default_scale((240, 304)) == 2
    assert default_scale((720, 1280)) == 1
