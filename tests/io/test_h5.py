"""HDF5 tensor files: round trip, uint8 storage, crash safety, reader errors, pickling."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from evdet.io.atomic import is_temporary
from evdet.io.h5 import H5TensorReader, H5TensorWriter


def _temporaries(folder):
    return [p for p in folder.iterdir() if is_temporary(p)]


def _write(path, frames, **kw):
    args = dict(representation="histo", delta_t=50_000, sensor_size=(8, 12), start_ts=100_000,
                params={"max_incr_per_pixel": 5.0})
    args.update(kw)
    with H5TensorWriter(path, frames.shape[1:], **args) as w:
        w.write(frames[:2])
        w.write(frames[2:])
    return path


@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_round_trip_float(tmp_path, rng, compression):
    frames = rng.random((5, 2, 8, 12), dtype=np.float32)
    path = _write(tmp_path / "a.h5", frames, compression=compression)
    assert not _temporaries(tmp_path)
    with H5TensorReader(path) as r:
        assert r.num_frames == len(r) == 5
        assert r.shape == (2, 8, 12)
        assert r.delta_t == 50_000 and r.start_ts == 100_000
        assert r.representation == "histo"
        assert r.params == {"max_incr_per_pixel": 5.0}
        assert r.sensor_size == (8, 12)
        assert r.store_as_uint8 is False
        np.testing.assert_array_equal(r.read(), frames)
        np.testing.assert_array_equal(r.read(1, 3), frames[1:3])
        assert r.read(4, 10).shape == (1, 2, 8, 12)
    with h5py.File(path) as f:
        d = f["data"]
        assert d.maxshape == (None, 2, 8, 12) and d.chunks == (1, 2, 8, 12)
        assert d.attrs["mode"] == "delta_t" and list(d.attrs["shape"]) == [2, 8, 12]
        assert d.attrs["event_input_width"] == 12 and d.attrs["event_input_height"] == 8
        assert d.compression == compression


def test_uint8_storage(tmp_path, rng):
    frames = rng.random((3, 2, 8, 12), dtype=np.float32)
    path = _write(tmp_path / "u.h5", frames, store_as_uint8=True)
    with h5py.File(path) as f:
        assert f["data"].dtype == np.uint8
    r = H5TensorReader(path)
    assert r.store_as_uint8
    np.testing.assert_allclose(r.read(), frames, atol=0.5 / 255 + 1e-6)
    counts = rng.integers(0, 11, (2, 4, 8, 12)).astype(np.float32)
    path = _write(tmp_path / "c.h5", counts, representation="stacked_histogram", store_as_uint8=True,
                  uint8_scale=1.0, params={})
    np.testing.assert_array_equal(H5TensorReader(path).read(), counts)  # counts are not divided by 255


def test_uint8_rejects_out_of_range_values(tmp_path):
    with pytest.raises(ValueError, match="store_as_uint8"):
        _write(tmp_path / "bad.h5", np.full((2, 1, 8, 12), -0.5, np.float32), store_as_uint8=True)
    assert not (tmp_path / "bad.h5").exists()
    assert not _temporaries(tmp_path)


def test_exception_leaves_no_file(tmp_path, rng):
    path = tmp_path / "x.h5"
    with pytest.raises(RuntimeError, match="boom"), H5TensorWriter(
            path, (2, 8, 12), representation="histo", delta_t=10, sensor_size=(8, 12)) as w:
        w.write(rng.random((2, 2, 8, 12), dtype=np.float32))
        assert len(_temporaries(tmp_path)) == 1 and not path.exists()  # incomplete file has another name
        raise RuntimeError("boom")
    assert not path.exists() and not _temporaries(tmp_path)


def test_writer_validates(tmp_path):
    kw = dict(representation="histo", delta_t=10, sensor_size=(8, 12))
    with pytest.raises(ValueError, match="compression"):
        H5TensorWriter(tmp_path / "a.h5", (2, 8, 12), compression="zip", **kw)
    with pytest.raises(ValueError, match="delta_t"):
        H5TensorWriter(tmp_path / "a.h5", (2, 8, 12), **{**kw, "delta_t": 0})
    with pytest.raises(ValueError, match="reserved"):
        H5TensorWriter(tmp_path / "a.h5", (2, 8, 12), params={"start_ts": 3}, **kw)
    with H5TensorWriter(tmp_path / "a.h5", (2, 8, 12), **kw) as w, pytest.raises(ValueError, match="shape"):
        w.write(np.zeros((1, 2, 8, 11), np.float32))


def test_reader_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError):
        H5TensorReader(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="text.h5"):
        H5TensorReader(tmp_path / "text.h5")
    path = _write(tmp_path / "a.h5", rng.random((2, 2, 8, 12), dtype=np.float32))
    with h5py.File(path, "a") as f:
        del f["data"].attrs["delta_t"]
    with pytest.raises(ValueError, match="a.h5.*delta_t"):
        H5TensorReader(path)
    path = _write(tmp_path / "b.h5", rng.random((2, 2, 8, 12), dtype=np.float32))
    with h5py.File(path, "a") as f:
        f["data"].attrs["shape"] = [3, 8, 12]
    with pytest.raises(ValueError, match="b.h5.*shape"):
        H5TensorReader(path)


def test_reader_pickles_without_handle(tmp_path, rng):
    frames = rng.random((3, 2, 8, 12), dtype=np.float32)
    r = H5TensorReader(_write(tmp_path / "a.h5", frames))
    r.read(0, 1)  # opens the handle
    clone = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(clone.read(2, 3), frames[2:3])
    r.close()
    clone.close()


@pytest.mark.parametrize("name, value", [("delta_t", 50_000.5), ("delta_t", np.nan), ("start_ts", 1.5),
                                         ("event_input_height", "eight"), ("delta_t", True)])
def test_non_integer_attributes_name_the_file_and_value(tmp_path, rng, name, value):
    path = _write(tmp_path / "a.h5", rng.random((3, 2, 8, 12)).astype(np.float32))
    with h5py.File(path, "r+") as f:
        f["data"].attrs[name] = value
    with pytest.raises(ValueError, match=rf"a\.h5: attribute '{name}' = .* is not a whole number"):
        H5TensorReader(path)


def test_whole_float_attributes_are_accepted(tmp_path, rng):
    path = _write(tmp_path / "a.h5", rng.random((3, 2, 8, 12)).astype(np.float32))
    with h5py.File(path, "r+") as f:
        f["data"].attrs["delta_t"] = 50_000.0
    assert H5TensorReader(path).delta_t == 50_000


@pytest.mark.parametrize("uint8", [True, False])
def test_dtype_contradicting_store_as_uint8_is_an_error(tmp_path, rng, uint8):
    path = _write(tmp_path / "a.h5", rng.random((3, 2, 8, 12)).astype(np.float32), store_as_uint8=uint8)
    with h5py.File(path, "r+") as f:
        f["data"].attrs["store_as_uint8"] = not uint8
    with pytest.raises(ValueError, match=r"a\.h5: dataset 'data' holds (uint8|float32) values but attribute "
                                         r"'store_as_uint8' = (True|False).*contradicts itself"):
        H5TensorReader(path)


def test_uint8_without_attribute_reads_as_uint8(tmp_path, rng):
    path = _write(tmp_path / "a.h5", rng.random((3, 2, 8, 12)).astype(np.float32), store_as_uint8=True)
    with h5py.File(path, "r+") as f:
        del f["data"].attrs["store_as_uint8"]
    r = H5TensorReader(path)
    assert r.store_as_uint8 and r.read().max() <= 1.0
