"""Event and label I/O: DAT, EVT 2.0/3.0 RAW, ``_bbox.npy`` labels, label maps, HDF5 tensors."""

from evdet.io.boxes import label_path_for, load_boxes, recording_stem, save_boxes
from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE, as_boxes, as_events
from evdet.io.label_map import (
    EMPTY_CLASS,
    GEN1_LABEL_MAP,
    GEN4_LABEL_MAP,
    LABEL_MAP_FILENAME,
    class_names,
    load_label_map,
    save_label_map,
)

__all__ = [
    "BBOX_DTYPE", "EVENT_DTYPE", "EMPTY_CLASS", "GEN1_LABEL_MAP", "GEN4_LABEL_MAP", "LABEL_MAP_FILENAME",
    "as_boxes", "as_events", "class_names", "label_path_for", "load_boxes", "load_label_map",
    "recording_stem", "save_boxes", "save_label_map",
]
