import numpy as np
import pytest
import torch

from evdet.viz.events import BACKGROUND_BGR, OFF_BGR, ON_BGR, events_to_image, polarity_maps


def test_histo_colours_on_red_off_blue_background_dark():
    x = np.zeros((2, 4, 5), np.float32)
    x[1, 0, 0] = 1.0  # ON
    x[0, 1, 1] = 1.0  # OFF
    img = events_to_image(x, "histo")
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == ON_BGR
    assert tuple(img[1, 1]) == OFF_BGR
    assert tuple(img[3, 4]) == BACKGROUND_BGR
    assert img[0, 0, 2] > img[0, 0, 0]  # red dominates (BGR)
    assert img[1, 1, 0] > img[1, 1, 2]  # blue dominates


def test_signed_diff_and_auto_guess_agree():
    x = np.zeros((1, 3, 3), np.float32)
    x[0, 0, 0], x[0, 2, 2] = 0.8, -0.8
    on, off = polarity_maps(x, "diff")
    assert on[0, 0] == pytest.approx(0.8) and off[2, 2] == pytest.approx(0.8) and off[0, 0] == 0
    np.testing.assert_array_equal(events_to_image(x, "diff"), events_to_image(x, None))


def test_multichannel_groups_polarities_and_torch_input_matches_numpy(rng):
    x = (rng.random((6, 8, 8)) * (rng.random((6, 8, 8)) < 0.2)).astype(np.float32)
    on, off = polarity_maps(x, "event_cube")
    np.testing.assert_allclose(off, x[:3].sum(0), rtol=1e-6)
    np.testing.assert_allclose(on, x[3:].sum(0), rtol=1e-6)
    np.testing.assert_array_equal(events_to_image(torch.from_numpy(x), "event_cube"),
                                  events_to_image(x, "event_cube"))


def test_counts_are_normalised_and_input_untouched():
    x = np.zeros((2, 2, 2), np.float32)
    x[1, 0, 0] = 10.0  # stacked_histogram counts, not in [0, 1]
    before = x.copy()
    img = events_to_image(x, "stacked_histogram")
    assert tuple(img[0, 0]) == ON_BGR
    np.testing.assert_array_equal(x, before)


def test_empty_tensor_is_background():
    img = events_to_image(np.zeros((2, 3, 4), np.float32))
    assert (img == np.asarray(BACKGROUND_BGR, np.uint8)).all()


def test_bad_inputs_raise_with_index():
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        events_to_image(np.zeros((3, 4), np.float32))
    x = np.zeros((2, 3, 4), np.float32)
    x[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"\(1, 2, 3\)"):
        events_to_image(x)


def test_channel_layouts_come_from_the_registry():
    from evdet.preprocessing import REPRESENTATIONS
    from evdet.preprocessing.registry import CHANNEL_LAYOUTS
    from evdet.viz.events import channel_layout

    assert channel_layout("diff") == "signed" and channel_layout("histo") == "off_on"
    assert channel_layout("event_cube", {"split_polarity": False}) == "signed"
    assert channel_layout("event_cube") == "off_on" and channel_layout("no such") is None
    assert all(rep.channel_layout_for() in CHANNEL_LAYOUTS for rep in REPRESENTATIONS.values())
    # a signed cube whose bin happens to be all positive is still read as ON activity, not OFF | ON
    x = np.zeros((2, 3, 3), np.float32)
    x[0, 1, 1] = 0.5
    on, off = polarity_maps(x, "event_cube", {"split_polarity": False})
    assert on[1, 1] == 0.5 and off.sum() == 0
    on, off = polarity_maps(x, "event_cube")  # split: channel 0 is OFF
    assert off[1, 1] == 0.5 and on.sum() == 0
