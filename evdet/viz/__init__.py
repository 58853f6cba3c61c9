"""Visualisation: event tensors in colour, boxes and labels, batch grids, video writing, demo videos.

Light imports only (numpy, OpenCV): the demo video, which needs a trained detector and therefore the
training layer, lives in :mod:`evdet.viz.demo` (``render_demo_video``) and is imported from there.
"""

from evdet.viz.draw import (
    CLASS_COLORS_BGR,
    GT_BGR,
    class_color,
    draw_boxes,
    draw_detections,
    draw_ground_truth,
    draw_legend,
    draw_text,
    draw_timestamp,
    upscale,
)
from evdet.viz.events import events_to_image, polarity_maps
from evdet.viz.grid import add_legend_strip, render_panel, show_batch, tile_images
from evdet.viz.video import VideoWriter, write_video

__all__ = [
    "CLASS_COLORS_BGR", "GT_BGR", "VideoWriter", "add_legend_strip", "class_color", "draw_boxes",
    "draw_detections", "draw_ground_truth", "draw_legend", "draw_text", "draw_timestamp", "events_to_image",
    "polarity_maps", "render_panel", "show_batch", "tile_images", "upscale", "write_video",
]
