"""Registry of event-to-tensor representations and the convenient entry ``events_to_tensor``.

A representation is a kernel ``fn(events, out, window, downsampling_factor=0, **params)`` that
overwrites ``out: float32 ndarray[T, C, H, W]`` (SPEC 3), plus its number of channels, default
parameters and value range. ``REPRESENTATIONS`` maps names to :class:`Representation`; users add their
own with :func:`register_representation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from evdet.io.dtypes import as_events


@dataclass(frozen=True)
class Representation:
    """One event-to-tensor representation.

    Attributes:
        name: registry key (also the HDF5 attribute ``events_to_tensor``).
        kernel: ``fn(events, out, window, downsampling_factor=0, **params)`` overwriting
            ``out: float32 ndarray[T, C, H, W]``; ``window`` (µs) is the whole window covered by the
            ``T`` bins and event times are relative to the window start.
        num_channels: ``num_channels(**params) -> C``, channels per time bin.
        default_params: parameter names and defaults; any other name passed is an error.
        value_range: ``value_range(**params) -> (low, high)`` of the output values.
        uint8_scale: factor applied before rounding when stored as uint8 (``1`` for counts); ``None``
            means 255 when the value range is within ``[0, 1]`` and "not storable" otherwise
            (see :meth:`uint8_scale_for`).
        takes_start_ts: the kernel accepts a keyword ``start_ts`` (µs) subtracted from event times,
            which spares a copy of the events in :func:`events_to_tensor`.
        channel_layout: ``channel_layout(**params)`` -> one of :data:`CHANNEL_LAYOUTS`: how the channels
            of a bin map to polarities (read by :mod:`evdet.viz` to colour ON and OFF activity).
        accumulate, finalize: the kernel in two steps, for windows built from pieces of events
            (:class:`evdet.preprocessing.TensorBuilder`): ``accumulate(events, acc, window,
            downsampling_factor, start_ts=, **params)`` adds the events' contribution to ``acc`` (the
            kernel's ``out``, zeroed once) without zeroing it, and ``finalize(acc, downsampling_factor,
            **params)`` applies the final scaling and clamping in place; ``kernel`` must equal zeroing,
            one ``accumulate`` and ``finalize``. ``None`` (both): the representation needs the whole
            window at once (e.g. the first and last event times of each bin).
    """

    name: str
    kernel: Callable[..., None]
    num_channels: Callable[..., int]
    default_params: Mapping[str, Any] = field(default_factory=dict)
    value_range: Callable[..., tuple[float, float]] = lambda **_: (0.0, 1.0)
    uint8_scale: float | None = None
    takes_start_ts: bool = False
    channel_layout: Callable[..., str] = lambda **_: "off_on"
    accumulate: Callable[..., None] | None = None
    finalize: Callable[..., None] | None = None

    @property
    def piecewise(self) -> bool:
        """The tensor of a window can be built from pieces of its events (``accumulate``/``finalize``)."""
        return self.accumulate is not None and self.finalize is not None

    def channels(self, **params: Any) -> int:
        """Channels per time bin for these parameters (defaults filled in)."""
        return int(self.num_channels(**self.resolve_params(params)))

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults updated with ``params``.

        Raises:
            TypeError: a parameter name is not one of this representation's parameters.
        """
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.default_params))
        if unknown:
            raise TypeError(f"representation '{self.name}' got unknown parameter(s) {unknown}; "
                            f"valid: {sorted(self.default_params)}")
        return {**self.default_params, **params}

    def value_range_for(self, **params: Any) -> tuple[float, float]:
        """``(low, high)`` of the values for these parameters (defaults filled in)."""
        low, high = self.value_range(**self.resolve_params(params))
        return float(low), float(high)

    def channel_layout_for(self, **params: Any) -> str:
        """The :data:`CHANNEL_LAYOUTS` entry of a bin's channels for these parameters (defaults filled in)."""
        return str(self.channel_layout(**self.resolve_params(params)))

    def uint8_scale_for(self, **params: Any) -> float:
        """Factor ``s`` such that uint8 storage holds ``round(s * value)`` for these parameters.

        Raises:
            ValueError: the values do not fit uint8 (e.g. ``diff`` in ``[-1, 1]``): ``store_as_uint8``
                is only valid for representations with values in ``[0, 1]`` (or counts <= 255).
        """
        low, high = self.value_range_for(**params)
        scale = self.uint8_scale
        if scale is None:
            scale = 255.0 if 0 <= low and high <= 1 else None
        if scale is None or low < 0 or high * scale > 255:
            raise ValueError(f"store_as_uint8 is not valid for representation '{self.name}' with values in "
                             f"[{low}, {high}]; it needs values in [0, 1]")
        return float(scale)


CHANNEL_LAYOUTS = ("off_on", "signed")
"""How a bin's ``C`` channels map to polarities: ``"off_on"``, the first ``C / 2`` channels count OFF
events and the others ON events (non-negative values); ``"signed"``, every channel is signed activity
(positive: ON, negative: OFF)."""

