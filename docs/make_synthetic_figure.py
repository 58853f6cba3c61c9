"""Write docs/images/synthetic_frames.png: event frames of synthetic recordings with their boxes.

Run: ``python docs/make_synthetic_figure.py [OUT_PNG]``. Top row: the ``tiny`` preset (128x96); bottom
row: ``gen1-like`` (304x240, shortened to 2 s). Each panel shows the events of the 50 ms before a label
instant (ON white, OFF blue on grey) and the ground-truth boxes at that instant (car red,
pedestrian green, two wheeler yellow), with the track id.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from evdet.simulation import PRESETS, simulate_recording

COLORS = {0: (60, 60, 255), 1: (60, 220, 60), 2: (0, 220, 255)}  # BGR


def event_panel(events: np.ndarray, boxes: np.ndarray, t: int, height: int, width: int, scale: int,
                window_us: int = 50_000) -> np.ndarray:
    """One BGR uint8 image [height*scale, width*scale, 3]: events in ``(t - window_us, t]`` and boxes at t."""
    img = np.full((height, width, 3), 110, np.uint8)
    ev = events[(events["t"] > t - window_us) & (events["t"] <= t)]
    on = ev["p"] == 1
    img[ev["y"][~on], ev["x"][~on]] = (200, 90, 20)
    img[ev["y"][on], ev["x"][on]] = (255, 255, 255)
    img = cv2.resize(img, (width * scale, height * scale), interpolation=cv2.INTER_NEAREST)
    for b in boxes[boxes["t"] == t]:
        p1 = (int(b["x"] * scale), int(b["y"] * scale))
        p2 = (int((b["x"] + b["w"]) * scale), int((b["y"] + b["h"]) * scale))
        color = COLORS.get(int(b["class_id"]), (255, 0, 255))
        cv2.rectangle(img, p1, p2, color, 2)
        cv2.putText(img, str(int(b["track_id"])), (p1[0] + 3, p1[1] + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    color, 1, cv2.LINE_AA)
    return img


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent / "images" / "synthetic_frames.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    tiny = PRESETS["tiny"].simulation
    ev, bx = simulate_recording(tiny, seed=3)
    rows.append(np.hstack([event_panel(ev, bx, t, 96, 128, 3) for t in (1_000_000, 2_000_000, 3_000_000)]))
    gen1 = PRESETS["gen1-like"].simulation.replace(duration_us=2_000_000)
    ev, bx = simulate_recording(gen1, seed=5)
    panels = [event_panel(ev, bx, t, 240, 304, 1) for t in (600_000, 1_200_000, 1_800_000)]
    gen1_row = np.hstack(panels)
    new_w = rows[0].shape[1]
    new_h = int(gen1_row.shape[0] * new_w / gen1_row.shape[1])
    gen1_row = cv2.resize(gen1_row, (new_w, new_h), interpolation=cv2.INTER_AREA)
    rows.append(gen1_row)
    cv2.imwrite(str(out), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
