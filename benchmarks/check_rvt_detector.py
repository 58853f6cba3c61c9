"""Check evdet's RVT + YOLOX detector against RVT's ``YoloXDetector``: checkpoint import, detections, loss.

    python benchmarks/check_rvt_detector.py --rvt-dir PATH/TO/uzh-rpg/RVT [--backbone rvt-t|rvt-s|rvt-b]
        [--batch 1|2]

Imports RVT's ``YoloXDetector`` (``models/detection/yolox_extension/models/detector.py``), its
``postprocess`` (``models/detection/yolox/utils/boxes.py``) and ``InputPadderFromShape`` from a checkout of
RVT, with the stand-ins of ``benchmarks/rvt_reference.py`` in ``sys.modules`` (omegaconf, RVT's
``data.utils.types``, and torchvision: a plain greedy NMS written for the check), so nothing beyond torch
is needed. Two cases: Gen1 (240×304, ``partition_split_32`` 1, 2 classes) and 1Mpx at half resolution
(360×640, ``partition_split_32`` 2, 3 classes), both at the sizes of RVT's experiment config for
``--backbone`` (rvt-t: embed_dim 32, PAFPN depth 0.33, the default; rvt-s: 48, dim_head 24, 0.33; rvt-b: 64,
0.67).

For each case RVT's detector is initialised by RVT's own code, then perturbed (:func:`build_rvt_detector`:
seeded noise on every weight, BatchNorm statistics measured on random input, class/objectness outputs
moved from their 0.01 prior) so that many anchors pass the 0.1 score threshold. Then:

(a) import: RVT's weights are written in RVT's Lightning checkpoint layout (``state_dict`` with the
    ``mdl.`` prefix, ``epoch``, ``global_step``, ``pytorch-lightning_version``, the model config under
    ``hyper_parameters``) and converted with evdet's ``import_rvt_checkpoint`` (which infers the model
    from the weights and the dataset name); the detector under test is ``load_detector`` of the
    converted file. The line printed per case says what the importer inferred.
(b) detections: two chunks of random stacked-histogram-like input (sparse float counts 0..10, batch 2 or
    ``--batch``)
    run through RVT bin by bin (RVT's padder, LSTM states carried, ``postprocess`` with confidence 0.1
    and NMS 0.45, as RVT's validation) and through evdet's ``detect`` one chunk per call; between the
    chunks batch column 0 is reset (evdet: ``reset([0, 1])``; RVT: that column of every state zeroed).
    Per frame the detections must agree in number, class and order (by decreasing score; rows of exactly
    equal score, in an order neither side defines, are put in box order on both sides first); boxes
    within 2e-3 px, scores within 1e-5. evdet clips boxes to the (unpadded) image after NMS, RVT does
    not: RVT's boxes are clipped before the comparison (the table counts how many needed it). Two
    scores: YOLOX's objectness × class probability (RVT's ``obj_conf * class_conf``, the NMS ranking)
    and evdet's class score (``load_detector(..., class_score_only=True)``) against RVT's ``class_conf``
    (what RVT's evaluation stores; RVT's rows are ordered by it for the comparison).
(c) loss: one chunk with a few labelled frames (random boxes) and some unlabelled ones; RVT's training
    step (backbone bin by bin on every frame, the features of the labelled frames concatenated in time
    then batch order, FPN + head in train mode with the YOLOX-format labels ``[class, cx, cy, w, h]``
    zero-padded per frame) against evdet's ``compute_loss``. Each term RVT reports (``loss``,
    ``iou_loss``, ``conf_loss``, ``cls_loss``, ``num_fg``) must agree within a relative 1e-4, and so must
    the gradient of ``loss`` for every parameter (``max|Δ| / max|RVT|`` per tensor; through the whole
    chunk, so the backbone's gradients see the unlabelled bins too).
(d) the L1 term: the same step with YOLOX's L1 loss on (evdet: ``use_l1``; RVT: its own ``get_losses``
    with ``use_l1`` set). RVT never switches it on, and its ``YOLOXHead.forward`` cannot run with it in
    train mode (it reshapes ``reg_output`` for the L1 targets before concatenating it into the inference
    output, which then fails on the shapes), so RVT's raw box outputs are taken from its ``reg_preds``
    convolutions by forward hooks, laid out as that ``forward`` lays them out, and handed to its
    ``get_losses`` (:func:`rvt_l1_enabled`). ``l1_loss`` / ``loss_l1`` and the total must agree within a
    relative 1e-4.

Precision (``--dtype``): float32 (default, what both run in practice) or float64 (after the import, from
the float32 checkpoint). evdet's post-processing computes in float32 whatever the model's dtype, so RVT's
``postprocess`` is given its predictions in float32 too. In float32 the two are bit-identical only
because evdet keeps RVT's memory formats (channels-last hidden states between the stages and into the
PAFPN, channels-last upsampling): the values do not depend on the layout, but oneDNN picks other
convolution kernels for other layouts, and their rounding, amplified by the BatchNorm gains of a random
network, was enough to move boxes by 5e-3 px and to swap near-tied detections before evdet did so.

Prints one table per check; exits with status 1 when any tolerance fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from rvt_reference import Config, detector_config, import_rvt
from torch import Tensor

from evdet.inference.checkpoint import load_detector
from evdet.inference.model_config import RVT_SIZES
from evdet.inference.rvt_checkpoint import import_rvt_checkpoint
from evdet.models.rvt_backbone import rvt_input_geometry

BOX_TOL = 2e-3  # px
SCORE_TOL = 1e-5
LOSS_RTOL = 1e-4
CONF_THRESH = 0.1  # RVT's postprocess.confidence_threshold
NMS_THRESH = 0.45  # RVT's postprocess.nms_threshold
BATCH = 2
CHUNK_BINS = 3
LOSS_BINS = 4
#: ``(t, b)`` of the labelled frames of the loss chunk (the others are unlabelled)
LABELLED = ((1, 0), (2, 1), (3, 0), (3, 1))


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str  # evdet importer's name: "gen1" or "gen4"
    height: int
    width: int
    partition_split_32: int
    num_classes: int
    backbone: str = "rvt-t"
    fpn_depth: float = 0.33
    batch: int = BATCH

    @property
    def labelled(self) -> tuple[tuple[int, int], ...]:
        """``(t, b)`` of the labelled frames of the loss chunk (:data:`LABELLED` within the batch)."""
        return tuple((t, b) for t, b in LABELLED if b < self.batch)


#: PAFPN depth of RVT's experiment configs (``config/experiment/gen1|gen4/{tiny,small,base}.yaml``)
FPN_DEPTH = {"rvt-t": 0.33, "rvt-s": 0.33, "rvt-b": 0.67}


def cases(backbone: str, batch: int) -> tuple[Case, Case]:
    return (Case("Gen1", "gen1", 240, 304, 1, 2, backbone, FPN_DEPTH[backbone], batch),
            Case("1Mpx half", "gen4", 360, 640, 2, 3, backbone, FPN_DEPTH[backbone], batch))


# ---------------------------------------------------------------------------------------------- RVT side
def build_rvt_detector(case: Case, seed: int) -> torch.nn.Module:
    """RVT's ``YoloXDetector`` as RVT initialises it, then perturbed (module docstring): seeded noise of
    0.1 × each tensor's std on every weight; BatchNorm statistics measured on three random bins (so that
    the features are normalised in eval mode, as in a trained model, instead of shrinking layer by layer);
    class and objectness weights × 2 (scores vary from anchor to anchor); class biases from the 0.01
    prior to 0 (probability 0.5), objectness biases from the prior up by 1.5, box-size biases + 1.5
    (boxes of about 4.5 strides, so that the NMS suppresses some)."""
    from models.detection.yolox_extension.models.detector import YoloXDetector
    from utils.padding import InputPadderFromShape

    torch.manual_seed(seed)
    model = YoloXDetector(rvt_model_config(case))
    padder = InputPadderFromShape(tuple(padded_geometry(case)[:2]))
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1:
                p.add_(torch.randn_like(p) * 0.1 * p.std())
        model.eval()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train()
                m.momentum = None  # cumulative average over the calibration bins
                m.reset_running_stats()
        calibration = random_histograms(torch.Generator().manual_seed(seed + 1000), 3, case)
        states = None
        for t in range(calibration.shape[0]):
            features, states = model.forward_backbone(padder.pad_tensor_ev_repr(calibration[t]), states)
            model.forward_detect(features)
        model.eval()
        head = model.yolox_head
        head.output_grids = head.output_strides = None  # RVT caches the decoding grid on first use
        for k in range(len(head.cls_preds)):
            head.cls_preds[k].weight.mul_(2.0)
            head.obj_preds[k].weight.mul_(2.0)
            head.cls_preds[k].bias.add_(4.6)
            head.obj_preds[k].bias.add_(1.5)
            head.reg_preds[k].bias[2:].add_(1.5)
    return model


def rvt_model_config(case: Case) -> Config:
    """RVT's ``model`` config of the case (RVT's sizes for ``case.backbone``)."""
    embed_dim, dim_head = RVT_SIZES[case.backbone]
    padded_h, padded_w, p_h, p_w = padded_geometry(case)
    return detector_config(embed_dim, dim_head, (p_h, p_w), (padded_h, padded_w), case.num_classes,
                           case.fpn_depth)


def plain_config(case: Case) -> dict:
    """:func:`rvt_model_config` as plain nested dicts (what ``OmegaConf.to_container`` gives)."""
    return json.loads(json.dumps(rvt_model_config(case)))


def padded_geometry(case: Case) -> list[int]:
    """``[padded_height, padded_width, partition_h, partition_w]`` (RVT's padding to multiples of
    32 × partition_split_32)."""
    return rvt_input_geometry(case.height, case.width, 32, case.partition_split_32, [])


def write_rvt_checkpoint(model: torch.nn.Module, model_config: dict, path: Path) -> None:
    """RVT's Lightning checkpoint layout: the ``Module``'s ``mdl`` attribute is the ``YoloXDetector``; its
    model config (plain dicts here, OmegaConf objects in RVT's files) under ``hyper_parameters``."""
    state = {"mdl." + k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3, "global_step": 12345, "pytorch-lightning_version": "1.8.6",
                "hyper_parameters": {"full_config": {"model": model_config}}}, path)


