"""evdet's RT-DETR pieces against RT-DETR's own code (lyuwenyu/RT-DETR) on the same inputs.

    python benchmarks/check_rtdetr_parity.py --rtdetr-dir RT-DETR_CHECKOUT

Compared (random inputs, fixed seeds; exits non-zero on a mismatch):

1. the contrastive denoising groups (``get_contrastive_denoising_training_group`` vs
   :func:`evdet.models.denoising.denoising_groups` from the same seed): labels (through the same class
   embedding), box logits, attention mask, positive indices, group count, for several budgets;
2. the criterion (RT-DETR's ``SetCriterion(losses=['vfl', 'boxes'])`` with its focal ``HungarianMatcher``
   vs :class:`evdet.models.rtdetr_criterion.RTDETRCriterion`): every loss term of the final layer, the
   earlier layers, the proposals and the denoising queries, weighted as RT-DETR weights them;
3. the hybrid encoder (RT-DETR's ``HybridEncoder`` vs :class:`evdet.models.hybrid_encoder.HybridEncoder`,
   RT-DETR's weights loaded by name) on square levels of exact halves (16×16, 8×8, 4×4), where the two
   must agree (on other sizes evdet's position encoding and upsampling differ on purpose, see the module
   docstring);
4. the decoder (RT-DETR's ``RTDETRTransformer`` vs :class:`evdet.models.rtdetr_decoder.RTDETRDecoder`, the
   same weights) on the encoder's outputs: in eval mode (query selection, every layer's refinement) and in
   training mode with denoising (the groups drawn from the same seed): logits and boxes of every decoder
   layer, of the proposals and of the denoising queries.

RT-DETR's files are imported from the checkout without their package ``__init__`` (which pulls its whole
model zoo); what they import besides torch and scipy is served by stand-ins: ``torchvision.ops.boxes.
box_area`` (``evdet.ops.box_area``: torchvision's formula), and ``src.core.register`` / ``src.misc.dist``
(a no-op decorator, a single process).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path

import torch

from evdet.models.denoising import denoising_groups
from evdet.models.matcher import HungarianMatcher
from evdet.models.rtdetr_criterion import RTDETRCriterion
from evdet.models.rtdetr_head import loss_kind
from evdet.ops import box_area


def import_rtdetr(checkout: Path) -> types.ModuleType:
    """RT-DETR's ``src/zoo/rtdetr`` as the package ``rtdetr_ref`` (its ``__init__`` not run)."""
    zoo = checkout / "rtdetr_pytorch" / "src" / "zoo" / "rtdetr"
    if not (zoo / "rtdetr_criterion.py").is_file():
        raise SystemExit(
            f"check_rtdetr_parity: {zoo} has no rtdetr_criterion.py (expected an RT-DETR checkout)"
        )
    stubs = {
        "torchvision": types.ModuleType("torchvision"),
        "torchvision.ops": types.ModuleType("torchvision.ops"),
        "torchvision.ops.boxes": types.ModuleType("torchvision.ops.boxes"),
        "src": types.ModuleType("src"),
        "src.core": types.ModuleType("src.core"),
        "src.misc": types.ModuleType("src.misc"),
        "src.misc.dist": types.ModuleType("src.misc.dist"),
    }
    stubs["torchvision.ops.boxes"].box_area = box_area
    stubs["src.core"].register = lambda cls: cls
    stubs["src.misc.dist"].get_world_size = lambda: 1
    stubs["src.misc.dist"].is_dist_available_and_initialized = lambda: False
    sys.modules.update(stubs)
    pkg = types.ModuleType("rtdetr_ref")
    pkg.__path__ = [str(zoo)]
    sys.modules["rtdetr_ref"] = pkg
    for name in ("denoising", "matcher", "rtdetr_criterion", "hybrid_encoder", "rtdetr_decoder"):
        setattr(pkg, name, importlib.import_module(f"rtdetr_ref.{name}"))
    return pkg


def _boxes(*shape: int) -> torch.Tensor:
    """Valid normalised cxcywh boxes ``Tensor[*shape, 4]``."""
    return torch.cat([torch.rand(*shape, 2) * 0.6 + 0.2, torch.rand(*shape, 2) * 0.3 + 0.05], -1)


