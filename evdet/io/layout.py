"""The dataset directory layout (SPEC 2.6): the split folders of a dataset directory, in their order.

``DATASET_DIR/{train,val,test}/`` hold the recordings (and their ``<name>_bbox.npy`` labels);
``DATASET_DIR/label_map_dictionary.json`` (:data:`evdet.io.label_map.LABEL_MAP_FILENAME`) names the classes.
"""

SPLITS = ("train", "val", "test")
"""Split folder names of a dataset directory, in this order everywhere (listing, conversion, simulation)."""
