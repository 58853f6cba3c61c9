"""Build the tensor of one window from pieces of its events, with memory bounded by the piece size.

A window too large to hold at once (a burst of tens of millions of events at one timestamp) is read in
pieces (:meth:`evdet.io.EventReader.load_delta_t_pieces`, :meth:`evdet.io.EventReader.iter_window_pieces`)
and fed to a :class:`TensorBuilder`, which gives the same tensor, bit for bit, as
:func:`evdet.preprocessing.events_to_tensor` of the joined events:

- the window's bounds are explicit (``start_ts``, ``num_tbins · delta_t``), never read from the events;
- every built-in representation except ``rvt_stacked_histogram`` is a kernel in two steps (its
  ``accumulate`` and ``finalize``, see :class:`evdet.preprocessing.Representation`): the counts
  (``histo``, ``diff``, ``stacked_histogram``), micro-bin weights (``event_cube``) or maxima
  (``timesurface``, ``multi_channel_timesurface``) of the pieces accumulate into one buffer, in the
  order of the events, so every floating-point operation is the one the single-shot kernel makes;
  the scaling and clamping are applied once, at the end;
- ``rvt_stacked_histogram`` places each event by the first and last event times of its bin, which are
  only known once the whole bin is read, and user representations may need anything: for a
  representation without ``accumulate``/``finalize`` the builder joins the pieces and calls the kernel
  once (correct, but memory grows with the window).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evdet.io.dtypes import EVENT_DTYPE, as_events, concatenate_events
from evdet.preprocessing.registry import check_window, events_to_tensor, get_representation


class TensorBuilder:
    """The tensor of the window ``[start_ts, start_ts + num_tbins · delta_t)`` (µs), built from its events
    given in consecutive pieces (:meth:`add`), read with :meth:`result`.

    Args:
        name: registered representation; ``params``: its parameters (as :func:`events_to_tensor`).
        num_tbins: ``T`` time bins of ``delta_t`` µs each.
        height, width: sensor size (pixels); ``downsampling_factor``: ``d`` (frames ``(H >> d, W >> d)``).
        start_ts: window start (µs, absolute event time).

    Attributes:
        count: events added so far (those outside the window or frame included).
        t_max: largest event time added (µs), or None before the first event.

    Raises:
        ValueError / TypeError: as :func:`events_to_tensor` (unknown representation or parameter, bad sizes,
            ``delta_t`` or parameter values), at construction.
    """

    def __init__(self, name: str, num_tbins: int, height: int, width: int, delta_t: int, start_ts: int = 0,
                 downsampling_factor: int = 0, **params: Any):
        self.rep = get_representation(name)
        self.params = self.rep.resolve_params(params)
        check_window(delta_t, num_tbins, downsampling_factor, name="delta_t")
        if height < 1 or width < 1:
            raise ValueError(f"sensor size must be positive, got (height, width) = ({height}, {width})")
        events_to_tensor(np.zeros(0, EVENT_DTYPE), name, 1, 1, 1, 1, **self.params)  # checks the values
        self.num_tbins, self.height, self.width = int(num_tbins), int(height), int(width)
        self.delta_t, self.start_ts, self.d = int(delta_t), int(start_ts), int(downsampling_factor)
        self.count = 0
        self.t_max: int | None = None
        self._acc: np.ndarray | None = None  # piecewise representations: the accumulated buffer
        self._parts: list[np.ndarray] = []  # the others: the pieces, joined at the end
        self._result: np.ndarray | None = None

    def _shape(self) -> tuple[int, int, int, int]:
        channels = self.rep.num_channels(**self.params)
        return self.num_tbins, channels, self.height >> self.d, self.width >> self.d

    def add(self, events: np.ndarray) -> None:
        """Add the next piece of the window's events (structured ``x, y, p, t``, in stream order).

        Raises:
            RuntimeError: :meth:`result` was already called.
        """
        if self._result is not None:
            raise RuntimeError("TensorBuilder.add after result(): the window is finished")
        events = as_events(np.asarray(events).reshape(-1), source="events")
        if not events.size:
            return
        self.count += events.size
        t_max = int(events["t"].max())
        self.t_max = t_max if self.t_max is None else max(self.t_max, t_max)
        if not self.rep.piecewise:
            self._parts.append(events)
            return
        if self._acc is None:
            self._acc = np.zeros(self._shape(), dtype=np.float32)
        self.rep.accumulate(events, self._acc, self.delta_t * self.num_tbins, self.d, start_ts=self.start_ts,
                            **self.params)

    def result(self) -> np.ndarray:
        """``float32 ndarray[T, C, H >> d, W >> d]``: the tensor of every event added, equal (bit for bit)
        to ``events_to_tensor`` of them joined. Finishes the builder (no more :meth:`add`); later calls
        return the same array."""
        if self._result is not None:
            return self._result
        if not self.rep.piecewise:
            events = concatenate_events(self._parts) if self._parts else np.zeros(0, EVENT_DTYPE)
            self._parts = []
            self._result = events_to_tensor(events, self.rep.name, self.num_tbins, self.height, self.width,
                                            self.delta_t, start_ts=self.start_ts, downsampling_factor=self.d,
                                            **self.params)
            return self._result
        if self._acc is None:
            self._acc = np.zeros(self._shape(), dtype=np.float32)
        self.rep.finalize(self._acc, self.d, **self.params)
        self._result, self._acc = self._acc, None
        return self._result