REPRESENTATIONS: dict[str, Representation] = {}
"""All registered representations by name (read it; add entries with :func:`register_representation`)."""


def register_representation(name: str, kernel: Callable[..., None], num_channels: Callable[..., int] | int,
                            default_params: Mapping[str, Any] | None = None,
                            value_range: tuple[float, float] | Callable[..., tuple[float, float]] = (0, 1),
                            uint8_scale: float | None = None,
                            takes_start_ts: bool = False, overwrite: bool = False,
                            channel_layout: str | Callable[..., str] = "off_on",
                            accumulate: Callable[..., None] | None = None,
                            finalize: Callable[..., None] | None = None) -> Representation:
    """Add a representation to :data:`REPRESENTATIONS` and return it.

    Args:
        name: registry key.
        kernel: ``fn(events, out, window, downsampling_factor=0, **params)`` that overwrites ``out``.
        num_channels: channels per bin, an int or ``fn(**params) -> int``.
        default_params: parameter names and defaults.
        value_range: ``(low, high)`` of the output values, or ``fn(**params) -> (low, high)``.
        uint8_scale: factor before rounding for uint8 storage. ``None`` (the default) means 255 when
            the value range is within ``[0, 1]`` and "not storable as uint8" otherwise.
        takes_start_ts: the kernel accepts a keyword ``start_ts`` (µs).
        overwrite: replace an existing entry of the same name instead of raising.
        channel_layout: one of :data:`CHANNEL_LAYOUTS`, or ``fn(**params) -> layout``.
        accumulate, finalize: the kernel in two steps (see :class:`Representation`), both or neither;
            they let :class:`evdet.preprocessing.TensorBuilder` build a window from pieces of its events
            with bounded memory (without them it joins the pieces).

    Raises:
        ValueError: ``name`` is already registered (and not ``overwrite``) or empty; an unknown
            ``channel_layout``; only one of ``accumulate`` and ``finalize``.
        TypeError: ``kernel`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"representation name must be a non-empty string, got {name!r}")
    if name in REPRESENTATIONS and not overwrite:
        raise ValueError(f"representation '{name}' is already registered (pass overwrite=True to replace it)")
    if not callable(kernel):
        raise TypeError(f"representation '{name}': kernel must be callable, got {type(kernel).__name__}")
    if (accumulate is None) != (finalize is None):
        raise ValueError(f"representation '{name}': give both accumulate and finalize, or neither")
    if isinstance(num_channels, int):
        fixed = num_channels
        num_channels = lambda **_: fixed  # noqa: E731
    if not callable(value_range):
        fixed_range = (float(value_range[0]), float(value_range[1]))
        value_range = lambda **_: fixed_range  # noqa: E731
    if not callable(channel_layout):
        if channel_layout not in CHANNEL_LAYOUTS:
            raise ValueError(f"representation '{name}': channel_layout must be one of "
                             f"{list(CHANNEL_LAYOUTS)}, got {channel_layout!r}")
        fixed_layout = channel_layout
        channel_layout = lambda **_: fixed_layout  # noqa: E731
    rep = Representation(name, kernel, num_channels, MappingProxyType(dict(default_params or {})),
                         value_range, uint8_scale, takes_start_ts, channel_layout, accumulate, finalize)
    REPRESENTATIONS[name] = rep
    return rep


def get_representation(name: str) -> Representation:
    """The registered representation called ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    try:
        return REPRESENTATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown representation {name!r}; valid: {sorted(REPRESENTATIONS)}") from None


def check_window(window: Any, num_tbins: int, downsampling_factor: int, name: str = "window") -> int:
    """Validate kernel arguments; return ``window`` as an int (µs). ``name``: how the message calls it.

    Raises:
        ValueError: ``window`` not a positive integer, ``num_tbins`` < 1 or ``downsampling_factor`` < 0.
    """
    if isinstance(window, bool | np.bool_) or not float(window).is_integer() or window <= 0:
        raise ValueError(f"{name} must be a positive integer number of µs, got {window!r}")
    if num_tbins < 1:
        raise ValueError(f"the output needs at least one time bin, got T = {num_tbins}")
    if int(downsampling_factor) != downsampling_factor or downsampling_factor < 0:
        raise ValueError(f"downsampling_factor must be an integer >= 0, got {downsampling_factor!r}")
    return int(window)


def check_out(out: Any) -> np.ndarray:
    """Validate the output tensor of a kernel (float32, 4-D, C-contiguous, writable).

    Raises:
        TypeError: not a float32 numpy array.
        ValueError: not 4-D ``[T, C, H, W]``, not C-contiguous or read-only.
    """
    if not isinstance(out, np.ndarray) or out.dtype != np.float32:
        raise TypeError(f"out must be a float32 ndarray[T, C, H, W], got "
                        f"{getattr(out, 'dtype', type(out).__name__)}")
    if out.ndim != 4:
        raise ValueError(f"out must be 4-D [T, C, H, W], got shape {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a C-contiguous, writable array")
    return out


