"""``evdet-eval GT_DIR DT_DIR``: score detection files against ground truth with the published protocol (or
RVT's, ``--preset rvt-gen1 | rvt-gen4``). GT_DIR holds ``<name>_bbox.npy`` label files or RVT sequence
folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# cheap modules only (no numpy/numba at import, so that --help is instant); the rest is imported where used
from evdet.evaluation.presets import PRESETS, eval_preset_for, get_preset
from evdet.io.interrupts import interruptible
from evdet.io.label_map import EMPTY_CLASS, LABEL_MAP_FILENAME, load_label_map

if TYPE_CHECKING:
    import numpy as np

TOOL = "evdet-eval"


def _index(folder: Path, patterns: tuple[str, ...], what: str) -> dict[str, Path]:
    """Recording name -> file, searching ``folder`` recursively; duplicate names are an error."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    out: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.npy")):
        name = path.name
        suffix = next((s for s in patterns if name.endswith(s)), None)
        if suffix is None:
            continue
        stem = name[: -len(suffix)]
        if stem in out:
            raise ValueError(f"{what}: recording {stem!r} found twice: {out[stem]} and {path}")
        out[stem] = path
    if not out:
        raise FileNotFoundError(f"{what}: no {' or '.join('*' + p for p in patterns)} files in {folder}")
    return out


def ground_truth_index(gt_dir: Path) -> dict[str, Path]:
    """Recording name -> ground truth: the RVT sequence folders under ``gt_dir`` when there are any
    (``evdet.data.rvt``), else its ``<name>_bbox.npy`` files (recursive).

    Raises:
        FileNotFoundError: the folder is missing or holds neither. ValueError: a name occurs twice.
    """
    if gt_dir.is_dir():
        from evdet.data.rvt import find_rvt_sequences

        sequences = find_rvt_sequences(gt_dir)
        if sequences:
            return sequences
    return _index(gt_dir, ("_bbox.npy",), "ground truth")


def load_ground_truth(path: Path) -> np.ndarray:
    """``BBOX_DTYPE`` ground truth of a ``_bbox.npy`` file, or of an RVT sequence folder as RVT's loader
    delivers it (clamped to the frame; ``evdet.data.rvt.rvt_ground_truth``), sensor pixels."""
    if path.is_dir():
        from evdet.data.rvt import rvt_ground_truth

        return rvt_ground_truth(path)
    from evdet.io.boxes import load_boxes

    return load_boxes(path)


def pair_files(gt_dir: Path, dt_dir: Path) -> list[tuple[str, Path, Path]]:
    """Pair ground truth (``<name>_bbox.npy`` or RVT sequence folders ``<name>/``) with ``<name>_bbox.npy``
    (or ``<name>.npy``) detections by name.

    Raises:
        FileNotFoundError: a folder is missing or holds no label files.
        ValueError: a recording is missing on one side (named), or a name occurs twice on one side.
    """
    gts = ground_truth_index(gt_dir)
    dts = _index(dt_dir, ("_bbox.npy", ".npy"), "detections")
    missing_dt = sorted(set(gts) - set(dts))
    missing_gt = sorted(set(dts) - set(gts))
    if missing_dt or missing_gt:
        parts = []
        if missing_dt:
            parts.append(f"no detections in {dt_dir} for recording(s) {missing_dt}")
        if missing_gt:
            parts.append(f"no ground truth in {gt_dir} for recording(s) {missing_gt}")
        raise ValueError("; ".join(parts))
    return [(name, gts[name], dts[name]) for name in sorted(gts)]


def _find_classes(gt_dir: Path, first_gt: Path) -> dict[int, str]:
    for folder in (gt_dir, gt_dir.parent):
        if (folder / LABEL_MAP_FILENAME).exists():
            label_map = load_label_map(folder / LABEL_MAP_FILENAME)
            return {k: v for k, v in label_map.items() if v != EMPTY_CLASS}
    if first_gt.is_dir():  # RVT data: Gen1 / 1Mpx recognised from the stored size
        from evdet.data.rvt import probe_rvt_sequence, rvt_label_map

        label_map = rvt_label_map(probe_rvt_sequence(first_gt))
        if label_map is not None:
            return label_map
    raise FileNotFoundError(f"no {LABEL_MAP_FILENAME} in {gt_dir} or {gt_dir.parent}: pass --classes")


