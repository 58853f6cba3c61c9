"""Event tensors to colour images: one ``[C, H, W]`` tensor of any representation -> BGR ``uint8``.

The palette is fixed so that frames read the same across a video and across representations:
a dark grey background, ON events in red, OFF events in blue (where both polarities hit a pixel the
colours mix towards magenta). The dark background leaves white (ground truth) and the bright class
colours of :mod:`evdet.viz.draw` clearly visible on top.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

BACKGROUND_BGR = (30, 30, 30)
"""Background colour (BGR) of pixels with no event."""
ON_BGR = (70, 70, 235)
"""Colour (BGR) of a saturated ON (p = 1) pixel: red."""
OFF_BGR = (235, 140, 40)
"""Colour (BGR) of a saturated OFF (p = 0) pixel: blue."""


def channel_layout(representation: str | None, params: dict | None = None) -> str | None:
    """The registry's channel layout of a representation (``evdet.preprocessing.CHANNEL_LAYOUTS``), or
    None for an unknown or unnamed one."""
    if representation is None:
        return None
    from evdet.preprocessing.registry import REPRESENTATIONS

    rep = REPRESENTATIONS.get(representation)
    if rep is None:
        return None
    try:
        return rep.channel_layout_for(**dict(params or {}))
    except TypeError:  # parameters of another version of the representation: its defaults
        return rep.channel_layout_for()


def _to_numpy(tensor) -> np.ndarray:
    """A numpy float32 copy-or-view of a numpy array or a torch tensor (any device)."""
    if hasattr(tensor, "detach"):  # torch.Tensor, without importing torch here
        tensor = tensor.detach().float().cpu().numpy()
    return np.asarray(tensor, dtype=np.float32)


def polarity_maps(tensor, representation: str | None = None, params: dict | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Split an event tensor into non-negative ON and OFF activity maps.

    Args:
        tensor: ``ndarray`` or ``Tensor[C, H, W]`` of one time bin, in the representation's range.
        representation: registered name (``histo``, ``diff``, ``event_cube``, ...): its channel layout
            comes from the registry (:func:`channel_layout`, with ``params``); unknown or ``None``: guessed
            from the data: a tensor with negative values is read as signed (+ON / -OFF); otherwise an
            even number of channels is read as OFF channels then ON channels, and an odd number as
            unsigned activity shown as ON.
        params: the representation's parameters (defaults when omitted).

    Returns:
        ``(on, off)``: two float32 ``ndarray[H, W]``, each the sum over that polarity's channels (>= 0).

    Raises:
        ValueError: ``tensor`` is not 3-D, or contains NaN/inf.
    """
    x = _to_numpy(tensor)
    if x.ndim != 3:
        raise ValueError(f"events_to_image: expected an event tensor [C, H, W], got shape {tuple(x.shape)}")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"events_to_image: tensor has a non-finite value {x[tuple(bad)]} "
                         f"at index {tuple(int(i) for i in bad)}")
    c = x.shape[0]
    layout = channel_layout(representation, params)
    if layout == "signed" or (layout is None and bool((x < 0).any())):
        on = np.clip(x, 0, None).sum(axis=0)
        off = np.clip(-x, 0, None).sum(axis=0)
    elif c % 2 == 0:
        off = x[: c // 2].sum(axis=0)
        on = x[c // 2:].sum(axis=0)
    else:
        on = x.sum(axis=0)
        off = np.zeros_like(on)
    return on.astype(np.float32), off.astype(np.float32)


def _normalise(on: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both maps to [0, 1] by one robust maximum (99th percentile of non-zero activity), then
    apply a square root so that single events stay visible next to busy pixels."""
    active = np.concatenate([on[on > 0], off[off > 0]])
    if active.size == 0:
        return np.zeros_like(on), np.zeros_like(off)
    scale = float(np.percentile(active, 99)) or float(active.max())
    return np.sqrt(np.clip(on / scale, 0, 1)), np.sqrt(np.clip(off / scale, 0, 1))


def events_to_image(tensor, representation: str | None = None, params: dict | None = None) -> np.ndarray:
    """Render one event tensor as a colour image: ON red, OFF blue on a dark background.

    Intensities are normalised per image (99th percentile of active pixels, then a square root), so
    every representation (counts, clamped values, time surfaces) reads alike.

    Args:
        tensor: ``ndarray`` or ``Tensor[C, H, W]`` (one time bin), float, in the representation's range.
        representation: its registered name, or ``None`` to guess (see :func:`polarity_maps`).
        params: its parameters (see :func:`polarity_maps`).

    Returns:
        ``ndarray[H, W, 3]`` ``uint8``, BGR (OpenCV order). The input is not modified.

    Raises:
        ValueError: ``tensor`` is not 3-D or contains NaN/inf.
    """
    on, off = _normalise(*polarity_maps(tensor, representation, params))
    bg = np.asarray(BACKGROUND_BGR, np.float32)
    img = (bg + on[..., None] * (np.asarray(ON_BGR, np.float32) - bg)
           + off[..., None] * (np.asarray(OFF_BGR, np.float32) - bg))  # [H, W, 3]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def event_counts(events: np.ndarray | Iterable[np.ndarray], height: int, width: int) -> np.ndarray:
    """Per-polarity event counts of a window: ``float32 ndarray[2, H, W]`` (OFF first, then ON).

    Args:
        events: ``EVENT_DTYPE`` array (fields ``x``, ``y``, ``p``), or an iterable of such pieces of one
            window (e.g. :meth:`evdet.io.EventReader.load_delta_t_pieces`), counted piece by piece so that
            memory is bounded by the piece; events outside the frame are ignored.
        height, width: sensor size (pixels).
    """
    pieces = [events] if isinstance(events, np.ndarray) else events
    counts = np.zeros(2 * height * width, dtype=np.int64)
    for piece in pieces:
        x = piece["x"].astype(np.int64)
        y = piece["y"].astype(np.int64)
        p = (piece["p"] > 0).astype(np.int64)
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        counts += np.bincount(((p * height + y) * width + x)[inside], minlength=2 * height * width)
    return counts.astype(np.float32).reshape(2, height, width)


def events_image(events: np.ndarray | Iterable[np.ndarray], height: int, width: int) -> np.ndarray:
    """The events of a window (an array, or its pieces as :func:`event_counts` takes them) as a BGR
    ``uint8`` image ``[H, W, 3]`` at sensor resolution (same palette and normalisation as
    :func:`events_to_image`)."""
    return events_to_image(event_counts(events, height, width), "histo")