def zero_column(states: list, column: int) -> list:
    """RVT's LSTM states (a list of ``(h, c)`` per stage) with batch column ``column`` zeroed."""
    out = []
    for state in states:
        parts = []
        for s in state:
            s = s.clone()
            s[column] = 0
            parts.append(s)
        out.append(tuple(parts))
    return out


def rvt_detections(model: torch.nn.Module, padder, chunks: list[Tensor], num_classes: int) -> list[Tensor]:
    """RVT's validation path, bin by bin: ``Tensor[n, 7]`` (x1, y1, x2, y2, obj_conf, class_conf,
    class_pred) per frame, t-major over all chunks; column 0 reset between chunks."""
    from models.detection.yolox.utils.boxes import postprocess

    model.eval()
    states = None
    out = []
    with torch.no_grad():
        for k, chunk in enumerate(chunks):
            if k > 0:
                states = zero_column(states, 0)
            for t in range(chunk.shape[0]):
                features, states = model.forward_backbone(padder.pad_tensor_ev_repr(chunk[t]), states)
                predictions, _ = model.forward_detect(features)
                # in float32, as evdet's post-processing whatever the model's dtype (a copy: postprocess
                # writes into its input)
                processed = postprocess(predictions.to(torch.float32, copy=True), num_classes,
                                        conf_thre=CONF_THRESH, nms_thre=NMS_THRESH)
                out.extend(torch.zeros(0, 7) if p is None else p for p in processed)
    return out


