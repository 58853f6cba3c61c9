"""``evdet-train DATASET_DIR [--root-dir DIR] [options]``: train, resume, fine-tune or evaluate a detector.

Defaults come from the data: channels, ``delta_t`` and representation from the HDF5 attributes, classes
from ``label_map_dictionary.json``. See ``docs/training.md`` for recipes and every option.
"""

from __future__ import annotations

import argparse
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# configs only (cheap: no torch, Lightning or numba, so that --help is instant); the rest is imported
# inside main()
from evdet.data.config import SAMPLING_MODES, DataConfig
from evdet.inference.config_dict import field_docs
from evdet.inference.model_config import HEADS, ModelConfig
from evdet.io.interrupts import interruptible
from evdet.training.config import LR_SCHEDULES, TrainConfig
from evdet.training.run_config import RUN_CONFIG_NAME, SECTIONS, RunConfig, load_run_config, run_config_text


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


@dataclass(frozen=True)
class Flag:
    """One command-line flag: the config field(s) it sets (``section.field[.field]`` paths; several paths
    take one value each with ``nargs``, or all the same value), how it parses, and extra help. Type,
    default and description come from the dataclass field of the first path."""

    names: tuple[str, ...]
    paths: tuple[str, ...]
    action: str = "value"  # "value", "true" (the flag sets True), "false" (the flag sets False)
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    nargs: int | str | None = None
    metavar: str | tuple[str, ...] | None = None
    help: str | None = None  # replaces the field's description

    @property
    def dest(self) -> str:
        """The argparse destination: the long name in snake case."""
        return self.names[0][2:].replace("-", "_")

    @property
    def per_path(self) -> bool:
        """Several paths taking one value each (``nargs`` values), not all the same value."""
        return len(self.paths) > 1 and self.nargs == len(self.paths)


def _f(names: str, *paths: str, **kw: Any) -> Flag:
    return Flag(tuple(names.split()), paths, **kw)


