"""What a demo panel shows behind the boxes: the events of each time window at sensor resolution.

For a raw recording (``.dat`` / ``.raw``) that is the recording itself. For a tensor source (an HDF5
tensor file, an RVT sequence folder) the events come from its source recording when one can be found
(:func:`find_events_recording`: a given recording, or a ``.dat`` / ``.raw`` with the same name in the
given folders or beside the tensor file); otherwise the stored tensor of the window is shown, enlarged to
the sensor size (nearest neighbour), and :attr:`EventFrames.kind` says ``"tensor"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from evdet.io.boxes import recording_stem
from evdet.viz.events import events_image, events_to_image

__all__ = ["EVENT_SUFFIXES", "EventFrames", "find_events_recording"]

EVENT_SUFFIXES = (".dat", ".raw")


def _is_events(path: Path) -> bool:
    return path.name.lower().endswith(EVENT_SUFFIXES)


def find_events_recording(recording: str | os.PathLike,
                          search: Sequence[str | os.PathLike] = ()) -> Path | None:
    """The event recording behind ``recording``.

    Args:
        recording: a ``.dat`` / ``.raw`` recording (returned as is) or an HDF5 tensor file.
        search: event recordings, or folders searched recursively, for one with the same name (without
            suffix, e.g. ``foo_td.dat`` for ``foo.h5``); the folder of ``recording`` is searched last.

    Returns:
        the first match, or None when there is none.
    """
    recording = Path(recording)
    if _is_events(recording):
        return recording
    stem = recording_stem(recording)
    places = [(Path(p), True) for p in search] + [(recording.parent, False)]
    for item, recursive in places:
        if item.is_file():
            if _is_events(item) and recording_stem(item) == stem:
                return item
        elif item.is_dir():
            walk = item.rglob("*") if recursive else item.iterdir()
            found = sorted(p for p in walk if p.is_file() and _is_events(p) and recording_stem(p) == stem)
            if found:
                return found[0]
    return None


class EventFrames:
    """Sensor-resolution images of consecutive time windows of one recording.

    Args:
        recording: the recording the detector reads (``.dat``, ``.raw``, ``.h5`` or an RVT sequence folder).
        events: the event recording to draw (default: ``recording`` itself when it holds events); None for
            a tensor source means: show its stored tensors, enlarged to the sensor size.

    Attributes:
        kind: ``"events"`` or ``"tensor"``. sensor_size: ``(height, width)`` (pixels of the label files).
        events_path: the event recording drawn, or None.

    Raises:
        FileNotFoundError: a missing file. ValueError: the event recording's size differs from the tensor
            source's sensor size (names both).
    """

    def __init__(self, recording: str | os.PathLike, events: str | os.PathLike | None = None):
        from evdet.data.sources import probe_video
        from evdet.io.read import open_events

        self.recording = Path(recording)
        self._spec = None if _is_events(self.recording) else probe_video(self.recording)
        self.events_path = Path(events) if events is not None else (None if self._spec else self.recording)
        self._reader = None
        if self.events_path is not None:
            self._reader = open_events(self.events_path)
            self.sensor_size = (int(self._reader.height), int(self._reader.width))
            if self._spec is not None and tuple(self._spec.sensor_size) != self.sensor_size:
                raise ValueError(f"{self.events_path} is {self.sensor_size} (height, width) but "
                                 f"{self.recording} was made from a {tuple(self._spec.sensor_size)} sensor")
        else:
            self.sensor_size = tuple(int(v) for v in self._spec.sensor_size)
        self.kind = "events" if self._reader is not None else "tensor"

    def image(self, t_end: int, delta_t: int) -> np.ndarray:
        """BGR ``uint8`` ``[H, W, 3]`` (sensor size) of the events with ``t_end - delta_t <= t < t_end`` (µs),
        or of the stored tensor of the frame ending at ``t_end``."""
        h, w = self.sensor_size
        t0 = int(t_end) - int(delta_t)
        if self._reader is not None:
            if self._reader.current_time != t0:  # consecutive windows read on without seeking
                self._reader.seek_time(max(t0, 0))
            pieces = self._reader.load_delta_t_pieces(int(t_end) - max(t0, 0))  # memory bounded by a piece
            return events_image((piece for piece, _ in pieces), h, w)
        from evdet.data.sources import read_frames

        spec = self._spec
        k = spec.frame_ending_at(t_end)
        if k is None:
            return events_to_image(np.zeros((1, h, w), np.float32))
        img = events_to_image(read_frames(spec, k, k + 1, spec.stored_size)[0].numpy(), spec.representation,
                              dict(spec.params))
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
        return img

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