def yolox_labels(boxes_xywh: list[Tensor], classes: list[Tensor]) -> Tensor:
    """RVT's ``ObjectLabels.get_labels_as_batched_tensor(format_='yolox')``: per frame rows
    ``(class, x + w/2, y + h/2, w, h)``, zero-padded to the largest count: ``Tensor[N, n_max, 5]``."""
    n_max = max(b.shape[0] for b in boxes_xywh)
    out = torch.zeros(len(boxes_xywh), n_max, 5)
    for i, (b, c) in enumerate(zip(boxes_xywh, classes, strict=True)):
        out[i, :b.shape[0], 0] = c.float()
        out[i, :b.shape[0], 1] = b[:, 0] + 0.5 * b[:, 2]
        out[i, :b.shape[0], 2] = b[:, 1] + 0.5 * b[:, 3]
        out[i, :b.shape[0], 3] = b[:, 2]
        out[i, :b.shape[0], 4] = b[:, 3]
    return out


@contextlib.contextmanager
def rvt_l1_enabled(head: torch.nn.Module):
    """RVT's ``YOLOXHead`` computing its losses with ``use_l1`` (module docstring, (d)): forward hooks keep
    each level's ``reg_preds`` output ``[N, 4, h, w]``; ``get_losses`` (RVT's, unchanged) is called with
    ``use_l1`` set and those outputs as ``origin_preds``, each viewed ``[N, 1, 4, h, w]``, permuted to
    ``[N, 1, h, w, 4]`` and reshaped ``[N, h·w, 4]`` as RVT's ``forward`` does; ``forward`` itself runs
    with ``use_l1`` off."""
    raw: list[Tensor] = []
    hooks = [conv.register_forward_hook(lambda _m, _i, out: raw.append(out)) for conv in head.reg_preds]
    get_losses = type(head).get_losses

    def with_l1(*args, **kwargs):
        origin = [r.view(r.shape[0], 1, 4, *r.shape[-2:]).permute(0, 1, 3, 4, 2).reshape(r.shape[0], -1, 4)
                  for r in raw]
        args = list(args)
        args[5] = origin  # get_losses(x_shifts, y_shifts, expanded_strides, labels, outputs, origin_preds)
        head.use_l1 = True
        try:
            return get_losses(head, *args, **kwargs)
        finally:
            head.use_l1 = False

    head.get_losses = with_l1
    try:
        yield
    finally:
        del head.get_losses
        for h in hooks:
            h.remove()


