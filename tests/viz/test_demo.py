import numpy as np
import pytest

from evdet.io.boxes import load_boxes
from evdet.io.dtypes import BBOX_DTYPE
from evdet.io.read import read_events
from evdet.viz.demo import (
    DemoOptions,
    Panel,
    boxes_at,
    compose_frame,
    default_scale,
    render_detections_video,
    select_for_display,
)
from evdet.viz.draw import GT_BGR, class_color
from evdet.viz.event_frames import EventFrames, find_events_recording
from evdet.viz.events import events_image

CLASSES = ("car", "pedestrian", "two wheeler")


def _boxes(rows):
    out = np.zeros(len(rows), BBOX_DTYPE)
    for i, (t, x, y, w, h, c, score, track) in enumerate(rows):
        out[i] = (t, x, y, w, h, c, track, score)
    return out


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from evdet.simulation import make_synthetic_dataset

    root = tmp_path_factory.mktemp("demo")
    make_synthetic_dataset(root / "ds", preset="tiny", num_train=0, num_val=1, num_test=0, duration_s=0.4)
    return next((root / "ds" / "val").glob("*_td.dat"))


def test_default_scale():
    assert default_scale((96, 128)) == 4 and default_scale((240, 304)) == 2
    assert default_scale((720, 1280)) == 1
    assert default_scale((96, 128), 480) == 5 and default_scale((480, 640), 480) == 1


def test_select_for_display_threshold_and_class_agnostic_nms():
    dets = _boxes([(0, 10, 10, 20, 20, 0, 0.9, 1), (0, 11, 10, 20, 20, 1, 0.6, 2),  # same object, 2 classes
                   (0, 60, 60, 10, 10, 2, 0.5, 3), (0, 80, 10, 10, 10, 0, 0.1, 4)])
    kept = select_for_display(dets, 0.3, 0.5)
    assert kept["track_id"].tolist() == [1, 3]
    assert select_for_display(dets, 0.3, None)["track_id"].tolist() == [1, 2, 3]
    assert select_for_display(dets, 0.95, 0.5).size == 0


def test_boxes_at_takes_latest_instant_of_the_bin():
    gt = _boxes([(10_000, 0, 0, 5, 5, 0, 1, 1), (40_000, 1, 0, 5, 5, 0, 1, 2), (40_000, 2, 0, 5, 5, 0, 1, 3),
                 (60_000, 3, 0, 5, 5, 0, 1, 4)])
    assert boxes_at(gt, 50_000, 50_000)["x"].tolist() == [1, 2]  # no real track ids: latest instant
    assert boxes_at(gt, 100_000, 50_000)["x"].tolist() == [3]
    assert boxes_at(gt, 200_000, 50_000).size == 0


def test_event_frames_are_the_events_at_sensor_resolution(recording, tmp_path):
    frames = EventFrames(recording)
    assert frames.kind == "events" and frames.sensor_size == (96, 128)
    img = frames.image(200_000, 50_000)
    want = events_image(read_events(recording, 150_000, 200_000), 96, 128)
    np.testing.assert_array_equal(img, want)
    assert (img != img[0, 0]).any()  # there are events
    frames.close()


def test_event_images_count_a_window_piece_by_piece(recording):
    # the demo reads each window in pieces (memory bounded by a piece): the image of the pieces is the
    # image of the joined events, however they are cut
    from evdet.io import open_events

    events = read_events(recording, 150_000, 200_000)
    with open_events(recording) as reader:
        reader.seek_time(150_000)
        pieces = [piece for piece, _ in reader.load_delta_t_pieces(50_000, max_events=97)]
    assert len(pieces) > 3 and sum(p.size for p in pieces) == events.size
    np.testing.assert_array_equal(events_image(iter(pieces), 96, 128), events_image(events, 96, 128))


