"""``DataConfig``: every option of the sequential data pipeline, with documented defaults (SPEC 4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SAMPLING_MODES = ("stream", "random", "mixed")


@dataclass(frozen=True)
class DataConfig:
    """Options of the sequential multi-stream loader. Values derived from the data (channels, sensor
    size, label period) are read by :func:`evdet.data.describe_dataset`, never patched in here.

    Attributes:
        num_tbins: T, time bins per chunk (one chunk = one batch step of a stream).
        batch_size: B, number of streams (columns) per batch, per DDP rank.
        delta_t: bin length in µs. None: the ``delta_t`` attribute of the HDF5 files; 50_000 for raw
            recordings. For HDF5 files a value different from the stored one raises ``ValueError``.
        representation: event-to-tensor representation name (SPEC 3) used for raw recordings.
            None: the HDF5 ``events_to_tensor`` attribute, else ``"histo"``.
        representation_params: extra parameters of the representation (raw recordings only).
        height, width: network input size in pixels. None: the stored size (HDF5) or the sensor size
            (raw). Any other size is an area resize of the stored tensors (raw recordings: of the
            representation at full sensor resolution), the same preprocessing whatever the source
            (:mod:`evdet.data.sources`). Boxes follow.
        classes: class names to train on, in output order (``--classes``); a name that the label map
            lacks raises ``ValueError`` listing the valid ones. None: every name of the label map in
            id order, without ``"empty"``. Boxes of other classes are dropped.
        sampling: training sampling mode: ``"stream"`` (videos back to back per column), ``"random"``
            (clips of T bins ending at a random labelled bin, state reset), ``"mixed"`` (ceil(B/2)
            stream columns, the others random clips). Validation and test always stream.
        hflip_prob: probability that a video is flipped horizontally (training only; drawn once per
            video and epoch, constant over the video).
        zoom_in_prob: probability of a zoom in (random crop of 1/z of the frame, resized back).
        zoom_out_prob: probability of a zoom out (frame shrunk by 1/z, placed at random on a zero canvas).
        max_zoom: largest zoom factor z (drawn uniformly in [1, max_zoom]).
        interpolate: training labels: linear interpolation per track to every bin end (SPEC 4.1).
            Validation/test never interpolate (labelled bins are the annotation instants).
        max_interp_gap: largest gap (µs) between two annotations of a track to interpolate between.
            None: 2 × the label period detected from the data (median gap between annotation instants).
        clip_boxes: clip boxes to the sensor frame before any other filter.
        min_box_side: boxes with a side ≤ this (sensor pixels, after clipping) are dropped.
        min_box_diag_network: boxes with a diagonal < this, or a side < this / 3 (network pixels,
            after rescaling) are dropped. 0 disables the filter.
        max_consecutive_batches: curriculum: cut videos into sub-sequences of at most this many chunks
            (each starts with a state reset). None: whole videos.
        num_workers: DataLoader worker processes. Never changes the batches, only the speed.
        pin_memory: pin batches in page-locked memory (for GPU training).
        uint8_inputs: HDF5 videos stored as uint8 at the network size are delivered as stored: batches
            whose videos all are (and that are not zoomed) have uint8 ``inputs`` with their
            ``input_scale``, converted to float32 by ``SequenceBatch.to(device)`` (on the accelerator) or
            ``float_inputs()``. Same values; a quarter of the bytes to read, pass between processes and
            copy to the GPU. False: always float32.
        seed: base seed of every random decision (video order, augmentation, random clips); epoch e
            uses ``seed + e``.
        require_labels: True: a recording without a ``_bbox.npy`` file raises ``FileNotFoundError``;
            False: it is loaded as unlabelled with a warning.
    """

    num_tbins: int = 12
    batch_size: int = 8
    delta_t: int | None = None
    representation: str | None = None
    representation_params: Mapping[str, object] = field(default_factory=dict)
    height: int | None = None
    width: int | None = None
    classes: tuple[str, ...] | None = None
    sampling: str = "stream"
    hflip_prob: float = 0.5
    zoom_in_prob: float = 0.0
    zoom_out_prob: float = 0.0
    max_zoom: float = 1.5
    interpolate: bool = True
    max_interp_gap: int | None = None
    clip_boxes: bool = True
    min_box_side: float = 2.0
    min_box_diag_network: float = 0.0
    max_consecutive_batches: int | None = None
    num_workers: int = 0
    pin_memory: bool = False
    uint8_inputs: bool = True
    seed: int = 0
    require_labels: bool = True

    def __post_init__(self) -> None:
        for name in ("num_tbins", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DataConfig.{name} must be a positive int, got {value!r}")
        if self.delta_t is not None and (not isinstance(self.delta_t, int) or self.delta_t < 1):
            raise ValueError(f"DataConfig.delta_t must be a positive int (µs) or None, got {self.delta_t!r}")
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"DataConfig.sampling = {self.sampling!r}; valid: {list(SAMPLING_MODES)}")
        if (self.height is None) != (self.width is None):
            raise ValueError(f"DataConfig: give both height and width or neither, got "
                             f"height={self.height!r}, width={self.width!r}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"DataConfig.{name} must be a positive int or None, got {value!r}")
        for name in ("hflip_prob", "zoom_in_prob", "zoom_out_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DataConfig.{name} must be in [0, 1], got {value!r}")
        if self.zoom_in_prob + self.zoom_out_prob > 1.0:
            raise ValueError(f"DataConfig: zoom_in_prob + zoom_out_prob = "
                             f"{self.zoom_in_prob + self.zoom_out_prob} > 1")
        if self.max_zoom < 1.0:
            raise ValueError(f"DataConfig.max_zoom must be ≥ 1, got {self.max_zoom!r}")
        if self.max_interp_gap is not None and self.max_interp_gap < 0:
            raise ValueError(f"DataConfig.max_interp_gap must be ≥ 0 (µs) or None, "
                             f"got {self.max_interp_gap!r}")
        if self.max_consecutive_batches is not None and self.max_consecutive_batches < 1:
            raise ValueError(f"DataConfig.max_consecutive_batches must be ≥ 1 or None, "
                             f"got {self.max_consecutive_batches!r}")
        if self.num_workers < 0:
            raise ValueError(f"DataConfig.num_workers must be ≥ 0, got {self.num_workers!r}")
        if self.classes is not None:
            if isinstance(self.classes, str):
                raise TypeError(f"DataConfig.classes must be a tuple of names, "
                                f"got the string {self.classes!r}")
            object.__setattr__(self, "classes", tuple(self.classes))
            if not self.classes:
                raise ValueError("DataConfig.classes is empty; give at least one class name or None")
