"""Event and label I/O: DAT, EVT 2.0/3.0 RAW, ``_bbox.npy`` labels, label maps, HDF5 tensors."""

from evdet.io.boxes import label_path_for, load_boxes, recording_stem, save_boxes
from evdet.io.dat import DatReader, DatWriter, write_dat
from evdet.io.dtypes import BBOX_DTYPE, EVENT_DTYPE, as_boxes, as_events, concatenate_events
from evdet.io.evt2 import decode_evt2
from evdet.io.evt3 import decode_evt3
from evdet.io.h5 import H5TensorReader, H5TensorWriter
from evdet.io.header import parse_header
from evdet.io.label_map import (
    EMPTY_CLASS,
    GEN1_LABEL_MAP,
    GEN4_LABEL_MAP,
    LABEL_MAP_FILENAME,
    class_names,
    load_label_map,
    save_label_map,
)
from evdet.io.raw import RawReader
from evdet.io.read import detect_format, open_events, read_events

__all__ = [
    "BBOX_DTYPE", "EVENT_DTYPE", "EMPTY_CLASS", "GEN1_LABEL_MAP", "GEN4_LABEL_MAP", "LABEL_MAP_FILENAME",
    "as_boxes", "as_events", "class_names", "label_path_for", "load_boxes", "load_label_map",
    "recording_stem", "save_boxes", "save_label_map",
    "DatReader", "DatWriter", "RawReader", "decode_evt2", "decode_evt3", "detect_format", "open_events",
    "parse_header", "read_events", "write_dat", "concatenate_events", "H5TensorReader", "H5TensorWriter",
]