def _targets(counts: list[int], num_classes: int) -> list[dict]:
    return [{"labels": torch.randint(0, num_classes, (n,)), "boxes": _boxes(n)} for n in counts]


def check_denoising(ref: types.ModuleType) -> bool:
    ok = True
    num_classes, num_queries = 3, 7
    embed = torch.nn.Embedding(num_classes + 1, 8, padding_idx=num_classes)
    torch.manual_seed(0)
    targets = _targets([3, 0, 1, 5], num_classes)
    for budget in (100, 30, 5, 2):
        torch.manual_seed(1)
        q_class, q_box, mask, meta = ref.denoising.get_contrastive_denoising_training_group(
            targets, num_classes, num_queries, embed, num_denoising=budget
        )
        torch.manual_seed(1)
        g = denoising_groups(
            [t["labels"] for t in targets], [t["boxes"] for t in targets], num_classes, num_queries, budget
        )
        same = (
            torch.equal(embed(g.labels), q_class)
            and torch.equal(g.boxes_unact, q_box)
            and torch.equal(g.attn_mask, mask)
            and g.num_groups == meta["dn_num_group"]
            and g.num_denoising == meta["dn_num_split"][0]
            and all(torch.equal(a, b) for a, b in zip(g.positive_idx, meta["dn_positive_idx"], strict=True))
        )
        print(
            f"denoising, budget {budget:>3}: {g.num_groups} groups, {g.num_denoising} queries: "
            f"{'identical' if same else 'DIFFERENT'}"
        )
        ok &= same
    return ok


