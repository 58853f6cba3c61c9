import warnings

import cv2
import numpy as np
import pytest

from evdet.viz.video import VideoWriter, write_video


def _frames(n=5, h=48, w=64):
    out = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[:, : (i + 1) * 8] = (0, 0, 255)
        out.append(f)
    return out


def test_mp4_round_trip(tmp_path):
    path = write_video(_frames(6), tmp_path / "v.mp4", fps=10)
    assert path == tmp_path / "v.mp4" and path.stat().st_size > 0
    cap = cv2.VideoCapture(str(path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = cap.read()
    cap.release()
    assert n == 6 and ok and frame.shape == (48, 64, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_png_frames_replace_existing_folder(tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    write_video(_frames(3), out, fmt="png")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    np.testing.assert_array_equal(cv2.imread(str(out / "frame_000002.png")), _frames(3)[2])


def test_gif_written_when_pillow_available(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = write_video(_frames(4), tmp_path / "a.gif", fps=5)
    with pil.open(path) as im:
        assert im.n_frames == 4 and im.size == (64, 48)


def test_exception_leaves_no_output(tmp_path):
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "v.mp4") as w:
        w.write(_frames(1)[0])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_options(tmp_path):
    with VideoWriter(tmp_path / "f", fmt="png") as w:
        w.write(_frames(1)[0])
        with pytest.raises(ValueError, match="frame 1 has size"):
            w.write(np.zeros((10, 10, 3), np.uint8))
        with pytest.raises(ValueError, match="frame 1 must be BGR uint8"):
            w.write(np.zeros((48, 64), np.float32))
    with pytest.raises(ValueError, match="unknown format"):
        VideoWriter(tmp_path / "x.avi", fmt="avi")
    with pytest.raises(FileNotFoundError):
        VideoWriter(tmp_path / "missing" / "v.mp4")
    with pytest.raises(ValueError, match="no frame"):
        VideoWriter(tmp_path / "empty.mp4").close()


def test_mp4_falls_back_to_png_when_codec_unavailable(tmp_path, monkeypatch):
    import evdet.viz.video as video

    monkeypatch.setattr(video, "find_ffmpeg", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_video(_frames(2), tmp_path / "v.mp4")
    assert path == tmp_path / "v_frames" and len(list(path.glob("*.png"))) == 2
    assert any("PNG" in str(c.message) for c in caught)


def test_mp4_is_h264_yuv420p_even_size(tmp_path):
    """The container says H.264 (avc1) 4:2:0 with even dimensions; ffmpeg itself agrees (yuv420p)."""
    import subprocess

    from evdet.viz.mp4_probe import probe_mp4
    from evdet.viz.video import find_ffmpeg

    path = write_video(_frames(7, h=47, w=63), tmp_path / "odd.mp4", fps=20)
    track = probe_mp4(path)
    assert (track.codec, track.chroma) == ("avc1", "4:2:0")
    assert (track.width, track.height) == (64, 48)  # padded to even
    assert track.num_frames == 7 and track.fps == pytest.approx(20.0, rel=1e-3)
    assert track.profile in ("High", "Main", "Baseline")
    info = subprocess.run([find_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True,
                          text=True).stderr
    assert "Video: h264" in info and "yuv420p" in info and "64x48" in info


def test_probe_rejects_non_mp4(tmp_path):
    from evdet.viz.mp4_probe import probe_mp4

    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"\x00\x00\x00\x10ftypisom" + b"\x00" * 4)
    with pytest.raises(ValueError, match="no video track"):
        probe_mp4(bad)
    cv2.imwrite(str(tmp_path / "a.png"), _frames(1)[0])
    with pytest.raises(ValueError):
        probe_mp4(tmp_path / "a.png")


def test_ffmpeg_failure_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    import evdet.viz.video as video

    monkeypatch.setattr(video, "find_ffmpeg", lambda: "false")  # exits 1 at once
    with pytest.raises(OSError, match="ffmpeg"):
        write_video(_frames(50, h=480, w=640), tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def test_the_format_must_agree_with_the_name(tmp_path):
    from evdet.viz.video import format_for_path

    assert [format_for_path(p) for p in ("a.mp4", "a.GIF", "frames")] == ["mp4", "gif", "png"]
    assert format_for_path("a.mp4", "mp4") == "mp4" and format_for_path("frames", "png") == "png"
    for path, fmt in (("x.avi", None), ("x.avi", "png"), ("x.mp4", "png"), ("frames", "gif")):
        with pytest.raises(ValueError, match=f"cannot write {path}"):
            format_for_path(path, fmt)
    with pytest.raises(ValueError, match="cannot write .*x.mp4 as png"):
        VideoWriter(tmp_path / "x.mp4", fmt="png")


def test_png_frames_into_a_folder_whose_name_is_not_utf8(tmp_path):
    # before: cv2.imwrite crashed the process (segmentation fault) on such a path
    import os

    out = tmp_path / os.fsdecode(b"\xffpng")
    with VideoWriter(out, fps=10, fmt="png") as w:
        w.write(np.zeros((8, 8, 3), np.uint8))
    assert [p.name for p in out.iterdir()] == ["frame_000000.png"]
