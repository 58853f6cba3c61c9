"""Writing frame sequences: mp4 (OpenCV ``mp4v``), GIF (Pillow, optional) or a folder of PNG frames.

Every format is written under a temporary name in the destination folder and renamed when
:meth:`VideoWriter.close` completes, so an interrupted run never leaves a file that looks finished.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np

FORMATS = ("mp4", "gif", "png")
"""Supported outputs: ``mp4`` (H.263-style ``mp4v`` codec via OpenCV), ``gif`` (needs Pillow),
``png`` (a folder of ``frame_000000.png`` ...)."""


def format_for_path(path: str | os.PathLike) -> str:
    """Output format implied by a path: ``.mp4`` -> mp4, ``.gif`` -> gif, no suffix -> png folder.

    Raises:
        ValueError: any other suffix (e.g. ``x.avi``): evdet writes no such format, and a folder of PNG
            frames named like a video would surprise (pass ``fmt="png"`` to get one anyway).
    """
    suffix = Path(path).suffix.lower()
    if suffix in ("", ".mp4", ".gif"):
        return {".mp4": "mp4", ".gif": "gif"}.get(suffix, "png")
    raise ValueError(f"cannot write {path}: unsupported output suffix {Path(path).suffix!r}; give a .mp4 or "
                     ".gif file, or a folder name without suffix for PNG frames (or choose the format "
                     "explicitly)")


def png_fallback_for(path: str | os.PathLike) -> Path:
    """Folder of PNG frames written instead of ``path`` when OpenCV cannot write mp4: ``<stem>_frames``."""
    path = Path(path)
    return path.with_name(path.stem + "_frames")


class VideoWriter:
    """Write BGR ``uint8`` frames ``[H, W, 3]`` (all the same size) to a video, GIF or PNG folder.

    Use as a context manager: on a clean exit the output is finalised and renamed into place, on an
    exception the temporary output is removed.

    Args:
        path: destination (``video.mp4``, ``anim.gif`` or a folder for PNG frames).
        fps: frames per second (> 0).
        fmt: one of :data:`FORMATS`; default from the path (:func:`format_for_path`).

    Attributes:
        path: where the output is (or will be) once closed. If OpenCV cannot open an mp4 writer, the
            writer falls back to a PNG folder ``<stem>_frames/`` with a warning and ``path`` says so.
        fmt: the format actually written.
        num_frames: frames written so far.

    Raises:
        ValueError: unknown format or fps <= 0; a frame that is not BGR uint8 or whose size differs
            from the first frame (names the frame index).
        ImportError: ``gif`` without Pillow installed (``pip install pillow``).
        FileNotFoundError: the destination folder does not exist.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 20.0, fmt: str | None = None):
        self.path = Path(path)
        self.fmt = format_for_path(self.path) if fmt is None else fmt
        if self.fmt not in FORMATS:
            raise ValueError(f"VideoWriter: unknown format {self.fmt!r}; valid: {list(FORMATS)}")
        if not fps > 0:
            raise ValueError(f"VideoWriter: fps must be > 0, got {fps}")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"VideoWriter: output folder does not exist: {self.path.parent}")
        if self.fmt == "gif":
            try:
                import PIL.Image  # noqa: F401
            except ImportError as exc:
                raise ImportError(f"VideoWriter: writing GIF ({self.path}) needs Pillow: pip install pillow; "
                                  "or write .mp4 or PNG frames") from exc
        self.fps = float(fps)
        self.num_frames = 0
        self._size: tuple[int, int] | None = None  # (height, width) of the first frame
        self._cv_writer = None
        self._gif_frames: list = []
        self._tmp: Path | None = None
        self._closed = False

    # -- writing --------------------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> None:
        """Append one BGR ``uint8`` frame ``[H, W, 3]``."""
        if self._closed:
            raise ValueError(f"VideoWriter: {self.path} is already closed")
        if (not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3
                or frame.shape[2] != 3):
            desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"VideoWriter {self.path}: frame {self.num_frames} must be BGR uint8 [H, W, 3], "
                             f"got {desc}")
        size = (frame.shape[0], frame.shape[1])
        if self._size is None:
            self._size = size
            self._open()
        elif size != self._size:
            raise ValueError(f"VideoWriter {self.path}: frame {self.num_frames} has size {size} "
                             f"(height, width), the first frame had {self._size}")
        if self.fmt == "mp4":
            self._cv_writer.write(_pad_even(frame))
        elif self.fmt == "gif":
            from PIL import Image
            rgb = Image.fromarray(np.ascontiguousarray(frame[..., ::-1]))
            self._gif_frames.append(rgb.quantize(colors=255, method=Image.Quantize.MEDIANCUT))
        else:
            name = self._tmp / f"frame_{self.num_frames:06d}.png"
            if not cv2.imwrite(str(name), frame):
                raise OSError(f"VideoWriter: could not write {name}")
        self.num_frames += 1

    def _open(self) -> None:
        if self.fmt == "mp4":
            self._tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}.mp4")
            h, w = self._size
            writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                     (w + w % 2, h + h % 2))
            if writer.isOpened():
                self._cv_writer = writer
                return
            writer.release()
            self._tmp.unlink(missing_ok=True)
            fallback = png_fallback_for(self.path)
            warnings.warn(f"VideoWriter: OpenCV cannot write mp4 (codec mp4v unavailable); writing PNG "
                          f"frames to {fallback} instead of {self.path}", RuntimeWarning, stacklevel=3)
            self.path, self.fmt = fallback, "png"
        if self.fmt == "png":
            self._tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
            if self._tmp.exists():
                shutil.rmtree(self._tmp)
            self._tmp.mkdir()
        else:  # gif: frames are kept (palettised, 1 byte per pixel) until close
            self._tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}.gif")

    # -- finishing ------------------------------------------------------------------------------
    def close(self) -> Path:
        """Finish writing and move the output into place; returns its path.

        Raises:
            ValueError: no frame was written.
        """
        if self._closed:
            return self.path
        if self.num_frames == 0:
            self._closed = True
            raise ValueError(f"VideoWriter: no frame was written to {self.path}")
        if self.fmt == "mp4":
            self._cv_writer.release()
            os.replace(self._tmp, self.path)
        elif self.fmt == "gif":
            first, rest = self._gif_frames[0], self._gif_frames[1:]
            first.save(self._tmp, format="GIF", save_all=True, append_images=rest,
                       duration=max(20, round(1000 / self.fps)), loop=0)
            self._gif_frames = []
            os.replace(self._tmp, self.path)
        else:
            _replace_dir(self._tmp, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial output (the destination is left as it was)."""
        if self._cv_writer is not None:
            self._cv_writer.release()
        self._gif_frames = []
        if self._tmp is not None and self._tmp.exists():
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp)
            else:
                self._tmp.unlink()
        self._closed = True

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width (many mp4 codecs need it) by repeating the last row/column."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``, replacing an existing ``dst`` (a file or a folder)."""
    if dst.is_dir():
        old = dst.with_name(f".{dst.name}.old{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old)
    else:
        if dst.exists():
            dst.unlink()
        os.replace(src, dst)


def write_video(frames, path: str | os.PathLike, fps: float = 20.0, fmt: str | None = None) -> Path:
    """Write an iterable of BGR ``uint8`` frames ``[H, W, 3]`` with :class:`VideoWriter`; returns the path
    written (which differs from ``path`` only on the mp4 -> PNG fallback)."""
    with VideoWriter(path, fps=fps, fmt=fmt) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path