FLAGS: dict[str, tuple[Flag, ...]] = {
    "model": (
        _f("--head", "model.head", choices=tuple(sorted(HEADS)), help="detection head (docs/models.md)"),
        _f("--backbone", "model.backbone",
           help="Vanilla, Vanilla_VGG, Vanilla_VGGRU (ConvRNN) or rvt-t, rvt-s, rvt-b, rvt (RVT's "
                "MaxViT-RNN; see docs/models.md)"),
        _f("--rvt-partition-split", "model.rvt.partition_split_32", choices=(1, 2, 4)),
        _f("--base", "model.vanilla.base"),
        _f("--cout", "model.vanilla.cout"),
        _f("--score-thresh", "model.score_thresh"),
        _f("--nms-thresh", "model.nms_thresh"),
        _f("--max-detections", "model.max_detections"),
    ),
    "anchor head (--head anchor)": (
        _f("--anchors", "model.anchor.anchors"),
        _f("--anchor-size", "model.anchor.anchor_size"),
        _f("--anchor-fg-iou", "model.anchor.fg_iou_threshold"),
        _f("--anchor-bg-iou", "model.anchor.bg_iou_threshold"),
        _f("--anchor-focal-gamma", "model.anchor.focal_gamma"),
        _f("--anchor-focal-alpha", "model.anchor.focal_alpha"),
        _f("--anchor-top-k", "model.anchor.top_k"),
    ),
    "DETR set head (--head set)": (
        _f("--num-queries", "model.set.num_queries"),
        _f("--dec-layers", "model.set.dec_layers"),
        _f("--hidden-dim", "model.set.hidden_dim"),
        _f("--nheads", "model.set.nheads"),
        _f("--set-ffn", "model.set.dim_feedforward"),
        _f("--set-cls-loss", "model.set.cls_loss", choices=("ce", "focal")),
        _f("--set-loss-weights", "model.set.loss_ce", "model.set.loss_bbox", "model.set.loss_giou", nargs=3,
           metavar=("CE", "L1", "GIOU"), help="loss weights (class, L1, GIoU), also of the auxiliary layers"),
        _f("--set-cost-weights", "model.set.cost_class", "model.set.cost_bbox", "model.set.cost_giou",
           nargs=3, metavar=("CLASS", "L1", "GIOU"),
           help="Hungarian matching cost weights (class, L1, GIoU)"),
        _f("--set-eos-coef", "model.set.eos_coef"),
        _f("--set-top-k", "model.set.top_k"),
        _f("--head-lr-mult", "model.set.lr_mult"),
        _f("--set-grad-clip", "model.set.grad_clip"),
    ),
    "RT-DETR head (--head rtdetr)": (
        _f("--rtdetr-hidden-dim", "model.rtdetr.hidden_dim"),
        _f("--rtdetr-nheads", "model.rtdetr.nheads"),
        _f("--rtdetr-ffn", "model.rtdetr.enc_ffn", "model.rtdetr.dec_ffn",
           help="feed-forward width of the encoder and decoder layers"),
        _f("--rtdetr-enc-layers", "model.rtdetr.enc_layers"),
        _f("--rtdetr-depth-mult", "model.rtdetr.depth_mult"),
        _f("--rtdetr-queries", "model.rtdetr.num_queries"),
        _f("--rtdetr-dec-layers", "model.rtdetr.dec_layers"),
        _f("--rtdetr-points", "model.rtdetr.num_points"),
        _f("--rtdetr-denoising", "model.rtdetr.num_denoising"),
        _f("--rtdetr-nms", "model.rtdetr.nms", action="true"),
        _f("--rtdetr-top-k", "model.rtdetr.top_k"),
        _f("--rtdetr-grad-clip", "model.rtdetr.grad_clip"),
    ),
    "YOLOX head (--head yolox)": (
        _f("--yolox-depth", "model.yolox.depth"),
        _f("--yolox-act", "model.yolox.act", choices=("silu", "relu", "lrelu")),
        _f("--yolox-depthwise", "model.yolox.depthwise", action="true"),
        _f("--yolox-use-l1", "model.yolox.use_l1", action="true"),
        _f("--yolox-class-score-only", "model.yolox.class_score_only", action="true"),
    ),
    "data": (
        _f("--num-tbins -T", "data.num_tbins"),
        _f("--batch-size -B", "data.batch_size"),
        _f("--height", "data.height"),
        _f("--width", "data.width"),
        _f("--classes", "data.classes", nargs="+"),
        _f("--sampling", "data.sampling", choices=SAMPLING_MODES),
        _f("--hflip-prob", "data.hflip_prob"),
        _f("--zoom-in-prob", "data.zoom_in_prob"),
        _f("--zoom-out-prob", "data.zoom_out_prob"),
        _f("--max-zoom", "data.max_zoom"),
        _f("--no-interpolate", "data.interpolate", action="false"),
        _f("--min-box-diag-network", "data.min_box_diag_network"),
        _f("--max-consecutive-batches", "data.max_consecutive_batches"),
        _f("--num-workers", "data.num_workers"),
        _f("--delta-t", "data.delta_t"),
        _f("--representation", "data.representation"),
    ),
    "optimisation": (
        _f("--lr", "train.lr"),
        _f("--weight-decay", "train.weight_decay"),
        _f("--lr-schedule", "train.lr_schedule", choices=LR_SCHEDULES),
        _f("--warmup-fraction", "train.warmup_fraction"),
        _f("--warmup-steps", "train.warmup_steps"),
        _f("--min-lr-ratio", "train.min_lr_ratio"),
        _f("--gradient-clip", "train.gradient_clip_val"),
        _f("--accumulate-grad-batches", "train.accumulate_grad_batches"),
        _f("--ema-decay", "train.ema_decay"),
        _f("--ema-warmup-steps", "train.ema_warmup_steps"),
        _f("--compile", "train.compile", metavar="BACKEND"),
        _f("--max-epochs", "train.max_epochs"),
        _f("--max-steps", "train.max_steps"),
        _f("--limit-train-batches", "train.limit_train_batches", type=_limit),
        _f("--limit-val-batches", "train.limit_val_batches", type=_limit),
        _f("--limit-test-batches", "train.limit_test_batches", type=_limit),
        _f("--precision", "train.precision"),
        _f("--accelerator", "train.accelerator"),
        _f("--devices", "train.devices", type=_devices),
        _f("--num-nodes", "train.num_nodes"),
        _f("--strategy", "train.strategy"),
        _f("--seed", "train.seed", "data.seed"),
        _f("--skip-nonfinite", "train.skip_nonfinite", action="true"),
    ),
    "evaluation and logging": (
        _f("--eval-preset", "train.eval_preset"),
        _f("--eval-skip-ts", "train.eval_skip_ts"),
        _f("--eval-score-thresh", "train.eval_score_thresh"),
        _f("--time-tol", "train.time_tol"),
        _f("--check-val-every-n-epoch", "train.check_val_every_n_epoch"),
        _f("--checkpoint-every-n-steps", "train.checkpoint_every_n_steps"),
        _f("--log-every-n-steps", "train.log_every_n_steps"),
        _f("--log-images-every-n-steps", "train.log_images_every_n_steps"),
    ),
}
"""Every configuration flag of ``evdet-train``, by help group. Each sets config fields; the parser, the
help texts (the fields' docstrings), the defaults and :func:`configs_from_args` are generated from this
table and the dataclasses. Options without a flag are set in a ``--config`` file."""

