"""``evdet-train DATASET_DIR [--root-dir DIR] [options]``: train, resume, fine-tune or evaluate a detector.

Defaults come from the data: channels, ``delta_t`` and representation from the HDF5 attributes, classes
from ``label_map_dictionary.json``. See ``docs/training.md`` for recipes and every option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# configs only (cheap: no torch, Lightning or numba, so that --help is instant); the rest is imported
# inside main()
from evdet.data.config import SAMPLING_MODES, DataConfig
from evdet.inference.model_config import (
    HEADS,
    AnchorHeadConfig,
    DetrHeadConfig,
    ModelConfig,
    RTDetrHeadConfig,
    RVTConfig,
    VanillaConfig,
    YoloxHeadConfig,
)
from evdet.training.config import LR_SCHEDULES, TrainConfig


def _limit(value: str) -> float | int:
    """``--limit-*-batches``: an int (number of batches) or a float fraction."""
    try:
        return int(value)
    except ValueError:
        return float(value)


def _devices(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        return value


def _set_loss_weights(weights: list[float] | None) -> dict[str, float]:
    if weights is None:
        return {}
    return {"loss_ce": weights[0], "loss_bbox": weights[1], "loss_giou": weights[2],
            "cost_class": weights[0], "cost_bbox": weights[1], "cost_giou": weights[2]}


def build_parser() -> argparse.ArgumentParser:
    mc, tc, dc = ModelConfig(), TrainConfig(), DataConfig()
    van, anc, st, rvt, yx, rd = mc.vanilla, mc.anchor, mc.set, mc.rvt, mc.yolox, mc.rtdetr
    p = argparse.ArgumentParser(
        prog="evdet-train", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("dataset_dir", help="label_map_dictionary.json + train/ val/ [test/] (HDF5 or raw)")
    p.add_argument("--root-dir", default="runs/evdet", help="run folder: checkpoints, logs, metrics")

    g = p.add_argument_group("model")
    g.add_argument("--head", default=mc.head, choices=sorted(HEADS), help="detection head")
    g.add_argument("--backbone", default=mc.backbone,
                   help="Vanilla, Vanilla_VGG, Vanilla_VGGRU (ConvRNN) or rvt-t, rvt-s, rvt-b, rvt (RVT's "
                        "MaxViT-RNN; see docs/models.md)")
    g.add_argument("--rvt-partition-split", type=int, default=rvt.partition_split_32, choices=(1, 2, 4),
                   help="rvt*: pad to multiples of 32 x this, attention partitions padded / (32 x this) "
                        "(RVT: 1 on Gen1, 2 on 1Mpx)")
    g.add_argument("--base", type=int, default=van.base, help="backbone base width")
    g.add_argument("--cout", type=int, default=van.cout, help="channels of the recurrent feature levels")
    g.add_argument("--anchors", default=anc.anchors, help="anchor list name (PSEE_ANCHORS, COCO_ANCHORS)")
    g.add_argument("--anchor-size", type=float, default=anc.anchor_size,
                   help="anchor size of the first level (network pixels)")
    g.add_argument("--score-thresh", type=float, default=mc.score_thresh, help="decoding score threshold")
    g.add_argument("--nms-thresh", type=float, default=mc.nms_thresh, help="NMS IoU threshold")
    g.add_argument("--max-detections", type=int, default=mc.max_detections, help="detections per frame")
    g.add_argument("--num-queries", type=int, default=st.num_queries, help="set head: queries per frame")
    g.add_argument("--dec-layers", type=int, default=st.dec_layers, help="set head: decoder layers")
    g.add_argument("--hidden-dim", type=int, default=st.hidden_dim, help="set head: decoder width")
    g.add_argument("--nheads", type=int, default=st.nheads, help="set head: attention heads")
    g.add_argument("--set-cls-loss", default=st.cls_loss, choices=("ce", "focal"),
                   help="set head: classification loss")
    g.add_argument("--set-loss-weights", type=float, nargs=3, default=None, metavar=("CE", "L1", "GIOU"),
                   help="set head: loss and matching-cost weights (default 1 5 2)")
    g.add_argument("--set-eos-coef", type=float, default=st.eos_coef, help="set head: no-object weight")
    g.add_argument("--head-lr-mult", type=float, default=st.lr_mult, help="set head LR / backbone LR")
    g.add_argument("--set-grad-clip", type=float, default=st.grad_clip,
                   help="set head: gradient-norm clip (the smaller of this and --gradient-clip is used)")
    g.add_argument("--rtdetr-hidden-dim", type=int, default=rd.hidden_dim,
                   help="rtdetr head: encoder and decoder width")
    g.add_argument("--rtdetr-nheads", type=int, default=rd.nheads, help="rtdetr head: attention heads")
    g.add_argument("--rtdetr-ffn", type=int, default=rd.dec_ffn,
                   help="rtdetr head: feed-forward width of the encoder and decoder layers")
    g.add_argument("--rtdetr-enc-layers", type=int, default=rd.enc_layers,
                   help="rtdetr head: transformer layers on the coarsest level")
    g.add_argument("--rtdetr-depth-mult", type=float, default=rd.depth_mult,
                   help="rtdetr head: round(3 x this) RepVGG blocks per cross-scale fusion block")
    g.add_argument("--rtdetr-queries", type=int, default=rd.num_queries, help="rtdetr head: matching queries")
    g.add_argument("--rtdetr-dec-layers", type=int, default=rd.dec_layers, help="rtdetr head: decoder layers")
    g.add_argument("--rtdetr-points", type=int, default=rd.num_points,
                   help="rtdetr head: deformable sampling points per head and level")
    g.add_argument("--rtdetr-denoising", type=int, default=rd.num_denoising,
                   help="rtdetr head: denoising queries per batch (0: none)")
    g.add_argument("--rtdetr-nms", action="store_true",
                   help="rtdetr head: class-wise NMS at --nms-thresh when decoding (default: none, set "
                        "prediction)")
    g.add_argument("--rtdetr-grad-clip", type=float, default=rd.grad_clip,
                   help="rtdetr head: gradient-norm clip (the smaller of this and --gradient-clip is used)")
    g.add_argument("--yolox-depth", type=float, default=yx.depth,
                   help="yolox head: PAFPN depth multiplier, round(3 x this) bottlenecks per CSP layer "
                        "(RVT: 0.33 for rvt-t/rvt-s, 0.67 for rvt-b)")
    g.add_argument("--yolox-act", default=yx.act, choices=("silu", "relu", "lrelu"),
                   help="yolox head: activation (RVT: silu)")
    g.add_argument("--yolox-depthwise", action="store_true",
                   help="yolox head: depthwise-separable 3x3 convolutions in the PAFPN and head")
    g.add_argument("--yolox-use-l1", action="store_true",
                   help="yolox head: add YOLOX's L1 loss on the raw box outputs (RVT: off)")
    g.add_argument("--yolox-class-score-only", action="store_true",
                   help="yolox head: score detections (validation, test, and later evdet-detect) with the "
                        "best class probability alone, as RVT's evaluation does, instead of objectness x "
                        "class probability")

    g = p.add_argument_group("data")
    g.add_argument("--num-tbins", "-T", type=int, default=dc.num_tbins, help="time bins per batch step T")
    g.add_argument("--batch-size", "-B", type=int, default=dc.batch_size, help="streams per batch (per rank)")
    g.add_argument("--height", type=int, default=None, help="network height (default: stored size)")
    g.add_argument("--width", type=int, default=None, help="network width (default: stored size)")
    g.add_argument("--classes", nargs="+", default=None, help="class names to train on (default: label map)")
    g.add_argument("--sampling", default=dc.sampling, choices=SAMPLING_MODES, help="training sampling mode")
    g.add_argument("--hflip-prob", type=float, default=dc.hflip_prob, help="horizontal flip probability")
    g.add_argument("--zoom-in-prob", type=float, default=dc.zoom_in_prob, help="zoom-in probability")
    g.add_argument("--zoom-out-prob", type=float, default=dc.zoom_out_prob, help="zoom-out probability")
    g.add_argument("--max-zoom", type=float, default=dc.max_zoom, help="largest zoom factor")
    g.add_argument("--no-interpolate", action="store_true", help="no label interpolation to bin ends")
    g.add_argument("--min-box-diag-network", type=float, default=dc.min_box_diag_network,
                   help="drop training boxes with a smaller diagonal (network pixels)")
    g.add_argument("--max-consecutive-batches", type=int, default=None, help="cut videos into sub-sequences")
    g.add_argument("--num-workers", type=int, default=dc.num_workers, help="DataLoader workers")
    g.add_argument("--delta-t", type=int, default=None, help="bin length in µs (raw recordings only)")
    g.add_argument("--representation", default=None, help="representation (raw recordings only)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float, default=tc.lr, help="peak learning rate (AdamW)")
    g.add_argument("--weight-decay", type=float, default=tc.weight_decay, help="AdamW weight decay")
    g.add_argument("--lr-schedule", default=tc.lr_schedule, choices=LR_SCHEDULES, help="per-step schedule")
    g.add_argument("--warmup-fraction", type=float, default=tc.warmup_fraction, help="warm-up share")
    g.add_argument("--warmup-steps", type=int, default=None, help="warm-up steps (overrides the fraction)")
    g.add_argument("--min-lr-ratio", type=float, default=tc.min_lr_ratio, help="final lr / peak lr")
    g.add_argument("--gradient-clip", type=float, default=tc.gradient_clip_val, help="0 disables clipping")
    g.add_argument("--max-epochs", type=int, default=tc.max_epochs, help="-1: until --max-steps")
    g.add_argument("--max-steps", type=int, default=tc.max_steps, help="-1: follow --max-epochs")
    g.add_argument("--limit-train-batches", type=_limit, default=tc.limit_train_batches)
    g.add_argument("--limit-val-batches", type=_limit, default=tc.limit_val_batches)
    g.add_argument("--limit-test-batches", type=_limit, default=tc.limit_test_batches)
    g.add_argument("--precision", default=tc.precision, help="auto, 32-true, 16-mixed, bf16-mixed")
    g.add_argument("--accelerator", default=tc.accelerator, help="auto, cpu, gpu")
    g.add_argument("--devices", type=_devices, default=tc.devices, help="number of devices (or 'auto')")
    g.add_argument("--strategy", default=tc.strategy, help="auto, ddp, ...")
    g.add_argument("--seed", type=int, default=tc.seed, help="global seed (data order, init)")
    g.add_argument("--skip-nonfinite", action="store_true", help="skip NaN/inf steps instead of stopping")

    g = p.add_argument_group("evaluation and logging")
    g.add_argument("--eval-preset", default=tc.eval_preset, help="auto, gen1, gen4, gen4-half, legacy")
    g.add_argument("--eval-skip-ts", type=int, default=None, help="µs of each recording not scored")
    g.add_argument("--eval-score-thresh", type=float, default=tc.eval_score_thresh,
                   help="score threshold of the detections scored in validation/test")
    g.add_argument("--time-tol", type=int, default=None, help="evaluation time tolerance in µs")
    g.add_argument("--check-val-every-n-epoch", type=int, default=tc.check_val_every_n_epoch)
    g.add_argument("--log-every-n-steps", type=int, default=tc.log_every_n_steps)
    g.add_argument("--log-images-every-n-steps", type=int, default=tc.log_images_every_n_steps,
                   help="detection images to TensorBoard (0: off)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    g = p.add_argument_group("what to run")
    g.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --root-dir")
    g.add_argument("--overwrite", action="store_true",
                   help="start a new run in a --root-dir holding an earlier run's checkpoints (deleted)")
    g.add_argument("--finetune", action="store_true", help="start from --checkpoint's weights")
    g.add_argument("--checkpoint", default=None, help="checkpoint for --finetune / --just-val / --just-test")
    g.add_argument("--just-val", action="store_true", help="only evaluate on val/")
    g.add_argument("--just-test", action="store_true",
                   help="only evaluate on test/ and write detections as ROOT/detections/test/*_bbox.npy")
    return p


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    """The three configs described by parsed command-line arguments."""
    mc = ModelConfig(head=args.head, backbone=args.backbone,
                     vanilla=VanillaConfig(base=args.base, cout=args.cout),
                     rvt=RVTConfig(partition_split_32=args.rvt_partition_split),
                     anchor=AnchorHeadConfig(anchors=args.anchors, anchor_size=args.anchor_size),
                     set=DetrHeadConfig(num_queries=args.num_queries, dec_layers=args.dec_layers,
                                        hidden_dim=args.hidden_dim, nheads=args.nheads,
                                        dim_feedforward=4 * args.hidden_dim, cls_loss=args.set_cls_loss,
                                        eos_coef=args.set_eos_coef, lr_mult=args.head_lr_mult,
                                        grad_clip=args.set_grad_clip, top_k=max(args.max_detections, 100),
                                        **_set_loss_weights(args.set_loss_weights)),
                     yolox=YoloxHeadConfig(depth=args.yolox_depth, depthwise=args.yolox_depthwise,
                                           act=args.yolox_act, use_l1=args.yolox_use_l1,
                                           class_score_only=args.yolox_class_score_only),
                     rtdetr=RTDetrHeadConfig(hidden_dim=args.rtdetr_hidden_dim, nheads=args.rtdetr_nheads,
                                             enc_ffn=args.rtdetr_ffn, dec_ffn=args.rtdetr_ffn,
                                             enc_layers=args.rtdetr_enc_layers,
                                             depth_mult=args.rtdetr_depth_mult,
                                             num_queries=args.rtdetr_queries,
                                             dec_layers=args.rtdetr_dec_layers, num_points=args.rtdetr_points,
                                             num_denoising=args.rtdetr_denoising, nms=args.rtdetr_nms,
                                             grad_clip=args.rtdetr_grad_clip,
                                             top_k=max(args.max_detections, RTDetrHeadConfig.top_k)),
                     score_thresh=args.score_thresh, nms_thresh=args.nms_thresh,
                     max_detections=args.max_detections)
    dc = DataConfig(num_tbins=args.num_tbins, batch_size=args.batch_size, delta_t=args.delta_t,
                    representation=args.representation, height=args.height, width=args.width,
                    classes=tuple(args.classes) if args.classes else None, sampling=args.sampling,
                    hflip_prob=args.hflip_prob, zoom_in_prob=args.zoom_in_prob,
                    zoom_out_prob=args.zoom_out_prob,
                    max_zoom=args.max_zoom, interpolate=not args.no_interpolate,
                    min_box_diag_network=args.min_box_diag_network,
                    max_consecutive_batches=args.max_consecutive_batches, num_workers=args.num_workers,
                    seed=args.seed)
    tc = TrainConfig(lr=args.lr, weight_decay=args.weight_decay, lr_schedule=args.lr_schedule,
                     warmup_fraction=args.warmup_fraction, warmup_steps=args.warmup_steps,
                     min_lr_ratio=args.min_lr_ratio, gradient_clip_val=args.gradient_clip,
                     max_epochs=args.max_epochs, max_steps=args.max_steps,
                     limit_train_batches=args.limit_train_batches,
                     limit_val_batches=args.limit_val_batches,
                     limit_test_batches=args.limit_test_batches, precision=args.precision,
                     accelerator=args.accelerator, devices=args.devices, strategy=args.strategy,
                     seed=args.seed,
                     skip_nonfinite=args.skip_nonfinite, eval_preset=args.eval_preset,
                     eval_skip_ts=args.eval_skip_ts,
                     eval_score_thresh=args.eval_score_thresh, time_tol=args.time_tol,
                     log_every_n_steps=args.log_every_n_steps,
                     log_images_every_n_steps=args.log_images_every_n_steps,
                     check_val_every_n_epoch=args.check_val_every_n_epoch)
    return mc, dc, tc


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        mc, dc, tc = configs_from_args(args)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    from evdet.evaluation.report import format_metrics
    from evdet.training.lightning_module import NonFiniteLossError
    from evdet.training.run import train

    try:
        result = train(args.dataset_dir, args.root_dir, model_config=mc, data_config=dc, train_config=tc,
                       resume=args.resume, checkpoint=args.checkpoint, finetune=args.finetune,
                       just_val=args.just_val, just_test=args.just_test, progress=not args.no_progress,
                       overwrite=args.overwrite)
    except (FileNotFoundError, ValueError, NonFiniteLossError) as exc:
        print(f"evdet-train: error: {exc}", file=sys.stderr)
        return 2
    if not result.is_global_zero:
        return 0
    for split, metrics in result.metrics.items():
        if metrics:
            print(format_metrics(metrics, title=f"{split} metrics ({args.dataset_dir})"))
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint}")
    if result.last_checkpoint is not None:
        print(f"last checkpoint: {result.last_checkpoint}")
    if result.detections_dir is not None:
        print(f"detections: {result.detections_dir}")
    root = Path(args.root_dir)
    for what, path in (("metrics", root / "metrics_val.json"), ("curves", root / "training_curves.png"),
                       ("logs", root / "logs")):
        if path.exists():
            print(f"{what}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