def test_hdf5_input_finds_its_recording_or_shows_the_tensor(recording, tmp_path):
    from evdet.preprocessing.convert import generate_hdf5

    generate_hdf5([recording], tmp_path / "h5", progress=False, downsampling_factor=1)
    h5 = next((tmp_path / "h5").rglob("*.h5"))
    assert find_events_recording(h5) is None
    assert find_events_recording(h5, [recording.parent.parent]) == recording
    alone = EventFrames(h5)
    assert alone.kind == "tensor" and alone.sensor_size == (96, 128)
    assert alone.image(200_000, 50_000).shape == (96, 128, 3)  # 48x64 tensor enlarged to the sensor
    with_events = EventFrames(h5, recording)
    assert with_events.kind == "events"
    np.testing.assert_array_equal(with_events.image(200_000, 50_000),
                                  EventFrames(recording).image(200_000, 50_000))


def _panel(gt=None, dets=None, track_ids=False):
    events = np.full((96, 128, 3), 30, np.uint8)
    return Panel("rec", events, 250_000, dets, gt, track_ids=track_ids)


def test_compose_frame_draws_scaled_dashed_gt_and_class_coloured_detections():
    gt = _boxes([(250_000, 20, 30, 40, 20, 0, 1.0, 1)])
    dets = _boxes([(250_000, 70, 40, 30, 30, 1, 0.8, 7)])
    frame = compose_frame([_panel(gt, dets)], CLASSES, DemoOptions())
    assert frame.shape[1] == 128 * 5 + 4 and frame.shape[0] > 96 * 5  # ×5, header and legend
    background = (frame[:, 10] == 30).all(axis=1)  # the events' background (no event in this panel)
    image_top = int(np.argmax(background))
    assert background[image_top:image_top + 96 * 5].all() and not background[image_top + 96 * 5]
    image = frame[image_top:image_top + 96 * 5, 2:2 + 128 * 5]
    white = (image == np.asarray(GT_BGR, np.uint8)).all(axis=2)
    # the GT's top edge at sensor y = 30 -> y = 150 is dashed: white and not white alternate along it
    edge = white[149:152, 105:295].any(axis=0)
    assert 0.4 < edge.mean() < 0.9
    assert not white[160:240, 110:290].any()  # nothing white inside the box
    colour = (image == np.asarray(class_color(1), np.uint8)).all(axis=2)
    assert colour[210:340, 349:352].any(axis=1).all()  # the detection's left edge at sensor x = 70 -> 350


def test_side_by_side_layout_doubles_the_width():
    gt = _boxes([(250_000, 20, 30, 40, 20, 0, 1.0, 1)])
    overlay = compose_frame([_panel(gt)], CLASSES, DemoOptions(scale=2))
    side = compose_frame([_panel(gt)], CLASSES, DemoOptions(scale=2, layout="side-by-side"))
    assert overlay.shape[1] == 128 * 2 + 4  # scale 2, grid padding
    assert side.shape[1] == 2 * 128 * 2 + 4 + 4  # two panels, a 4 px separator, grid padding
    with pytest.raises(ValueError, match="layout"):
        DemoOptions(layout="stacked")


def test_detection_files_video_mp4_is_h264(recording, tmp_path):
    from evdet.viz.mp4_probe import probe_mp4

    gt = load_boxes(recording.with_name(recording.name.replace("_td.dat", "_bbox.npy")))
    dets = gt.copy()
    dets["class_confidence"] = 0.9
    out = render_detections_video([dets], [recording], tmp_path / "d.mp4", label_map=dict(enumerate(CLASSES)))
    track = probe_mp4(out)
    assert (track.codec, track.chroma, track.num_frames) == ("avc1", "4:2:0", 8)  # 0.4 s of 50 ms bins
    assert track.width % 2 == 0 and track.height % 2 == 0 and track.width == 128 * 5 + 4
    assert track.fps == pytest.approx(20.0, rel=1e-3)
    frames = render_detections_video([dets], [recording], tmp_path / "png",
                                     label_map=dict(enumerate(CLASSES)), max_duration=100_000)
    assert len(list(frames.glob("frame_*.png"))) == 2
    nested = render_detections_video([dets], [recording], tmp_path / "new" / "videos" / "d.mp4",
                                     label_map=dict(enumerate(CLASSES)), max_duration=100_000)
    assert nested == tmp_path / "new" / "videos" / "d.mp4" and nested.is_file()  # its folders are made
