"""Event and label I/O: DAT, EVT 2.0/3.0 RAW, ``_bbox.npy`` labels, label maps, HDF5 tensors."""

from evdet._lazy import lazy_exports

# public name -> submodule defining it; imported on first use (evdet._lazy), so that light
# submodules and `--help` of the commands load no heavy dependency
_EXPORTS = {
    "label_path_for": "boxes",
    "load_boxes": "boxes",
    "recording_stem": "boxes",
    "save_boxes": "boxes",
    "DatReader": "dat",
    "DatWriter": "dat",
    "write_dat": "dat",
    "EventH5Reader": "event_h5",
    "BBOX_DTYPE": "dtypes",
    "EVENT_DTYPE": "dtypes",
    "as_boxes": "dtypes",
    "as_events": "dtypes",
    "concatenate_events": "dtypes",
    "decode_evt2": "evt2",
    "decode_evt21": "evt21",
    "decode_evt3": "evt3",
    "H5TensorReader": "h5",
    "H5TensorWriter": "h5",
    "parse_header": "header",
    "EMPTY_CLASS": "label_map",
    "GEN1_LABEL_MAP": "label_map",
    "GEN4_LABEL_MAP": "label_map",
    "LABEL_MAP_FILENAME": "label_map",
    "class_names": "label_map",
    "load_label_map": "label_map",
    "save_label_map": "label_map",
    "RawReader": "raw",
    "detect_format": "read",
    "is_event_file": "read",
    "open_events": "read",
    "read_events": "read",
    "DEFAULT_MAX_WINDOW_EVENTS": "reader",
    "DEFAULT_PIECE_EVENTS": "reader",
    "EventReader": "reader",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
