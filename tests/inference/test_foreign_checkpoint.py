"""read_foreign_checkpoint: tensors rebuilt exactly from torch.save's zip records, no pickled code run, no
module imported, clear errors naming the file."""

from __future__ import annotations

import functools
import os
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from evdet.inference.foreign_checkpoint import UnreadableObject, read_foreign_checkpoint


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _fake_module_class(module: str, name: str) -> type:
    """A class that pickles as ``module.name`` (a module that is then removed again)."""
    cls = type(name, (), {"__module__": module})
    mod = types.ModuleType(module)
    setattr(mod, name, cls)
    sys.modules[module] = mod
    return cls


def _rewrite(path, replace):
    """Copy the zip at ``path`` with ``replace(name, data) -> data`` applied to every record."""
    with zipfile.ZipFile(path) as src:
        items = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w") as dst:
        for info, data in items:
            dst.writestr(info, replace(info.filename, data))


def test_tensors_of_every_kind_come_back_exactly(tmp_path):
    base = torch.randn(4, 5)
    values = OrderedDict(
        f32=base, view=base[1:, 2:], t=base.t(), f16=torch.randn(3).half(), bf16=torch.randn(6).bfloat16(),
        i64=torch.arange(-3, 4), i8=torch.tensor([-128, 0, 127], dtype=torch.int8),
        b=torch.tensor([True, False]), scalar=torch.tensor(2.5, dtype=torch.float64), empty=torch.zeros(0, 3),
        c64=torch.randn(2, dtype=torch.cfloat),
        param=torch.nn.Parameter(torch.ones(2, 2)))
    torch.save({"state_dict": values, "n": 3, "s": "x", "size": torch.Size([1, 2]), "dtype": torch.float16,
                "set": {1, 2}, "bytes": b"\x00\xff"}, tmp_path / "a.ckpt")
    out = read_foreign_checkpoint(tmp_path / "a.ckpt")
    for key, value in values.items():
        got = out["state_dict"][key]
        assert got.dtype == value.dtype and got.shape == value.shape and got.stride() == value.stride(), key
        assert torch.equal(got, value.detach()), key
    sd = out["state_dict"]
    assert type(sd) is OrderedDict and not isinstance(sd["param"], torch.nn.Parameter)
    assert sd["view"].untyped_storage().data_ptr() == sd["f32"].untyped_storage().data_ptr()  # shared
    assert (out["n"], out["s"], out["size"], out["dtype"], out["set"], out["bytes"]) == (
        3, "x", torch.Size([1, 2]), torch.float16, {1, 2}, b"\x00\xff")


def test_no_pickled_code_runs_and_nothing_is_imported(tmp_path):
    marker = tmp_path / "PWNED"
    config_cls = _fake_module_class("fake_omegaconf_dictconfig", "DictConfig")
    try:
        cfg = config_cls()
        cfg.content = {"lr": 2e-4}
        torch.save({"state_dict": {"mdl.w": torch.ones(2)}, "evil": _Evil(marker),
                    "hyper_parameters": cfg, "sched": functools.partial(max, 1)}, tmp_path / "b.ckpt")
    finally:
        del sys.modules["fake_omegaconf_dictconfig"]
    out = read_foreign_checkpoint(tmp_path / "b.ckpt")
    assert not marker.exists()
    assert "fake_omegaconf_dictconfig" not in sys.modules
    assert isinstance(out["evil"], UnreadableObject) and out["evil"].qualname == "posix.system"
    assert out["evil"].args == (f"touch {marker}",)
    assert out["hyper_parameters"].qualname == "fake_omegaconf_dictconfig.DictConfig"
    assert out["hyper_parameters"].state == {"content": {"lr": 2e-4}}
    assert isinstance(out["sched"], UnreadableObject)
    assert torch.equal(out["state_dict"]["mdl.w"], torch.ones(2))


def test_tensors_saved_on_cuda_load_on_the_cpu(tmp_path):
    # torch.save of a CUDA tensor records the location "cuda:0"; emulate it by editing the pickle
    torch.save({"w": torch.arange(3.0)}, tmp_path / "c.ckpt")
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"

    def to_cuda(name, data):
        if name.endswith("data.pkl"):
            assert cpu in data
            return data.replace(cpu, cuda)
        return data

    _rewrite(tmp_path / "c.ckpt", to_cuda)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            torch.load(tmp_path / "c.ckpt", weights_only=True)
    out = read_foreign_checkpoint(tmp_path / "c.ckpt")
    assert out["w"].device.type == "cpu" and torch.equal(out["w"], torch.arange(3.0))


def test_big_endian_records(tmp_path):
    w = torch.tensor([1.0, -2.5, 3e8], dtype=torch.float32)
    torch.save({"w": w}, tmp_path / "d.ckpt")

    def to_big(name, data):
        if name.endswith("byteorder"):
            return b"big"
        if "/data/" in name:
            return np.frombuffer(data, "<f4").astype(">f4").tobytes()
        return data

    _rewrite(tmp_path / "d.ckpt", to_big)
    assert torch.equal(read_foreign_checkpoint(tmp_path / "d.ckpt")["w"], w)


def test_bad_files_raise_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        read_foreign_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="text.ckpt.*zip-format"):
        read_foreign_checkpoint(tmp_path / "text.ckpt")
    torch.save({"w": torch.ones(4)}, tmp_path / "e.ckpt")
    _rewrite(tmp_path / "e.ckpt", lambda name, data: data[:3] if "/data/" in name else data)
    with pytest.raises(ValueError, match="e.ckpt.*not a multiple"):
        read_foreign_checkpoint(tmp_path / "e.ckpt")
    with zipfile.ZipFile(tmp_path / "e.ckpt") as z:
        names = z.namelist()
    with zipfile.ZipFile(tmp_path / "f.ckpt", "w") as dst, zipfile.ZipFile(tmp_path / "e.ckpt") as src:
        for n in names:
            if "/data/" not in n:
                dst.writestr(n, src.read(n))
    with pytest.raises(ValueError, match="f.ckpt.*missing"):
        read_foreign_checkpoint(tmp_path / "f.ckpt")
    raw = (tmp_path / "e.ckpt").read_bytes()
    (tmp_path / "g.ckpt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="g.ckpt"):
        read_foreign_checkpoint(tmp_path / "g.ckpt")
