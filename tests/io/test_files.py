"""FIFOs and devices where evdet expects a recording, a label file or a label map: errors, never a hang."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from evdet.io.boxes import load_boxes
from evdet.io.files import require_regular_file
from evdet.io.label_map import load_label_map
from evdet.io.read import open_events, read_events

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


@pytest.fixture(autouse=True)
def no_hang():
    """Fail instead of blocking forever if a FIFO were opened for reading."""
    def fail(*_):
        raise TimeoutError("blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def fifo(tmp_path):
    def make(name: str):
        path = tmp_path / name
        os.mkfifo(path)
        return path
    return make


def test_require_regular_file(tmp_path, fifo):
    (tmp_path / "f").write_text("x")
    assert require_regular_file(tmp_path / "f", "thing") == tmp_path / "f"
    with pytest.raises(FileNotFoundError, match="thing not found: .*/g"):
        require_regular_file(tmp_path / "g", "thing")
    with pytest.raises(ValueError, match=r"thing .*/p is a FIFO, not a regular file"):
        require_regular_file(fifo("p"), "thing")
    with pytest.raises(ValueError, match=r"thing /dev/null is a device"):
        require_regular_file("/dev/null", "thing")


def test_readers_refuse_fifos(fifo):
    path = fifo("rec_td.dat")
    for read in (open_events, read_events):
        with pytest.raises(ValueError, match="event file .*rec_td.dat is a FIFO"):
            read(path)
    with pytest.raises(ValueError, match="label file .*a_bbox.npy is a FIFO"):
        load_boxes(fifo("a_bbox.npy"))
    with pytest.raises(ValueError, match="label map .*label_map_dictionary.json is a FIFO"):
        load_label_map(fifo("label_map_dictionary.json"))


def test_conversion_refuses_fifos_given_or_listed(tmp_path, fifo):
    from evdet.io.dat import write_dat
    from evdet.io.dtypes import EVENT_DTYPE
    from evdet.preprocessing.convert import generate_hdf5

    with pytest.raises(ValueError, match="input recording .*x_td.dat is a FIFO"):
        generate_hdf5(fifo("x_td.dat"), tmp_path / "out", progress=False)
    folder = tmp_path / "rec"
    folder.mkdir()
    ev = np.zeros(3, EVENT_DTYPE)
    ev["t"] = [1, 2, 3]
    write_dat(folder / "a_td.dat", ev, 4, 4)
    os.mkfifo(folder / "b_td.dat")
    with pytest.raises(ValueError, match="recording .*b_td.dat is a FIFO"):  # not skipped silently
        generate_hdf5(folder, tmp_path / "out2", progress=False)


def test_training_data_listing_refuses_fifos(tmp_path):
    from evdet.data import describe_dataset
    from evdet.simulation import make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "ds", preset="tiny", num_train=1, num_val=1, num_test=0, duration_s=0.2)
    os.mkfifo(tmp_path / "ds" / "train" / "z_td.dat")
    with pytest.raises(ValueError, match="z_td.dat is a FIFO"):
        describe_dataset(tmp_path / "ds")
