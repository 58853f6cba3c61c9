"""The figure of ``evdet-info``: box sizes and aspect ratios per class, and boxes per class and split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from evdet.data.stats import DatasetStats, class_box_sizes
from evdet.viz.plots import bar_chart, histogram_chart

__all__ = ["dataset_figure"]


def dataset_figure(stats: DatasetStats, anchor_marks: Mapping[str, float] | None = None,
                   split: str | None = None, height: int = 360) -> np.ndarray:
    """Three charts side by side (BGR ``uint8``): histograms of box size ``sqrt(w·h)`` and of aspect ratio
    ``w / h`` per class (sensor pixels, log axes; ``anchor_marks`` ``name -> size in sensor pixels`` drawn
    as dashed lines on the size histogram), and box counts per class for each split. ``split`` restricts
    the histograms (None: all splits)."""
    sizes = class_box_sizes(stats, split)
    where = f" ({split})" if split else ""
    if sizes:
        side = np.sqrt(np.concatenate([wh[:, 0] * wh[:, 1] for wh in sizes.values()]))
        lo, hi = max(1.0, float(side.min()) / 1.5), float(side.max()) * 1.5
        size_img = histogram_chart({n: np.sqrt(wh[:, 0] * wh[:, 1]) for n, wh in sizes.items()},
                                   np.geomspace(lo, hi, 25), title=f"box size sqrt(w*h){where}",
                                   xlabel="sensor pixels", size=(height, 520), log_x=True,
                                   vlines=anchor_marks)
        aspect = np.concatenate([wh[:, 0] / np.maximum(wh[:, 1], 1e-6) for wh in sizes.values()])
        lo, hi = min(0.25, float(aspect.min()) / 1.2), max(4.0, float(aspect.max()) * 1.2)
        aspect_img = histogram_chart({n: wh[:, 0] / np.maximum(wh[:, 1], 1e-6) for n, wh in sizes.items()},
                                     np.geomspace(lo, hi, 25), title=f"aspect ratio w/h{where}",
                                     xlabel="w / h", size=(height, 460), log_x=True,
                                     vlines={"1:3": 1 / 3, "1:1": 1.0, "3:1": 3.0})
    else:
        size_img = aspect_img = np.full((height, 460, 3), 255, np.uint8)
    classes: Sequence[str] = stats.classes
    counts = {s: [stats.boxes_per_class(s).get(c, 0) for c in classes] for s in stats.splits}
    bars = bar_chart(list(classes), counts, title="boxes per class", ylabel="boxes",
                     size=(height, max(420, 120 * len(classes) + 140)))
    return np.concatenate([size_img, aspect_img, bars], axis=1)
