"""Text headers of event files (``% key value`` lines) and sensor geometry (SPEC 2.2, 2.3).

Both DAT and Prophesee RAW files start with ASCII lines beginning with ``%``. The header ends at the
first line that does not start with ``%``, at the first line holding a byte that is not text (a
control byte other than tab/CR/LF: binary data that happens to start with ``%`` in a file without
``% end``), or right after a ``% end`` line (RAW files). Geometry is
taken, in this order, from:

1. explicit keys: ``% Height H`` / ``% Width W``, ``% geometry WxH``, ``% format EVT3;height=H;width=W``;
2. the camera plugin / sensor name when it identifies a known sensor (``PLUGIN_GEOMETRY``);
3. otherwise it is unknown here; readers then infer it from the data and flag it as inferred.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_MAX_HEADER_BYTES = 1 << 20
MAX_SENSOR_SIDE = 1 << 14
"""Largest accepted sensor height or width (pixels): the 14-bit DAT coordinate range. A larger declared
geometry is refused (it is a corrupt header)."""
RAW_MAX_SENSOR_SIDE = 1 << 11
"""Largest sensor side a RAW file can address: EVT 2.0, 2.1 and 3.0 coordinates have 11 bits."""
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13)) + b"\x7f"

PLUGIN_GEOMETRY: tuple[tuple[str, tuple[int, int]], ...] = (
    # (substring of the lower-cased plugin / sensor name, (height, width)); first match wins.
    ("gen41", (720, 1280)),      # Prophesee Gen4.1 = Sony IMX636 HD
    ("imx636", (720, 1280)),
    ("gen4", (720, 1280)),       # Gen4 HD
    ("genx320", (320, 320)),     # GenX320
    ("gen31", (480, 640)),       # Gen3.1 VGA
    ("gen3", (480, 640)),        # Gen3 VGA CD (e.g. hal_plugin_gen3_fx3)
)
"""Known sensors by plugin/sensor name fragment -> ``(height, width)`` in pixels."""

SENSOR_GENERATION_GEOMETRY: dict[str, tuple[int, int]] = {
    "4.1": (720, 1280), "4.0": (720, 1280), "3.1": (480, 640), "3.0": (480, 640), "320": (320, 320),
}
"""``% sensor_generation`` values -> ``(height, width)``."""


@dataclass(frozen=True)
class Header:
    """A parsed ``%`` header.

    Attributes:
        fields: ``key -> value`` for every ``% key value`` line (keys as written, first occurrence wins;
            ``Height``/``Width`` lookups are case-insensitive through :meth:`get`).
        lines: the header lines without the leading ``%`` and surrounding spaces.
        size: number of header bytes; the binary data starts at this byte offset.
    """

    fields: dict[str, str] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    size: int = 0

    def get(self, key: str) -> str | None:
        """Value of ``key`` (case-insensitive), or None."""
        key = key.lower()
        for k, v in self.fields.items():
            if k.lower() == key:
                return v
        return None

    @property
    def evt_version(self) -> str | None:
        """``"2.0"``, ``"2.1"``, ``"3.0"`` (or another declared version) for RAW files, None when not
        declared (``% evt 2.1``, or ``% format EVT21;...`` / ``EVT2.1`` / ``EVT3``)."""
        version = self.get("evt")
        if version is not None:
            return version.strip()
        fmt = self.get("format")
        if fmt is not None:
            match = re.match(r"\s*EVT\s*(\d)\.?(\d)?", fmt, re.IGNORECASE)  # EVT3, EVT2.1, EVT21
            if match:
                return f"{match.group(1)}.{match.group(2) or 0}"
        return None


def parse_header(path: str | os.PathLike) -> Header:
    """Read the ``%`` header of an event file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the header is longer than 1 MiB or a header line is not terminated (names the file and
            byte offset).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"event file not found: {path}")
    fields: dict[str, str] = {}
    lines: list[str] = []
    offset = 0
    with open(path, "rb") as f:
        while True:
            first = f.read(1)
            if first != b"%":
                break
            line = first + f.readline(_MAX_HEADER_BYTES)
            if line.translate(None, _CONTROL_BYTES) != line:  # binary data, not a header line
                break
            if not line.endswith(b"\n"):
                raise ValueError(f"{path}: header line at byte offset {offset} is not terminated "
                                 f"(truncated file or not an event file)")
            text = line[1:].decode("latin-1").strip()  # never fails: free-text lines may hold any byte
            offset += len(line)
            if offset > _MAX_HEADER_BYTES:
                raise ValueError(f"{path}: header longer than {_MAX_HEADER_BYTES} bytes")
            lines.append(text)
            if text == "end":
                break
            key, _, value = text.partition(" ")
            if key and key not in fields:
                fields[key] = value.strip()
    return Header(fields=fields, lines=tuple(lines), size=offset)