def rvt_loss(model: torch.nn.Module, padder, x: Tensor,
             labelled: dict[tuple[int, int], tuple[Tensor, Tensor]], use_l1: bool = False
             ) -> tuple[dict[str, float], dict[str, Tensor]]:
    """RVT's training step: the backbone on every bin, FPN + head + loss on the labelled frames (with the
    L1 term: :func:`rvt_l1_enabled`). Returns the losses and the gradient of ``loss`` for every parameter
    (RVT's names)."""
    model.train()
    model.zero_grad(set_to_none=True)
    states = None
    selected: dict[int, list[Tensor]] = {}
    boxes, classes = [], []
    for t in range(x.shape[0]):
        features, states = model.forward_backbone(padder.pad_tensor_ev_repr(x[t]), states)
        columns = [b for b in range(x.shape[1]) if (t, b) in labelled]
        if columns:
            for stage, f in features.items():
                selected.setdefault(stage, []).append(f[columns])
            for b in columns:
                boxes.append(labelled[(t, b)][0])
                classes.append(labelled[(t, b)][1])
    features = {stage: torch.cat(fs) for stage, fs in selected.items()}
    # RVT's labels are float32 (x, y, w, h) turned into YOLOX rows, then cast to the model's dtype
    labels = yolox_labels(boxes, classes).to(x.dtype)
    with rvt_l1_enabled(model.yolox_head) if use_l1 else contextlib.nullcontext():
        _, losses = model.forward_detect(features, targets=labels)
    losses["loss"].backward()
    return as_floats(losses), {k: p.grad for k, p in model.named_parameters() if p.grad is not None}


# -------------------------------------------------------------------------------------------- evdet side
def evdet_detectors_from_rvt(rvt_ckpt: Path, case: Case, work_dir: Path
                             ) -> tuple[dict[bool, torch.nn.Module], str]:
    """The detectors under test: RVT's checkpoint converted by evdet's importer, then ``load_detector``
    with ``class_score_only`` False (objectness × class score) and True (class score), same weights; and
    a one-line summary of what the importer inferred."""
    out_ckpt = work_dir / "evdet.ckpt"
    info = import_rvt_checkpoint(rvt_ckpt, out_ckpt, case.dataset)
    detectors = {flag: load_detector(out_ckpt, class_score_only=flag)[0] for flag in (False, True)}
    config = info.config
    summary = (f"{config.backbone} + {config.head}, partition_split_32 {config.rvt.partition_split_32}, "
               f"PAFPN depth {config.yolox.depth}, classes {list(info.classes)}")
    return detectors, summary


def evdet_detections(detector: torch.nn.Module, chunks: list[Tensor]) -> list[Tensor]:
    """evdet's ``detect`` one chunk per call, column 0 reset between chunks: ``Tensor[n, 6]`` per frame."""
    detector.eval()
    detector.reset_all()
    out = []
    with torch.no_grad():
        for k, chunk in enumerate(chunks):
            if k > 0:
                detector.reset(torch.tensor([0.0] + [1.0] * (chunk.shape[1] - 1)))
            out.extend(detector.detect(chunk, score_thresh=CONF_THRESH, nms_thresh=NMS_THRESH,
                                       max_detections=100_000))
    return out