def _field(path: str) -> tuple[type, str]:
    """The dataclass and field name at ``section.field[.field]``."""
    parts = path.split(".")
    cls = SECTIONS[parts[0]]
    for name in parts[1:-1]:
        cls = typing.get_type_hints(cls)[name]
    return cls, parts[-1]


def _default(path: str) -> Any:
    """The default value of the field at ``section.field[.field]``."""
    value: Any = RunConfig()
    for name in path.split("."):
        value = getattr(value, name)
    return value


def _parser_type(path: str) -> tuple[Callable[[str], Any], bool]:
    """``(parse, is_sequence)`` for the field at ``path``: int, float or str, from its annotation; a value
    ``none`` gives None where the field allows it."""
    cls, name = _field(path)
    hint = typing.get_type_hints(cls)[name]
    options = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    nullable = len(options) < len(typing.get_args(hint) or (hint,))
    base = options[0]
    sequence = typing.get_origin(base) is tuple
    if sequence:
        base = typing.get_args(base)[0]
    parse = base if base in (int, float, str) else str

    def convert(text: str) -> Any:
        if nullable and text.lower() == "none":
            return None
        return parse(text)

    convert.__name__ = parse.__name__  # argparse names the type in its errors
    return convert, sequence


def _plain_text(doc: str) -> str:
    """A field description as terminal text: no reST markup (````x````, ``:func:`x```), no final period."""
    doc = re.sub(r":\w+:`~?([^`]*)`", r"\1", re.sub(r"``([^`]*)``", r"\1", doc))
    return doc.rstrip(".")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-train", description=__doc__,
                                usage="%(prog)s [DATASET_DIR] [options]",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset_dir", nargs="?", default=None,
                   help="label_map_dictionary.json + train/ val/ [test/] (HDF5 or raw); default: the "
                        "--config file's dataset_dir")
    p.add_argument("--root-dir", default="runs/evdet", help="run folder: checkpoints, logs, metrics, "
                   f"{RUN_CONFIG_NAME} (default runs/evdet)")
    p.add_argument("--config", default=None, metavar="YAML",
                   help=f"start from a run configuration (a run folder's {RUN_CONFIG_NAME}, or any subset "
                        "of its options); flags given with it override it")
    p.add_argument("--print-config", action="store_true",
                   help="print the run configuration this command resolves to (YAML) and exit")
    for group_name, flags in FLAGS.items():
        g = p.add_argument_group(group_name)
        for flag in flags:
            cls, name = _field(flag.paths[0])
            text = _plain_text(flag.help or field_docs(cls).get(name, ""))
            default = [_default(path) for path in flag.paths] if flag.per_path else _default(flag.paths[0])
            if flag.action in ("true", "false"):
                g.add_argument(*flag.names, dest=flag.dest, action="store_const",
                               const=flag.action == "true", default=argparse.SUPPRESS, help=text)
                continue
            parse, sequence = _parser_type(flag.paths[0])
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
            g.add_argument(*flag.names, dest=flag.dest, type=flag.type or parse,
                           choices=flag.choices, nargs=flag.nargs or ("+" if sequence else None),
                           metavar=flag.metavar, default=argparse.SUPPRESS,
                           help=f"{text} (default: {shown})".replace("%", "%%"))

    g = p.add_argument_group("what to run")
    g.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --root-dir")
    g.add_argument("--overwrite", action="store_true",
                   help="start a new run in a --root-dir holding an earlier run's checkpoints (deleted)")
    g.add_argument("--finetune", action="store_true", help="start from --checkpoint's weights")
    g.add_argument("--checkpoint", default=None, help="checkpoint for --finetune / --just-val / --just-test")
    g.add_argument("--just-val", action="store_true", help="only evaluate on val/")
    g.add_argument("--just-test", action="store_true",
                   help="only evaluate on test/ and write detections as ROOT/detections/test/*_bbox.npy")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _set(values: dict[str, Any], path: str, value: Any) -> None:
    *parents, name = path.split(".")
    for key in parents:
        values = values[key]
    values[name] = list(value) if isinstance(value, tuple) else value


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run configuration of parsed arguments: the ``--config`` file (or the defaults), then every flag
    given on the command line.

    Raises:
        FileNotFoundError / ValueError: an unreadable ``--config`` file, or a value a config rejects.
    """
    base = load_run_config(args.config) if args.config else RunConfig()
    values = base.to_dict()
    given = vars(args)
    for flags in FLAGS.values():
        for flag in flags:
            if flag.dest not in given:
                continue
            value = given[flag.dest]
            if flag.per_path:
                for path, v in zip(flag.paths, value, strict=True):
                    _set(values, path, v)
            else:
                for path in flag.paths:
                    _set(values, path, value)
    if args.dataset_dir is not None:
        values["dataset_dir"] = args.dataset_dir
    return RunConfig.from_dict(values, "command line" if not args.config else f"{args.config} + flags")


def configs_from_args(args: argparse.Namespace) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    """The three configs described by parsed command-line arguments (see :func:`run_config_from_args`)."""
    config = run_config_from_args(args)
    return config.model, config.data, config.train


@interruptible("evdet-train")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = run_config_from_args(args)
    except (TypeError, ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    if args.print_config:
        print(run_config_text(config), end="")
        return 0
    if config.dataset_dir is None:
        parser.error("give DATASET_DIR (or a --config file holding dataset_dir)")
    mc, dc, tc = config.model, config.data, config.train
    from evdet.evaluation.report import format_metrics
    from evdet.training.lightning_module import NonFiniteLossError
    from evdet.training.run import train

    try:
        result = train(config.dataset_dir, args.root_dir, model_config=mc, data_config=dc, train_config=tc,
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
            print(format_metrics(metrics, title=f"{split} metrics ({config.dataset_dir})"))
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint}")
    if result.last_checkpoint is not None:
        print(f"last checkpoint: {result.last_checkpoint}")
    if result.detections_dir is not None:
        print(f"detections: {result.detections_dir}")
    root = Path(args.root_dir)
    for what, path in (("config", root / RUN_CONFIG_NAME), ("metrics", root / "metrics_val.json"),
                       ("curves", root / "training_curves.png"),
                       ("logs", root / "logs")):
        if path.exists():
            print(f"{what}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