def _label_period(gts: list) -> int | None:
    """Median spacing (µs) of consecutive ground-truth timestamps over all recordings, None if undefined."""
    import numpy as np

    gaps = [np.diff(np.unique(gt["t"])) for gt in gts if gt.size > 1]
    gaps = np.concatenate(gaps) if gaps else np.zeros(0)
    return int(np.median(gaps)) if gaps.size else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evdet-eval", description=__doc__)
    p.add_argument("gt_dir", type=Path, help="folder of ground-truth <name>_bbox.npy files, or of RVT "
                   "sequence folders <name>/labels_v2 (recursive)")
    p.add_argument("dt_dir", type=Path, help="folder of detection <name>_bbox.npy files (recursive)")
    p.add_argument("--preset", default="gen1", choices=["auto", *sorted(PRESETS)],
                   help="protocol settings (default gen1); 'auto' (needs --height and --width, the sensor "
                   "size) picks gen1/gen4/gen4-half by size, else Gen1's filter scaled to the width; "
                   "rvt-gen1/rvt-gen4: RVT's validation (one image per label frame, 1Mpx at 640x360)")
    p.add_argument("--skip-ts", type=int, help="µs: boxes at t <= this are not scored (overrides preset)")
    p.add_argument("--min-box-diag", type=float, help="pixels (overrides preset)")
    p.add_argument("--min-box-side", type=float, help="pixels (overrides preset)")
    p.add_argument("--height", type=int, help="image height in pixels (overrides preset)")
    p.add_argument("--width", type=int, help="image width in pixels (overrides preset)")
    p.add_argument("--time-tol", type=int, help="µs: detection/ground-truth time tolerance (default 50000)")
    p.add_argument("--classes", nargs="+", help="class names indexed by class_id (default: the label map "
                   f"{LABEL_MAP_FILENAME} in GT_DIR or its parent)")
    p.add_argument("--engine", default="evdet", choices=["evdet", "faster-coco-eval"])
    p.add_argument("--json", type=Path, help="write the metrics and settings to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown from 20 recordings)")
    p.add_argument("--pr-plot", type=Path,
                   help="write per-class precision-recall curves (IoU 0.5) and per-class AP bars to this PNG")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the --json / --pr-plot files of an earlier evdet-eval (never other files)")
    return p


def _check_outputs(args: argparse.Namespace) -> None:
    """The --json and --pr-plot outputs may be written (``evdet.io.output_paths``), before any work."""
    from evdet.io.output_paths import OutputPathError, check_output
    from evdet.viz.plots import check_png_output

    inputs = [args.gt_dir, args.dt_dir]
    if args.json:
        check_output(args.json, inputs=inputs, overwrite=args.overwrite, tool=TOOL)
    if args.pr_plot:
        check_png_output(args.pr_plot, "--pr-plot", inputs=inputs, overwrite=args.overwrite, tool=TOOL)
    if args.json and args.pr_plot and args.json.resolve() == args.pr_plot.resolve():
        raise OutputPathError(f"--json and --pr-plot are the same file {args.json}")


@interruptible("evdet-eval")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from evdet.evaluation import evaluate_with_preset, format_metrics, prepare_boxes
    from evdet.io.boxes import load_boxes

    try:
        _check_outputs(args)
        if args.preset == "auto":
            if args.height is None or args.width is None:
                raise ValueError("--preset auto needs the sensor size: pass --height and --width")
            base = eval_preset_for("auto", (args.height, args.width))
        else:
            base = get_preset(args.preset)
        preset = base.with_overrides(
            skip_ts=args.skip_ts, min_box_diag=args.min_box_diag, min_box_side=args.min_box_side,
            height=args.height, width=args.width, time_tol=args.time_tol)
        pairs = pair_files(args.gt_dir, args.dt_dir)
        classes = list(args.classes) if args.classes else _find_classes(args.gt_dir, pairs[0][1])
        from tqdm.auto import tqdm

        gts, dts = [], []
        for _, gt_path, dt_path in tqdm(pairs, desc="reading label files", unit="rec", leave=False,
                                         disable=len(pairs) < 20 or args.no_progress):
            gts.append(load_ground_truth(gt_path))
            dts.append(load_boxes(dt_path))
        result = evaluate_with_preset(gts, dts, classes, preset, args.engine)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        print(f"evdet-eval: error: {exc}", file=sys.stderr)
        return 2
    period = _label_period([prepare_boxes(g, preset) for g in gts])
    if period is not None and period <= preset.time_tol:
        print(f"evdet-eval: warning: ground truth is labelled every {period} µs, within the time tolerance "
              f"({preset.time_tol} µs): the detections of neighbouring label instants are pooled into each "
              f"instant and count as false positives. Pass --time-tol below {period // 2 + 1} µs to score "
              "each instant alone (as evdet-train's validation does for such datasets).", file=sys.stderr)
    metrics = result.metrics()
    print(f"{len(pairs)} recordings, {result.num_images} scored timestamps, {result.num_gt} ground-truth "
          f"boxes, {result.num_dt} pooled detections; preset {preset}")
    print(format_metrics(metrics))
    from evdet.io.atomic import atomic_open
    from evdet.io.output_paths import record_output

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: getattr(preset, k) for k in preset.__dataclass_fields__}
        payload = {"metrics": metrics, "settings": settings, "classes": list(result.class_names),
                   "recordings": [name for name, _, _ in pairs], "num_images": result.num_images,
                   "num_gt": result.num_gt, "num_dt": result.num_dt}
        with atomic_open(args.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(payload, indent=1) + "\n")
        record_output(args.json, TOOL)
        print(f"metrics written to {args.json}")
    if args.pr_plot:
        from evdet.viz.eval_plots import save_evaluation_figure

        args.pr_plot.parent.mkdir(parents=True, exist_ok=True)
        save_evaluation_figure(result, args.pr_plot)
        record_output(args.pr_plot, TOOL)
        print(f"precision-recall curves and per-class AP bars written to {args.pr_plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