def evdet_loss(detector: torch.nn.Module, x: Tensor,
               labelled: dict[tuple[int, int], tuple[Tensor, Tensor]], use_l1: bool = False
               ) -> tuple[dict[str, float], dict[str, Tensor]]:
    """evdet's ``compute_loss`` with xyxy targets ``(x, y, x + w, y + h, class)`` (the YOLOX head's
    ``use_l1`` set for the call); the losses and the gradient of ``loss`` for every parameter, under RVT's
    names (``head.`` removed)."""
    detector.head.use_l1 = use_l1
    detector.train()
    detector.zero_grad(set_to_none=True)
    detector.reset_all()
    t_bins, batch = x.shape[0], x.shape[1]
    targets = [[torch.zeros(0, 5) for _ in range(batch)] for _ in range(t_bins)]
    frame_is_labeled = torch.zeros(t_bins, batch, dtype=torch.bool)
    for (t, b), (xywh, cls) in labelled.items():
        xyxy = torch.cat((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), 1)
        targets[t][b] = torch.cat((xyxy, cls.float().unsqueeze(1)), 1)
        frame_is_labeled[t, b] = True
    try:
        losses = detector.compute_loss(x, targets, frame_is_labeled)
    finally:
        detector.head.use_l1 = False
    losses["loss"].backward()
    return as_floats(losses), {k.removeprefix("head."): p.grad for k, p in detector.named_parameters()
                               if p.grad is not None}


