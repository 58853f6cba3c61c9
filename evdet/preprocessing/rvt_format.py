"""The on-disk layout of RVT's preprocessed datasets (uzh-rpg/RVT, ``scripts/genx/preprocess_dataset.py``),
shared by the writer (:mod:`evdet.preprocessing.rvt_convert`) and the reader (:mod:`evdet.data.rvt`)::

    <split>/<sequence>/labels_v2/labels.npz             labels (label file dtype), objframe_idx_2_label_idx
    <split>/<sequence>/labels_v2/timestamps_us.npy      int64 [F] label-frame times (µs)
    <split>/<sequence>/event_representations_v2/stacked_histogram_dt=50_nbins=10/
        event_representations.h5                        Gen1: "data" uint8 [N, 20, 240, 304]
        event_representations_ds2_nearest.h5           1Mpx: "data" uint8 [N, 20, 360, 640]
        timestamps_us.npy                               int64 [N] end time of each representation (µs)
        objframe_idx_2_repr_idx.npy                     int64 [F] representation of each label frame

``data`` is chunked one representation per chunk, Blosc-compressed (HDF5 filter 32001, zstd level 1, byte
shuffle), with no attributes; reading or writing it needs the Blosc filter, which ``hdf5plugin`` registers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPR_DIR = "event_representations_v2"
LABELS_DIR = "labels_v2"
LABELS_FILE = "labels.npz"
TIMESTAMPS_FILE = "timestamps_us.npy"
FRAME_TO_REPR_FILE = "objframe_idx_2_repr_idx.npy"
REPR_FILE = "event_representations.h5"
REPR_FILE_DS2 = "event_representations_ds2_nearest.h5"
RVT_WINDOW_MS = 50
RVT_NUM_BINS = 10
RVT_MAX_COUNT = 10
REPR_NAME_RE = re.compile(r"^stacked_histogram_dt=(\d+)_nbins=(\d+)$")

BLOSC_FILTER = 32001
BLOSC_OPTIONS = {"compression": BLOSC_FILTER, "compression_opts": (0, 0, 0, 0, 1, 1, 5), "shuffle": False}
"""``h5py.create_dataset`` keywords of RVT's ``data``: Blosc, level 1, byte shuffle (1), zstd (compressor 5);
h5py's own shuffle filter off (Blosc shuffles)."""


def repr_dir_name(window_ms: int = RVT_WINDOW_MS, num_bins: int = RVT_NUM_BINS) -> str:
    """``stacked_histogram_dt=<window ms>_nbins=<bins>``: RVT's name of the representation folder."""
    return f"stacked_histogram_dt={int(window_ms)}_nbins={int(num_bins)}"


def repr_file_name(downsampled: bool) -> str:
    """``event_representations_ds2_nearest.h5`` for 1Mpx at half resolution, else
    ``event_representations.h5``."""
    return REPR_FILE_DS2 if downsampled else REPR_FILE


def blosc_available() -> bool:
    """Whether HDF5 can use the Blosc filter (importing ``hdf5plugin`` registers it)."""
    import h5py

    if h5py.h5z.filter_avail(BLOSC_FILTER):
        return True
    try:
        import hdf5plugin  # noqa: F401  (registers the filter)
    except ImportError:
        return False
    return bool(h5py.h5z.filter_avail(BLOSC_FILTER))


def require_blosc(path: str | os.PathLike, what: str = "reading") -> None:
    """Raise ``ValueError`` naming ``path`` when the Blosc HDF5 filter is not available.

    Raises:
        ValueError: "``path``: ... needs the Blosc HDF5 filter (32001): pip install hdf5plugin".
    """
    if not blosc_available():
        raise ValueError(f"{Path(path)}: {what} RVT's Blosc-compressed representations needs the Blosc HDF5 "
                         f"filter ({BLOSC_FILTER}), which is not available: pip install hdf5plugin")
