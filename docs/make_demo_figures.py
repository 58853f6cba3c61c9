"""Write the figures of docs/apps.md and docs/getting_started.md from a finished quick-start run.

Run: ``python docs/make_demo_figures.py QUICKSTART_DIR [OUT_DIR]`` (``OUT_DIR`` default ``docs/images``)
after ``evdet-quickstart QUICKSTART_DIR``. Writes:

- ``demo_quickstart.png``: frames 20 and 60 of the quick-start model's demo over a validation recording;
- ``demo_side_by_side.png``: frame 40 with ``layout="side-by-side"``;
- ``demo_gen1_like.png``: frames 30 and 70 of a 4 s ``gen1-like`` recording drawn from a detection file
  with track ids (its ground truth moved by a few pixels, plus a competing class on 40 % of the
  objects at a lower score, which the class-agnostic display NMS removes);
- ``training_curves.png`` (copied from the run), ``eval_pr_ap.png`` (``evdet-eval --pr-plot`` of the
  model's detections on the validation split; ``--time-tol 24999`` as evdet-eval advises for labels every
  50 ms, so that each label instant is scored alone, as in validation), ``dataset_info.png``
  (``evdet-info`` of the dataset at the quick start's network size, the sensor's 96x128).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np


def frames(render, indices) -> np.ndarray:
    """Render PNG frames into a temporary folder and put the chosen ones side by side."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = render(Path(tmp) / "frames")
        return np.concatenate([cv2.imread(str(folder / f"frame_{i:06d}.png")) for i in indices], axis=1)


def main(quickstart: Path, out: Path) -> None:
    from evdet.apps import eval as eval_app
    from evdet.apps import info as info_app

    from evdet.inference import detect_recordings, load_detector
    from evdet.io.boxes import load_boxes, save_boxes
    from evdet.simulation import make_synthetic_dataset
    from evdet.viz.demo import DemoOptions, render_demo_video, render_detections_video

    out.mkdir(parents=True, exist_ok=True)
    png = [cv2.IMWRITE_PNG_COMPRESSION, 9]
    ckpt = quickstart / "run" / "checkpoints" / "last.ckpt"
    val = sorted((quickstart / "hdf5" / "val").glob("*.h5"))
    events = [quickstart / "dataset" / "val"]
    model = load_detector(ckpt)
    cv2.imwrite(str(out / "demo_quickstart.png"), frames(lambda p: render_demo_video(
        model, val[:1], p, events=events), (20, 60)), png)
    cv2.imwrite(str(out / "demo_side_by_side.png"), frames(lambda p: render_demo_video(
        model, val[:1], p, events=events, options=DemoOptions(layout="side-by-side")), (40,)), png)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_synthetic_dataset(tmp / "g1", preset="gen1-like", num_train=0, num_val=1, num_test=0,
                               duration_s=4.0)
        rec = next((tmp / "g1" / "val").glob("*_td.dat"))
        gt = load_boxes(rec.with_name(rec.name.replace("_td.dat", "_bbox.npy")))
        rng = np.random.default_rng(0)
        dets = gt.copy()
        for f in "xywh":
            dets[f] += rng.normal(0, 1.5, dets.size).astype(np.float32)
        dets["class_confidence"] = rng.uniform(0.5, 0.95, dets.size)
        rival = dets[rng.random(dets.size) < 0.4].copy()
        rival["class_id"] = (rival["class_id"] + 1) % 3
        rival["class_confidence"] *= 0.6
        rival["track_id"] += 1000
        dets = np.concatenate([dets, rival])
        save_boxes(tmp / "dets_bbox.npy", dets[np.argsort(dets["t"], kind="stable")])
        label_map = {0: "car", 1: "pedestrian", 2: "two wheeler"}
        cv2.imwrite(str(out / "demo_gen1_like.png"), frames(lambda p: render_detections_video(
            [tmp / "dets_bbox.npy"], [rec], p, label_map=label_map), (30, 70)), png)

        detect_recordings(*model, sorted((quickstart / "hdf5" / "val").glob("*.h5")), tmp / "dt")
        # the apps write new files only (evdet.io.output_paths): into tmp, then copied over the committed ones
        assert eval_app.main([str(quickstart / "hdf5" / "val"), str(tmp / "dt"), "--preset", "auto",
                              "--height", "96", "--width", "128", "--time-tol", "24999", "--pr-plot",
                              str(tmp / "eval_pr_ap.png")]) == 0
        assert info_app.main([str(quickstart / "dataset"), "--plot", str(tmp / "dataset_info.png"),
                              "--no-progress"]) == 0
        for name in ("eval_pr_ap.png", "dataset_info.png"):
            shutil.copyfile(tmp / name, out / name)
    shutil.copyfile(quickstart / "run" / "training_curves.png", out / "training_curves.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent / "images")
