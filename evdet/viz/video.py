"""Writing frame sequences: H.264 mp4 (ffmpeg), GIF (Pillow) or a folder of PNG frames.

mp4 files are encoded by an ffmpeg binary fed raw BGR frames through a pipe: H.264 (``libx264``),
``yuv420p`` pixels, even width and height, the ``moov`` index at the front (``+faststart``), so that
browsers and common players (VLC, QuickTime, Windows' player, phones) play them. The binary comes with
the ``imageio-ffmpeg`` wheel (a declared dependency); ``IMAGEIO_FFMPEG_EXE`` or an ``ffmpeg`` on the
``PATH`` are used instead when set / when the wheel is missing. Without any ffmpeg the frames are
written as PNG files with a warning.

Every format is written under a temporary name in the destination folder (:mod:`evdet.io.atomic`) and
renamed when :meth:`VideoWriter.close` completes, so an interrupted run never leaves a file that looks
finished.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np

from evdet.io.atomic import AtomicTarget, CommitOnExit
from evdet.viz.draw import png_bytes

FORMATS = ("mp4", "gif", "png")
"""Supported outputs: ``mp4`` (H.264, yuv420p via ffmpeg), ``gif`` (Pillow), ``png`` (a folder of
``frame_000000.png`` ...)."""

MP4_CRF = 20
"""x264 constant-rate factor of the mp4 output (lower: better and larger; 20 keeps single event pixels)."""


def format_for_path(path: str | os.PathLike, fmt: str | None = None) -> str:
    """Output format of a path: ``.mp4`` -> mp4, ``.gif`` -> gif, no suffix -> png folder; ``fmt``, when
    given, must be that format.

    Raises:
        ValueError: any other suffix (e.g. ``x.avi``: evdet writes no such format, and a folder of PNG
            frames named like a video would surprise), or a ``fmt`` the path contradicts (``x.mp4`` with
            png).
    """
    suffix = Path(path).suffix.lower()
    implied = {".mp4": "mp4", ".gif": "gif", "": "png"}.get(suffix)
    if implied is None:
        raise ValueError(f"cannot write {path}: unsupported output suffix {Path(path).suffix!r}; give a .mp4 "
                         "or .gif file, or a folder name without suffix for PNG frames")
    if fmt is not None and fmt != implied:
        raise ValueError(f"cannot write {path} as {fmt}: the name says {implied}; give a .mp4 or .gif file, "
                         "or a folder name without suffix for PNG frames")
    return implied


def png_fallback_for(path: str | os.PathLike) -> Path:
    """Folder of PNG frames written instead of ``path`` when OpenCV cannot write mp4: ``<stem>_frames``."""
    path = Path(path)
    return path.with_name(path.stem + "_frames")


@functools.lru_cache(maxsize=1)
def find_ffmpeg() -> str | None:
    """Path of an ffmpeg binary that has the ``libx264`` encoder, or None.

    Order: ``imageio_ffmpeg.get_ffmpeg_exe()`` (its bundled binary, or ``IMAGEIO_FFMPEG_EXE``), then an
    ``ffmpeg`` on the ``PATH``.
    """
    candidates = []
    try:
        import imageio_ffmpeg

        candidates.append(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        pass
    if shutil.which("ffmpeg"):
        candidates.append(shutil.which("ffmpeg"))
    for exe in candidates:
        try:
            out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True,
                                 timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if "libx264" in out:
            return exe
    return None


class VideoWriter(CommitOnExit):
    """Write BGR ``uint8`` frames ``[H, W, 3]`` (all the same size) to a video, GIF or PNG folder.

    Use as a context manager: on a clean exit the output is finalised and renamed into place, on an
    exception the temporary output is removed.

    Args:
        path: destination (``video.mp4``, ``anim.gif`` or a folder for PNG frames).
        fps: frames per second (> 0).
        fmt: one of :data:`FORMATS`; default from the path (:func:`format_for_path`).

    Attributes:
        path: where the output is (or will be) once closed. Without a usable ffmpeg, an mp4 writer falls
            back to a PNG folder ``<stem>_frames/`` with a warning and ``path`` says so.
        fmt: the format actually written.
        num_frames: frames written so far.

    Raises:
        ValueError: unknown format or fps <= 0; a frame that is not BGR uint8 or whose size differs
            from the first frame (names the frame index).
        ImportError: ``gif`` without Pillow installed (``pip install pillow``).
        FileNotFoundError: the destination folder does not exist.
        OSError: ffmpeg failed (its message is included).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 20.0, fmt: str | None = None):
        self.path = Path(path)
        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"VideoWriter: unknown format {fmt!r}; valid: {list(FORMATS)}")
        self.fmt = format_for_path(self.path, fmt)
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
        self._ffmpeg: subprocess.Popen | None = None
        self._gif_frames: list = []
        self._target: AtomicTarget | None = None
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
            try:
                self._ffmpeg.stdin.write(np.ascontiguousarray(_pad_even(frame)).tobytes())
            except (BrokenPipeError, OSError) as exc:
                raise OSError(f"VideoWriter: ffmpeg stopped while writing {self.path}: "
                              f"{self._ffmpeg_error()}") from exc
        elif self.fmt == "gif":
            from PIL import Image
            rgb = Image.fromarray(np.ascontiguousarray(frame[..., ::-1]))
            self._gif_frames.append(rgb.quantize(colors=255, method=Image.Quantize.MEDIANCUT))
        else:
            (self._target.tmp / f"frame_{self.num_frames:06d}.png").write_bytes(png_bytes(frame))
        self.num_frames += 1

    def _open(self) -> None:
        if self.fmt == "mp4":
            exe = find_ffmpeg()
            if exe is not None:
                self._target = AtomicTarget(self.path, keep_suffix=True)
                h, w = self._size
                cmd = [exe, "-hide_banner", "-loglevel", "error", "-y",
                       "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w + w % 2}x{h + h % 2}",
                       "-r", f"{self.fps:g}", "-i", "pipe:0",
                       "-c:v", "libx264", "-preset", "fast", "-crf", str(MP4_CRF), "-pix_fmt", "yuv420p",
                       "-movflags", "+faststart", "-f", "mp4", str(self._target.tmp)]
                self._ffmpeg = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE)
                return
            fallback = png_fallback_for(self.path)
            warnings.warn(f"VideoWriter: no ffmpeg with libx264 found (pip install imageio-ffmpeg); writing "
                          f"PNG frames to {fallback} instead of {self.path}", RuntimeWarning, stacklevel=3)
            self.path, self.fmt = fallback, "png"
        self._target = AtomicTarget(self.path, keep_suffix=self.fmt == "gif")
        if self.fmt == "png":
            self._target.tmp.mkdir()

    def _ffmpeg_error(self) -> str:
        proc = self._ffmpeg
        try:
            proc.stdin.close()
        except OSError:
            pass
        proc.wait()
        return proc.stderr.read().decode(errors="replace").strip() or f"exit status {proc.returncode}"

    # -- finishing ------------------------------------------------------------------------------
    def close(self) -> Path:
        """Finish writing and move the output into place; returns its path.

        Raises:
            ValueError: no frame was written. OSError: ffmpeg failed.
        """
        if self._closed:
            return self.path
        if self.num_frames == 0:
            self._closed = True
            raise ValueError(f"VideoWriter: no frame was written to {self.path}")
        if self.fmt == "mp4":
            self._ffmpeg.stdin.close()
            err = self._ffmpeg.stderr.read().decode(errors="replace").strip()
            if self._ffmpeg.wait() != 0:
                self.abort()
                raise OSError(f"VideoWriter: ffmpeg could not encode {self.path}: {err}")
        elif self.fmt == "gif":
            first, rest = self._gif_frames[0], self._gif_frames[1:]
            first.save(self._target.tmp, format="GIF", save_all=True, append_images=rest,
                       duration=max(20, round(1000 / self.fps)), loop=0)
            self._gif_frames = []
        self._target.commit()
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial output (the destination is left as it was)."""
        if self._ffmpeg is not None and self._ffmpeg.poll() is None:
            self._ffmpeg.kill()
            self._ffmpeg.wait()
        self._gif_frames = []
        if self._target is not None:
            self._target.abort()
        self._closed = True



def _pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width (yuv420p needs it) by repeating the last row/column."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(frames, path: str | os.PathLike, fps: float = 20.0, fmt: str | None = None) -> Path:
    """Write an iterable of BGR ``uint8`` frames ``[H, W, 3]`` with :class:`VideoWriter`; returns the path
    written (which differs from ``path`` only on the mp4 -> PNG fallback)."""
    with VideoWriter(path, fps=fps, fmt=fmt) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path
