"""Read what an mp4 file holds, without decoding it: codec, size, chroma format, frame count, frame rate.

A small ISO base-media (mp4) box parser: ``moov/trak/mdia`` gives the track's time scale and duration
(``mdhd``), ``minf/stbl`` the sample description (``stsd``: the ``avc1`` sample entry with its width,
height and ``avcC`` decoder configuration: H.264 profile, level and, for the High profiles, the chroma
format) and the sample count (``stsz``). It is how the tests check that the demo video is H.264 4:2:0,
the format browsers and common players decode.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mp4VideoTrack", "probe_mp4"]

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_H264_PROFILES = {66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High 10",
                  122: "High 4:2:2", 244: "High 4:4:4"}
_CHROMA = {0: "4:0:0", 1: "4:2:0", 2: "4:2:2", 3: "4:4:4"}


@dataclass(frozen=True)
class Mp4VideoTrack:
    """The first video track of an mp4 file.

    Attributes:
        codec: sample-entry four-cc (``"avc1"`` for H.264, ``"mp4v"`` for MPEG-4 part 2, ...).
        width, height: coded size in pixels.
        num_frames: samples in the track.
        fps: ``num_frames / duration``.
        profile: H.264 profile name (``"High"``, ...) or None for other codecs.
        level: H.264 level (e.g. 3.1) or None.
        chroma: ``"4:2:0"`` ... ; H.264 profiles below High are 4:2:0 by definition; None for other codecs.
    """

    codec: str
    width: int
    height: int
    num_frames: int
    fps: float
    profile: str | None
    level: float | None
    chroma: str | None


def _boxes(data: bytes, start: int, end: int):
    """``(type, payload_start, payload_end)`` of the boxes in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            head = 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise ValueError(f"corrupt mp4 box {kind!r} at byte {pos} (size {size})")
        yield kind, pos + head, pos + size
        pos += size


def _find(data: bytes, start: int, end: int, path: list[bytes]) -> list[tuple[int, int]]:
    """Payload ranges of every box at ``path`` (e.g. ``[b"moov", b"trak"]``) below ``data[start:end]``."""
    out = []
    for kind, s, e in _boxes(data, start, end):
        if kind == path[0]:
            out.extend([(s, e)] if len(path) == 1 else _find(data, s, e, path[1:]))
    return out


def _avc(data: bytes, s: int, e: int) -> tuple[str | None, float | None, str | None]:
    """Profile, level and chroma format from an ``avcC`` payload (ISO 14496-15 5.3.3.1)."""
    profile_idc, level_idc = data[s + 1], data[s + 3]
    pos = s + 5
    for count_mask in (0x1F, 0xFF):  # sequence, then picture parameter sets
        count = data[pos] & count_mask
        pos += 1
        for _ in range(count):
            pos += 2 + struct.unpack(">H", data[pos:pos + 2])[0]
    chroma = "4:2:0"
    if profile_idc in (100, 110, 122, 144, 244) and pos < e:
        chroma = _CHROMA[data[pos] & 0x03]
    return _H264_PROFILES.get(profile_idc, str(profile_idc)), level_idc / 10.0, chroma


def probe_mp4(path: str | os.PathLike) -> Mp4VideoTrack:
    """Describe the first video track of an mp4 file.

    Raises:
        FileNotFoundError: no such file. ValueError: not an mp4 file, or no video track (names the file).
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        for trak_s, trak_e in _find(data, 0, len(data), [b"moov", b"trak"]):
            handler = _find(data, trak_s, trak_e, [b"mdia", b"hdlr"])
            if not handler or data[handler[0][0] + 8:handler[0][0] + 12] != b"vide":
                continue
            ms, _ = _find(data, trak_s, trak_e, [b"mdia", b"mdhd"])[0]
            if data[ms] == 1:  # version 1: 64-bit times
                timescale, duration = struct.unpack(">IQ", data[ms + 20:ms + 32])
            else:
                timescale, duration = struct.unpack(">II", data[ms + 12:ms + 20])
            stbl = [b"mdia", b"minf", b"stbl"]
            ss, se = _find(data, trak_s, trak_e, stbl + [b"stsd"])[0]
            entry = ss + 8  # version/flags, entry count
            codec = data[entry + 4:entry + 8].decode("ascii", "replace")
            width, height = struct.unpack(">HH", data[entry + 32:entry + 36])
            profile = level = chroma = None
            entry_end = entry + struct.unpack(">I", data[entry:entry + 4])[0]
            for kind, s, e in _boxes(data, entry + 86, min(entry_end, se)):  # 8 + 78-byte visual entry
                if kind == b"avcC":
                    profile, level, chroma = _avc(data, s, e)
            zs, _ = _find(data, trak_s, trak_e, stbl + [b"stsz"])[0]
            num_frames = struct.unpack(">I", data[zs + 8:zs + 12])[0]
            fps = num_frames * timescale / duration if duration else 0.0
            return Mp4VideoTrack(codec, int(width), int(height), int(num_frames), float(fps), profile, level,
                                 chroma)
    except (struct.error, IndexError) as exc:
        raise ValueError(f"{path}: not a readable mp4 file ({exc})") from exc
    raise ValueError(f"{path}: no video track found (not an mp4 file?)")
