"""``evdet-info DATASET_DIR``: what a dataset holds, checked before training: recordings per split,
durations, event rates, boxes per class, label frequency, box sizes and aspect ratios (with a PNG of
their histograms), and the --anchor-size whose anchors cover the boxes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evdet.io.interrupts import interruptible

TOOL = "evdet-info"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-info", description=__doc__)
    p.add_argument("dataset_dir", type=Path, help="label_map_dictionary.json + train/ val/ test/")
    p.add_argument("--height", type=int, help="network input height (default: the sensor's)")
    p.add_argument("--width", type=int, help="network input width (default: the sensor's)")
    p.add_argument("--anchors", default="PSEE_ANCHORS", help="anchor list of the anchor head")
    p.add_argument("--anchor-size", type=float, default=None,
                   help="anchor size to rate besides the suggestion (default: the anchor head's default)")
    p.add_argument("--backbone", default="Vanilla", help="backbone (its number of levels sets the anchors)")
    p.add_argument("--plot", type=Path, default=None,
                   help="PNG of the histograms (default: ./<dataset name>_info.png)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the PNG of an earlier evdet-info (never another file)")
    p.add_argument("--no-raw-count", action="store_true", help="do not decode .raw files to count events")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _s(us: float) -> str:
    return f"{us / 1e6:.1f} s"


def _rate(v: float | None) -> str:
    return "n/a" if v is None else (f"{v / 1e6:.2f} Mev/s" if v >= 1e6 else f"{v / 1e3:.1f} kev/s")


def report(stats, box_fit, plot_path: Path | None) -> list[str]:
    """The printed report (lines)."""
    import numpy as np

    from evdet.data.stats import percentiles

    lines = [f"dataset {stats.dataset_dir}: classes {stats.classes}"]
    sizes = sorted({r.sensor_size for r in stats.recordings})
    lines.append("sensor " + ", ".join(f"{h}x{w} (HxW)" for h, w in sizes)
                 + (f"; HDF5 tensors: {stats.representation}, delta_t {stats.delta_t // 1000} ms"
                    if stats.delta_t else ""))
    lines.append("")
    lines.append(f"{'split':<6} {'recordings':>10} {'duration: total':>16} {'min':>7} {'max':>7} "
                 f"{'events/s':>13} {'boxes':>7} {'labelled at':>12}")
    for split in stats.splits:
        recs = stats.of(split)
        durations = [r.duration for r in recs]
        counted = [r for r in recs if r.num_events is not None]
        rate = (sum(r.num_events for r in counted) / (sum(r.duration for r in counted) / 1e6)
                if counted else None)
        period = stats.label_period(split)
        lines.append(f"{split:<6} {len(recs):>10} {_s(sum(durations)):>16} {_s(min(durations)):>7} "
                     f"{_s(max(durations)):>7} {_rate(rate):>13} {stats.boxes(split).size:>7} "
                     f"{'n/a' if period is None else f'{1e6 / period:.1f} Hz':>12}")
        unlabelled = [r.path.name for r in recs if not r.has_labels]
        if unlabelled:
            lines.append(f"       {len(unlabelled)} without a label file: {', '.join(unlabelled[:5])}"
                         + (" ..." if len(unlabelled) > 5 else ""))
    if any(r.kind == "h5" for r in stats.recordings):
        lines.append("events/s n/a: HDF5 tensor files store per-bin tensors, not events "
                     "(run evdet-info on the source recordings for their rates)")
    lines.append("")
    lines.append("boxes per class: " + "; ".join(
        f"{s}: " + ", ".join(f"{k} {v}" for k, v in stats.boxes_per_class(s).items()) for s in stats.splits))
    from evdet.data.stats import class_box_sizes

    lines.append("box sizes (sensor pixels, 5th / 50th / 95th percentile):")
    for name, wh in class_box_sizes(stats).items():
        w, h = (percentiles(wh[:, i]) for i in range(2))
        aspect = percentiles(wh[:, 0] / np.maximum(wh[:, 1], 1e-6))
        lines.append(f"  {name:<14} w {w[0]:.0f} / {w[1]:.0f} / {w[2]:.0f}   h {h[0]:.0f} / {h[1]:.0f} / "
                     f"{h[2]:.0f}   w/h {aspect[0]:.2f} / {aspect[1]:.2f} / {aspect[2]:.2f}")
    if box_fit is not None:
        lines.append("")
        lines.extend(box_fit)
    if plot_path is not None:
        lines.append("")
        lines.append(f"histograms of box sizes and aspect ratios written to {plot_path}")
    return lines


@interruptible("evdet-info")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import numpy as np

        from evdet.data.stats import class_boxes, dataset_stats
        from evdet.inference.model_config import AnchorHeadConfig
        from evdet.io.output_paths import record_output
        from evdet.models.anchor_fit import fit_anchor_size
        from evdet.models.backbones import build_backbone
        from evdet.viz.dataset_plots import dataset_figure
        from evdet.viz.plots import check_png_output, save_png

        plot = args.plot or Path(f"{args.dataset_dir.resolve().name}_info.png")
        check_png_output(plot, "--plot", tool=TOOL, inputs=[args.dataset_dir], overwrite=args.overwrite)
        stats = dataset_stats(args.dataset_dir, count_raw_events=not args.no_raw_count,
                              progress=not args.no_progress)
        sensor = stats.recordings[0].sensor_size
        net = (args.height or sensor[0], args.width or sensor[1])
        sy, sx = net[0] / sensor[0], net[1] / sensor[1]
        strides = list(build_backbone(args.backbone, 2, base=4, cout=4).strides)
        num_levels = len(strides)
        split = "train" if "train" in stats.splits else None
        boxes = class_boxes(stats, split)
        fit_lines, marks = None, {}
        if boxes:
            xywh = np.concatenate(list(boxes.values())) * np.array([sx, sy, sx, sy])  # network pixels
            best, table = fit_anchor_size(xywh, args.anchors, strides)
            current = args.anchor_size or AnchorHeadConfig().anchor_size
            if current not in table:
                table.update(fit_anchor_size(xywh, args.anchors, strides, candidates=[current])[1])
            fit_lines = [f"anchors ({args.anchors}; {args.backbone}: {num_levels} levels, strides {strides}, "
                         f"base size anchor_size x 2^level; network {net[0]}x{net[1]}; {split or 'all'} "
                         "boxes vs the anchors of their grid cell):",
                         f"  {'--anchor-size':>13} {'boxes with IoU >= 0.5':>22} {'mean best IoU':>14}"]
            for size in sorted(table):
                tag = "  <- suggested" if size == best else ("  <- given/default" if size == current else "")
                covered, mean_iou = table[size]
                fit_lines.append(f"  {size:>13g} {covered:>21.1%} {mean_iou:>14.3f}{tag}")
            fit_lines.append(f"suggested: --anchor-size {best:g} (level bases "
                             + ", ".join(f"{best * 2 ** k:g}" for k in range(num_levels)) + " network px)")
            # the suggested anchors' level sizes, in the sensor pixels of the histogram
            marks = {f"anchor L{k}": best * 2 ** k / ((sx + sy) / 2) for k in range(num_levels)}
        save_png(dataset_figure(stats, marks, split), plot)
        record_output(plot, TOOL)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"evdet-info: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report(stats, fit_lines, plot)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