def event_fields(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, p, t)`` views of a structured event array (converted to ``EVENT_DTYPE`` if needed)."""
    events = as_events(np.asarray(events).reshape(-1), source="events")
    return events["x"], events["y"], events["p"], events["t"]


def check_max_incr(max_incr_per_pixel: float) -> float:
    """``max_incr_per_pixel`` as a float.

    Raises:
        ValueError: not a finite number > 0.
    """
    if not np.isfinite(max_incr_per_pixel) or max_incr_per_pixel <= 0:
        raise ValueError(f"max_incr_per_pixel must be a finite number > 0, got {max_incr_per_pixel!r}")
    return float(max_incr_per_pixel)


def prepare_kernel_call(events: np.ndarray, out: Any, window: Any, downsampling_factor: int, num_utbins: int,
                        channels_per_utbin: int, detail: str = "", zero: bool = True,
                        ) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The common prologue of the micro-bin kernels: validate, zero ``out`` (unless ``zero`` is False: the
    accumulating step of a piecewise build), get the event fields.

    Args:
        events: structured events ``x, y, p, t`` (``EVENT_DTYPE`` or convertible).
        out: ``float32 ndarray[T, C, H, W]`` with ``C = num_utbins · channels_per_utbin``.
        window: whole window (µs); ``downsampling_factor``: ``d`` (see :func:`check_window`).
        num_utbins: ``U`` micro-bins per time bin.
        channels_per_utbin: 2 for per-polarity channels, 1 for signed ones.
        detail: appended to the channel-count error (e.g. ``" (num_utbins=3)"``).

    Returns:
        ``(out, window as int, x, y, p, t)`` with ``out`` zeroed (with ``zero``).

    Raises:
        TypeError: ``out`` not a float32 ndarray.
        ValueError: bad ``out``, ``window``, ``downsampling_factor``, ``num_utbins`` not an integer >= 1, or
            ``out`` with the wrong channel count.
    """
    out = check_out(out)
    total = check_window(window, out.shape[0], downsampling_factor)
    if int(num_utbins) != num_utbins or num_utbins < 1:
        raise ValueError(f"num_utbins must be an integer >= 1, got {num_utbins!r}")
    expected = int(num_utbins) * channels_per_utbin
    if out.shape[1] != expected:
        raise ValueError(f"out has {out.shape[1]} channels, expected {expected}{detail}")
    x, y, p, t = event_fields(events)
    if zero:
        out[...] = 0.0
    return out, total, x, y, p, t


def events_to_tensor(events: np.ndarray, name: str, num_tbins: int, height: int, width: int, delta_t: int,
                     start_ts: int = 0, downsampling_factor: int = 0, **params: Any) -> np.ndarray:
    """Turn events into a tensor of ``num_tbins`` time bins of ``delta_t`` µs each.

    Args:
        events: structured array with fields ``x, y, p, t`` (``EVENT_DTYPE`` or convertible), any order.
        name: registered representation (``histo``, ``diff``, ``event_cube``, ``timesurface``,
            ``multi_channel_timesurface``, ``stacked_histogram`` or a user one).
        num_tbins: ``T``, number of time bins.
        height, width: sensor size (pixels).
        delta_t: length of ONE bin (µs); the window is ``[start_ts, start_ts + num_tbins * delta_t)``.
        start_ts: window start (µs, absolute event time).
        downsampling_factor: ``d``; coordinates are divided by ``2**d``.
        **params: representation parameters (see ``get_representation(name).default_params``).

    Returns:
        ``float32 ndarray[T, C, height >> d, width >> d]``. Events outside the window or the frame are
        ignored.

    Raises:
        ValueError: unknown representation name, bad sizes, ``delta_t`` or parameter values.
        TypeError: unknown parameter name, events not a structured array.
    """
    rep = get_representation(name)
    resolved = rep.resolve_params(params)
    check_window(delta_t, num_tbins, downsampling_factor, name="delta_t")
    if height < 1 or width < 1:
        raise ValueError(f"sensor size must be positive, got (height, width) = ({height}, {width})")
    d = int(downsampling_factor)
    out = np.zeros((num_tbins, rep.num_channels(**resolved), height >> d, width >> d), dtype=np.float32)
    total = int(delta_t) * int(num_tbins)
    events = as_events(np.asarray(events).reshape(-1), source="events")
    if rep.takes_start_ts:
        rep.kernel(events, out, total, d, start_ts=int(start_ts), **resolved)
    else:
        if start_ts != 0:
            shifted = events.copy()
            shifted["t"] -= int(start_ts)
            events = shifted
        rep.kernel(events, out, total, d, **resolved)
    return out