# ---------------------------------------------------------------------------------------------- inputs
def random_histograms(generator: torch.Generator, t_bins: int, case: Case) -> Tensor:
    """Stacked-histogram-like counts ``Tensor[T, B, 20, H, W]``: floats in 0..10, sparse (2 % of the
    cells of the background hold events), with 3-8 denser rectangles (objects: 40 % of their cells) per
    frame, so that the features vary across the image as with real recordings."""
    shape = (t_bins, case.batch, 20, case.height, case.width)
    density = torch.full((t_bins, case.batch, 1, case.height, case.width), 0.02)
    for t in range(t_bins):
        for b in range(case.batch):
            for _ in range(int(torch.randint(3, 9, (1,), generator=generator))):
                h = int(torch.randint(8, case.height // 3, (1,), generator=generator))
                w = int(torch.randint(8, case.width // 3, (1,), generator=generator))
                y = int(torch.randint(0, case.height - h, (1,), generator=generator))
                x = int(torch.randint(0, case.width - w, (1,), generator=generator))
                density[t, b, 0, y:y + h, x:x + w] = 0.4
    counts = torch.randint(1, 11, shape, generator=generator).float()
    return counts * (torch.rand(shape, generator=generator) < density)


def random_labels(generator: torch.Generator, case: Case) -> dict[tuple[int, int], tuple[Tensor, Tensor]]:
    """1..6 random boxes ``(x, y, w, h)`` inside the image, and their classes, per labelled frame."""
    out = {}
    for key in case.labelled:
        n = int(torch.randint(1, 7, (1,), generator=generator))
        wh = 12 + torch.rand(n, 2, generator=generator) * torch.tensor([case.width / 3, case.height / 3])
        xy = torch.rand(n, 2, generator=generator) * (torch.tensor([case.width, case.height]) - wh)
        cls = torch.randint(0, case.num_classes, (n,), generator=generator)
        out[key] = (torch.cat((xy, wh), 1), cls)
    return out


# ---------------------------------------------------------------------------------------------- checks
def canonical_order(score: Tensor, rows: Tensor) -> Tensor:
    """Indices sorting ``rows`` by ``score``, highest first; rows of exactly equal score (whose order
    neither implementation defines) by their remaining columns (box, class)."""
    idx = torch.arange(score.numel())
    for key in [rows[:, j] for j in reversed(range(rows.shape[1]))] + [-score]:  # least significant first
        idx = idx[torch.sort(key[idx], stable=True)[1]]
    return idx


def compare_detections(ours: list[Tensor], ref: list[Tensor], height: int, width: int,
                       class_score_only: bool) -> dict:
    """Largest differences over all frames. ``differ``: the frames whose count differs, whose evdet rows
    are not sorted by score, or whose classes differ once both sides are in :func:`canonical_order`
    (their boxes and scores are not compared; any other reordering shows as a box difference)."""
    worst_box, worst_score, clipped, differ, counts = 0.0, 0.0, 0, 0, []
    for o, r in zip(ours, ref, strict=True):
        counts.append(r.shape[0])
        ref_score = r[:, 5] if class_score_only else r[:, 4] * r[:, 5]
        ref_boxes = torch.stack((r[:, 0].clamp(0, width), r[:, 1].clamp(0, height), r[:, 2].clamp(0, width),
                                 r[:, 3].clamp(0, height)), 1)
        clipped += int((ref_boxes != r[:, :4]).any(1).sum())
        ref_rows = torch.cat((ref_boxes, r[:, 6:7]), 1).to(o.dtype)  # [n, 5] x1, y1, x2, y2, class
        order = canonical_order(ref_score, ref_rows)
        ref_rows, ref_score = ref_rows[order], ref_score[order]
        if o.shape[0] != r.shape[0] or bool((o[1:, 4] > o[:-1, 4]).any()):
            differ += 1
            continue
        o = o[canonical_order(o[:, 4], o[:, [0, 1, 2, 3, 5]])]
        if not torch.equal(o[:, 5], ref_rows[:, 4]):
            differ += 1
            continue
        if o.shape[0]:
            worst_box = max(worst_box, float((o[:, :4] - ref_rows[:, :4]).abs().max()))
            worst_score = max(worst_score, float((o[:, 4] - ref_score).abs().max()))
    return {"box": worst_box, "score": worst_score, "clipped": clipped, "differ": differ, "counts": counts}


def grad_difference(ours: dict[str, Tensor], ref: dict[str, Tensor]) -> tuple[float, str]:
    """Largest ``max|ours − ref| / max|ref|`` over the parameters (and its name); a parameter with a
    gradient on one side only counts as 1."""
    worst, where = 0.0, ""
    for name in sorted(set(ours) | set(ref)):
        if name not in ours or name not in ref:
            d = 1.0
        else:
            d = float((ours[name] - ref[name]).abs().max() / ref[name].abs().max().clamp(min=1e-30))
        if d > worst:
            worst, where = d, name
    return worst, where


def as_floats(losses: dict) -> dict[str, float]:
    return {k: float(v.detach()) if isinstance(v, Tensor) else float(v) for k, v in losses.items()}


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rvt-dir", type=Path, required=True, help="checkout of uzh-rpg/RVT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", choices=tuple(FPN_DEPTH), default="rvt-t", help="RVT's model size")
    parser.add_argument("--batch", type=int, choices=(1, 2), default=BATCH,
                        help="batch size B of every chunk (1 is what detection on one recording runs)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="precision of both models and the inputs (see the module docstring)")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    import_rvt(args.rvt_dir)
    from utils.padding import InputPadderFromShape

    torch.set_grad_enabled(True)
    failed = []
    det_rows, loss_rows, grad_rows, l1_rows = [], [], [], []
    for case in cases(args.backbone, args.batch):
        generator = torch.Generator().manual_seed(args.seed)
        rvt = build_rvt_detector(case, args.seed)
        padded_h, padded_w, _, _ = padded_geometry(case)
        with tempfile.TemporaryDirectory() as tmp:
            rvt_ckpt = Path(tmp) / "rvt.ckpt"
            write_rvt_checkpoint(rvt, plain_config(case), rvt_ckpt)
            detectors, summary = evdet_detectors_from_rvt(rvt_ckpt, case, Path(tmp))
        print(f"(a) {case.name}: RVT checkpoint imported as {summary}")
        rvt.to(dtype)
        for detector in detectors.values():
            detector.to(dtype)

        chunks = [random_histograms(generator, CHUNK_BINS, case).to(dtype) for _ in range(2)]
        ref = rvt_detections(rvt, InputPadderFromShape((padded_h, padded_w)), chunks, case.num_classes)
        for class_score_only in (False, True):
            mode = "class prob" if class_score_only else "obj x class"
            got = evdet_detections(detectors[class_score_only], chunks)
            cmp = compare_detections(got, ref, case.height, case.width, class_score_only)
            ok = cmp["differ"] == 0 and cmp["box"] <= BOX_TOL and cmp["score"] <= SCORE_TOL \
                and sum(c > 0 for c in cmp["counts"]) > len(cmp["counts"]) // 2
            det_rows.append((case.name, mode, cmp, ok))
            if not ok:
                failed.append(f"{case.name} detections ({mode})")

        x = random_histograms(generator, LOSS_BINS, case).to(dtype)
        labelled = random_labels(generator, case)
        ref_losses, ref_grads = rvt_loss(rvt, InputPadderFromShape((padded_h, padded_w)), x, labelled)
        our_losses, our_grads = evdet_loss(detectors[False], x, labelled)
        for rvt_name, our_name in (("loss", "loss"), ("iou_loss", "loss_iou"), ("conf_loss", "loss_obj"),
                                   ("cls_loss", "loss_cls"), ("num_fg", "fg_per_gt")):
            d = rel(our_losses[our_name], ref_losses[rvt_name])
            ok = d <= LOSS_RTOL and math.isfinite(our_losses[our_name])
            loss_rows.append((case.name, f"{rvt_name} / {our_name}", ref_losses[rvt_name],
                              our_losses[our_name], d, ok))
            if not ok:
                failed.append(f"{case.name} {rvt_name}")
        worst, where = grad_difference(our_grads, ref_grads)
        ok = worst <= LOSS_RTOL
        grad_rows.append((case.name, len(ref_grads), worst, where, ok))
        if not ok:
            failed.append(f"{case.name} gradients")

        ref_l1, _ = rvt_loss(rvt, InputPadderFromShape((padded_h, padded_w)), x, labelled, use_l1=True)
        our_l1, _ = evdet_loss(detectors[False], x, labelled, use_l1=True)
        for rvt_name, our_name in (("l1_loss", "loss_l1"), ("loss", "loss")):
            d = rel(our_l1[our_name], ref_l1[rvt_name])
            ok = d <= LOSS_RTOL and math.isfinite(our_l1[our_name]) and ref_l1["l1_loss"] > 0
            l1_rows.append((case.name, f"{rvt_name} / {our_name}", ref_l1[rvt_name], our_l1[our_name], d, ok))
            if not ok:
                failed.append(f"{case.name} {rvt_name} with L1")

    print(f"\n{args.dtype}; {args.backbone} sizes (PAFPN depth {FPN_DEPTH[args.backbone]}); seed {args.seed}")
    print(f"(b) detections, conf {CONF_THRESH}, NMS {NMS_THRESH}, {2 * CHUNK_BINS} bins x batch {args.batch} "
          f"(column 0 reset after bin {CHUNK_BINS})")
    print(f"{'case':10s} {'score':11s} {'detections per frame':34s} {'clipped':>7s} {'max|dbox| px':>12s} "
          f"{'max|dscore|':>11s} {'cls+order':>9s}  ok")
    for name, mode, cmp, ok in det_rows:
        counts = " ".join(str(c) for c in cmp["counts"])
        order = "same" if cmp["differ"] == 0 else f"{cmp['differ']} differ"
        print(f"{name:10s} {mode:11s} {counts:34s} {cmp['clipped']:7d} {cmp['box']:12.1e} "
              f"{cmp['score']:11.1e} {order:>9s}  {'ok' if ok else 'FAIL'}")
    print(f"\n(c) training loss, {LOSS_BINS} bins x batch {args.batch}, labelled frames (t, b) "
          f"{list(cases(args.backbone, args.batch)[0].labelled)}")
    print(f"{'case':10s} {'RVT / evdet term':24s} {'RVT':>12s} {'evdet':>12s} {'rel diff':>9s}  ok")
    for name, term, r, o, d, ok in loss_rows:
        print(f"{name:10s} {term:24s} {r:12.6f} {o:12.6f} {d:9.1e}  {'ok' if ok else 'FAIL'}")
    print("\n(c) gradient of loss: max over parameters of max|evdet - RVT| / max|RVT|")
    for name, count, worst, where, ok in grad_rows:
        print(f"{name:10s} {count} parameters, largest {worst:.1e} ({where})  {'ok' if ok else 'FAIL'}")
    print("\n(d) the same step with YOLOX's L1 term")
    for name, term, r, o, d, ok in l1_rows:
        print(f"{name:10s} {term:24s} {r:12.6f} {o:12.6f} {d:9.1e}  {'ok' if ok else 'FAIL'}")
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
        sys.exit(1)
    print(f"\nall within tolerance (boxes {BOX_TOL} px, scores {SCORE_TOL}, losses rel {LOSS_RTOL})")


if __name__ == "__main__":
    main()