def check_criterion(ref: types.ModuleType) -> bool:
    torch.manual_seed(0)
    num_classes, b, k, n_layers = 3, 4, 10, 3
    weights = {"loss_vfl": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    ref_matcher = ref.matcher.HungarianMatcher(
        {"cost_class": 2, "cost_bbox": 5, "cost_giou": 2}, use_focal_loss=True, alpha=0.25, gamma=2.0
    )
    ref_crit = ref.rtdetr_criterion.SetCriterion(
        ref_matcher, weights, ["vfl", "boxes"], alpha=0.75, gamma=2.0, num_classes=num_classes
    )
    mine = RTDETRCriterion(
        num_classes, HungarianMatcher(2, 5, 2, focal=True, alpha=0.25, gamma=2.0), 0.75, 2.0
    )
    targets = _targets([3, 0, 1, 5], num_classes)
    dn = denoising_groups([t["labels"] for t in targets], [t["boxes"] for t in targets], num_classes, k, 20)
    logits, boxes = torch.randn(n_layers, b, k, num_classes), _boxes(n_layers, b, k)
    enc_logits, enc_boxes = torch.randn(b, k, num_classes), _boxes(b, k)
    dn_logits, dn_boxes = (
        torch.randn(n_layers, b, dn.num_denoising, num_classes),
        _boxes(n_layers, b, dn.num_denoising),
    )
    outputs = {
        "pred_logits": logits[-1],
        "pred_boxes": boxes[-1],
        "aux_outputs": [{"pred_logits": logits[i], "pred_boxes": boxes[i]} for i in range(n_layers - 1)]
        + [{"pred_logits": enc_logits, "pred_boxes": enc_boxes}],
        "dn_aux_outputs": [{"pred_logits": dn_logits[i], "pred_boxes": dn_boxes[i]} for i in range(n_layers)],
        "dn_meta": {
            "dn_positive_idx": dn.positive_idx,
            "dn_num_group": dn.num_groups,
            "dn_num_split": [dn.num_denoising, k],
        },
    }
    theirs = ref_crit(outputs, targets)
    ours, _ = mine(logits, boxes, enc_logits, enc_boxes, targets, dn, dn_logits, dn_boxes)

    def ref_name(key: str) -> str:  # RT-DETR's names: _aux_i (the proposals are the last aux set), _dn_i
        kind = loss_kind(key)
        suffix = key[len(kind) :]
        if suffix == "_enc":
            return f"{kind}_aux_{n_layers - 1}"
        return kind + (f"_aux{suffix}" if suffix[1:].isdigit() else suffix)

    names = {k: ref_name(k) for k in ours}
    worst = max(abs(float(ours[k]) * weights[loss_kind(k)] - float(theirs[names[k]])) for k in ours)
    same_keys = set(names.values()) == set(theirs)
    print(
        f"criterion: {len(ours)} loss terms (RT-DETR: {len(theirs)}), largest |difference| {worst:.3g} "
        f"(weighted total: evdet {sum(float(v) * weights[loss_kind(k)] for k, v in ours.items()):.6f}, "
        f"RT-DETR {sum(float(v) for v in theirs.values()):.6f})"
    )
    return same_keys and worst < 1e-5


def _load_renamed(module: torch.nn.Module, state: dict, rename) -> None:
    """Load RT-DETR's ``state`` into ``module`` under ``rename(key)``, every key used (strict)."""
    module.load_state_dict({rename(k): v for k, v in state.items()}, strict=True)


def _encoder_key(key: str) -> str:
    """RT-DETR's ``HybridEncoder`` key -> evdet's (``encoder.0.layers.i`` -> ``encoder.i``, a conv's ``norm``
    -> ``bn``)."""
    key = key.replace("encoder.0.layers.", "encoder.")
    return key.replace(".norm.", ".bn.") if not key.startswith("input_proj.") else key


def _decoder_key(key: str) -> str:
    """RT-DETR's ``RTDETRTransformer`` key -> evdet's ``RTDETRDecoder`` key."""
    key = key.replace("decoder.layers.", "layers.")
    return key.replace(".conv.", ".0.").replace(".norm.", ".1.") if key.startswith("input_proj.") else key


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def check_encoder_decoder(ref: types.ModuleType) -> bool:
    from evdet.models.hybrid_encoder import HybridEncoder
    from evdet.models.rtdetr_decoder import RTDETRDecoder

    torch.manual_seed(0)
    d, num_classes, k = 32, 3, 20
    # the position encoding: RT-DETR enumerates the grid column-major; evdet's is the same table row-major
    from evdet.models.hybrid_encoder import sincos_position_encoding

    h, w = 5, 7
    theirs_pe = ref.hybrid_encoder.HybridEncoder.build_2d_sincos_position_embedding(w, h, d, 10000.0)
    transposed = theirs_pe[0].reshape(w, h, d).transpose(0, 1).reshape(h * w, d)
    diff = _max_diff(transposed, sincos_position_encoding(h, w, d)[0])
    print(f"position encoding {h}x{w}: RT-DETR's, enumerated row-major, largest |difference| {diff:.3g}")
    ok = diff < 1e-6
    # the encoder layer on given positions, and the whole encoder without AIFI (CCFM) and with it
    theirs_layer = ref.hybrid_encoder.TransformerEncoderLayer(d, 4, 64, 0.0, "gelu").eval()
    from evdet.models.hybrid_encoder import EncoderLayer

    ours_layer = EncoderLayer(d, 4, 64, 0.0).eval()
    ours_layer.load_state_dict(theirs_layer.state_dict())
    src, pos = torch.randn(2, 16, d), torch.randn(1, 16, d)
    with torch.no_grad():
        diff = _max_diff(theirs_layer(src, pos_embed=pos), ours_layer(src, pos))
    print(f"AIFI encoder layer: largest |difference| {diff:.3g}")
    ok &= diff < 1e-5
    feats = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 24, 4, 4)]
    for layers in (0, 1):
        theirs_enc = ref.hybrid_encoder.HybridEncoder(
            in_channels=[8, 16, 24],
            feat_strides=[8, 16, 32],
            hidden_dim=d,
            nhead=4,
            dim_feedforward=64,
            expansion=1.0,
            depth_mult=0.34,
            num_encoder_layers=layers,
        ).eval()
        ours_enc = HybridEncoder(
            [8, 16, 24],
            hidden_dim=d,
            nheads=4,
            dim_feedforward=64,
            depth_mult=0.34,
            num_encoder_layers=layers,
        ).eval()
        _load_renamed(ours_enc, theirs_enc.state_dict(), _encoder_key)
        if (
            layers
        ):  # the same table in RT-DETR's order: evdet's encoder with RT-DETR's (column-major) positions
            import evdet.models.hybrid_encoder as he

            real = he.sincos_position_encoding
            he.sincos_position_encoding = lambda hh, ww, dim, t=10000.0, device=None: (
                ref.hybrid_encoder.HybridEncoder.build_2d_sincos_position_embedding(ww, hh, dim, t)
            )
        try:
            with torch.no_grad():
                enc_t, enc_o = theirs_enc(feats), ours_enc(feats)
        finally:
            if layers:
                he.sincos_position_encoding = real
        diff = max(_max_diff(a, b) for a, b in zip(enc_t, enc_o, strict=True))
        what = "with AIFI, given RT-DETR's position table" if layers else "CCFM only (no AIFI layer)"
        print(f"hybrid encoder, levels 16x16 / 8x8 / 4x4, {what}: largest |difference| {diff:.3g}")
        ok &= diff < 1e-5
    theirs_dec = ref.rtdetr_decoder.RTDETRTransformer(
        num_classes=num_classes,
        hidden_dim=d,
        num_queries=k,
        feat_channels=[d, d, d],
        feat_strides=[8, 16, 32],
        num_levels=3,
        nhead=4,
        num_decoder_layers=3,
        dim_feedforward=64,
        num_denoising=12,
    )
    ours_dec = RTDETRDecoder([d, d, d], num_classes, d, k, 3, 4, 64)
    with torch.no_grad():  # away from the zero initialisation, so that every path matters
        for p in theirs_dec.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    _load_renamed(ours_dec, theirs_dec.state_dict(), _decoder_key)
    feats = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 24, 4, 4)]
    theirs_dec.eval()
    ours_dec.eval()
    with torch.no_grad():
        out_t = theirs_dec(enc_t)
        logits, boxes, _, _ = ours_dec(enc_t)
        diff = max(_max_diff(out_t["pred_logits"], logits[-1]), _max_diff(out_t["pred_boxes"], boxes[-1]))
        print(f"decoder, eval: final layer logits and boxes, largest |difference| {diff:.3g}")
        ok &= diff < 1e-5
    theirs_dec.train()
    ours_dec.train()
    targets = _targets([3, 1], num_classes)
    torch.manual_seed(5)
    out_t = theirs_dec(enc_t, targets)
    torch.manual_seed(5)
    dn = denoising_groups([t["labels"] for t in targets], [t["boxes"] for t in targets], num_classes, k, 12)
    logits, boxes, enc_logits, enc_boxes = ours_dec(enc_t, dn.labels, dn.boxes_unact, dn.attn_mask)
    n = dn.num_denoising
    pairs = [(out_t["pred_logits"], logits[-1, :, n:]), (out_t["pred_boxes"], boxes[-1, :, n:])]
    for i, aux in enumerate(out_t["aux_outputs"][:-1]):
        pairs += [(aux["pred_logits"], logits[i, :, n:]), (aux["pred_boxes"], boxes[i, :, n:])]
    pairs += [
        (out_t["aux_outputs"][-1]["pred_logits"], enc_logits),
        (out_t["aux_outputs"][-1]["pred_boxes"], enc_boxes),
    ]
    for i, aux in enumerate(out_t["dn_aux_outputs"]):
        pairs += [(aux["pred_logits"], logits[i, :, :n]), (aux["pred_boxes"], boxes[i, :, :n])]
    diff = max(_max_diff(a.detach(), b.detach()) for a, b in pairs)
    print(
        f"decoder, training with {n} denoising queries: {len(pairs)} outputs (3 layers, proposals, "
        f"denoising), "
        f"largest |difference| {diff:.3g}"
    )
    return ok and diff < 1e-5


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rtdetr-dir", type=Path, required=True, help="a checkout of lyuwenyu/RT-DETR")
    args = p.parse_args(argv)
    ref = import_rtdetr(args.rtdetr_dir)
    ok = check_denoising(ref) & check_criterion(ref) & check_encoder_decoder(ref)
    print("all equal" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