def _positive_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value > 0 else None


def geometry_from_header(header: Header) -> tuple[int, int] | None:
    """``(height, width)`` from explicit header keys, or None.

    Recognised: ``Height``/``Width`` lines, ``geometry WxH``, ``format ...;height=H;width=W``.
    """
    height, width = _positive_int(header.get("height")), _positive_int(header.get("width"))
    if height and width:
        return height, width
    geometry = header.get("geometry")
    if geometry:
        match = re.match(r"\s*(\d+)\s*x\s*(\d+)", geometry)
        if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
            return int(match.group(2)), int(match.group(1))
    fmt = header.get("format")
    if fmt:
        options = dict(part.split("=", 1) for part in fmt.split(";") if "=" in part)
        options = {k.strip().lower(): v for k, v in options.items()}
        height, width = _positive_int(options.get("height")), _positive_int(options.get("width"))
        if height and width:
            return height, width
    return None


def geometry_from_sensor_name(header: Header) -> tuple[int, int] | None:
    """``(height, width)`` from ``plugin_name`` / ``sensor_name`` / ``sensor_generation``, or None."""
    for key in ("plugin_name", "sensor_name", "camera_plugin_name"):
        name = (header.get(key) or "").lower()
        if not name:
            continue
        for fragment, geometry in PLUGIN_GEOMETRY:
            if fragment in name:
                return geometry
    generation = (header.get("sensor_generation") or "").strip()
    return SENSOR_GENERATION_GEOMETRY.get(generation)


def resolve_geometry(header: Header, height: int | None, width: int | None,
                     source: str, max_side: int = MAX_SENSOR_SIDE) -> tuple[int, int] | None:
    """Geometry from the caller, else the header keys, else the sensor name; None when unknown.

    Args:
        max_side: the largest side the format can address (``MAX_SENSOR_SIDE``, ``RAW_MAX_SENSOR_SIDE``).

    Raises:
        ValueError: only one of ``height``/``width`` given, a non-positive value, a ``% geometry`` line
            that is not ``WIDTHxHEIGHT`` with positive sides (e.g. ``0x480``), or a side above
            ``max_side`` given or declared in the header (names ``source`` and the value).
    """
    if (height is None) != (width is None):
        raise ValueError(f"{source}: give both height and width or neither (got height={height}, "
                         f"width={width})")
    if height is not None:
        if int(height) <= 0 or int(width) <= 0:
            raise ValueError(f"{source}: height and width must be positive, got {height}x{width}")
        return checked_geometry((int(height), int(width)), source, "given", max_side)
    geometry = geometry_from_header(header)
    if geometry is None and header.get("geometry") is not None:
        raise ValueError(f"{source}: header line '% geometry {header.get('geometry')}' is not WIDTHxHEIGHT "
                         f"with positive sides")
    geometry = geometry or geometry_from_sensor_name(header)
    return None if geometry is None else checked_geometry(geometry, source, "in the header", max_side)


def checked_geometry(geometry: tuple[int, int], source: str, where: str,
                     max_side: int = MAX_SENSOR_SIDE) -> tuple[int, int]:
    """``geometry`` (height, width) when each side is at most ``max_side``; else a ValueError naming
    ``source`` and ``where`` the value came from (e.g. ``"given"``, ``"in the header"``)."""
    if max(geometry) > max_side:
        raise ValueError(f"{source}: sensor geometry {geometry[1]}x{geometry[0]} (width x height) {where} "
                         f"is not plausible: each side must be at most {max_side} pixels")
    return geometry
