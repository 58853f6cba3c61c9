"""The dataset directory layout (SPEC 2.6): the split folders of a dataset directory, in their order, and
the file extensions of recordings.

``DATASET_DIR/{train,val,test}/`` hold the recordings (and their ``<name>_bbox.npy`` labels);
``DATASET_DIR/label_map_dictionary.json`` (:data:`evdet.io.label_map.LABEL_MAP_FILENAME`) names the classes.
"""

SPLITS = ("train", "val", "test")
"""Split folder names of a dataset directory, in this order everywhere (listing, conversion, simulation)."""

RAW_SUFFIXES = (".dat", ".raw")
"""Extensions of Prophesee event recordings (DAT, RAW EVT 2/3)."""
H5_SUFFIXES = (".h5", ".hdf5")
"""Extensions of HDF5 files: evdet tensor files, or event files (RVT's mirror, DSEC), told apart by content
(:func:`evdet.io.event_h5.is_event_h5`)."""
RECORDING_SUFFIXES = H5_SUFFIXES + RAW_SUFFIXES
"""Extensions of every recording a dataset folder may hold."""
