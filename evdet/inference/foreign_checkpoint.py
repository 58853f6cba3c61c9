"""Read a PyTorch checkpoint written by someone else's code without running any of its pickled code.

Checkpoints of other training frameworks (RVT's PyTorch Lightning ``.ckpt``) hold, besides their tensors,
pickled Python objects: an OmegaConf config, optimizer and scheduler state, callbacks. Unpickling them
with ``pickle`` imports and calls whatever they name; ``torch.load(weights_only=True)`` refuses the whole
file. :func:`read_foreign_checkpoint` reads the zip archive ``torch.save`` writes (PyTorch >= 1.6) with a
restricted unpickler instead:

* tensors are rebuilt from the archive's storage records by evdet's own code (any dtype PyTorch saves,
  either byte order, on the CPU whatever device they were saved from; tensors sharing a storage share
  it here too);
* plain containers and values come back as themselves (``dict``, ``OrderedDict``, ``list``, ``tuple``,
  ``set``, numbers, strings, ``torch.Size``, ``torch.dtype``);
* every other global the pickle names (a class, a function: ``omegaconf.dictconfig.DictConfig``,
  ``os.system``, ...) is **never imported**: it becomes an :class:`UnreadableObject` subclass named after
  it; calling it, instantiating it or setting its state only records the arguments.

So nothing in the file is executed, and no framework (Lightning, omegaconf) needs to be installed.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evdet.inference.checkpoint import check_checkpoint_file

__all__ = ["UnreadableObject", "read_foreign_checkpoint"]

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexDoubleStorage": torch.complex128,
    "ComplexFloatStorage": torch.complex64, "UntypedStorage": torch.uint8,
}


class UnreadableObject:
    """Stand-in for a pickled object of a class (or the result of a function) that evdet does not load.

    Attributes:
        qualname: ``"module.name"`` of the global the pickle named (class attribute of each stand-in class).
        args, kwargs: the arguments the pickle passed to it.
        state: what the pickle set as its state (``__setstate__``), or None.
        items: what the pickle appended or assigned to it (list or ``(key, value)`` pairs).
    """

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> UnreadableObject:
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state, obj.items = args, kwargs, None, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def __repr__(self) -> str:
        return f"<unreadable {self.qualname}>"


class _Storage:
    """One storage record of the archive: raw little/big-endian bytes and the dtype they hold."""

    def __init__(self, data: bytes, dtype: torch.dtype, big_endian: bool):
        self.data, self.dtype, self.big_endian = data, dtype, big_endian
        self._flat: torch.Tensor | None = None

    def flat(self) -> torch.Tensor:
        """The whole storage as a 1-D CPU tensor (built once)."""
        if self._flat is None:
            if len(self.data) == 0:
                self._flat = torch.empty(0, dtype=self.dtype)
            else:
                data = bytearray(self.data)
                item = torch.empty(0, dtype=self.dtype).element_size()
                if self.dtype.is_complex:
                    item //= 2  # real and imaginary parts are swapped separately
                if self.big_endian and item > 1:
                    data = bytearray(np.frombuffer(self.data, np.uint8).reshape(-1, item)[:, ::-1].tobytes())
                self._flat = torch.frombuffer(data, dtype=self.dtype)
        return self._flat


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> Any:
    """``torch._utils._rebuild_tensor(_v2)``: a view of ``storage`` (a copy-free ``as_strided``)."""
    if not isinstance(storage, _Storage):
        return UnreadableObject.__new__(_stand_in("torch._utils", "_rebuild_tensor_v2"), storage)
    return torch.as_strided(storage.flat(), tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    """``torch._utils._rebuild_parameter(_with_state)``: the parameter's tensor."""
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    """``torch._tensor._rebuild_from_type_v2``: only the tensor rebuilt by ``func`` (subclass dropped)."""
    return func(*args) if func in (_rebuild_tensor, _rebuild_parameter) else UnreadableObject.__new__(
        _stand_in("torch._tensor", "_rebuild_from_type_v2"), func, new_type, args, state)


def _encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (latin-1 only)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Size"): torch.Size,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "slice"): slice,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _encode,
}

_STAND_INS: dict[tuple[str, str], type] = {}


def _stand_in(module: str, name: str) -> type:
    key = (module, name)
    if key not in _STAND_INS:
        _STAND_INS[key] = type(f"Unreadable[{module}.{name}]", (UnreadableObject,),
                               {"qualname": f"{module}.{name}", "__module__": __name__})
    return _STAND_INS[key]


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler of one ``data.pkl``: storages from the archive, globals from :data:`_ALLOWED` or
    stand-ins."""

    def __init__(self, file: io.BufferedIOBase, archive: zipfile.ZipFile, prefix: str, big_endian: bool,
                 source: str):
        super().__init__(file)
        self.archive, self.prefix, self.big_endian, self.source = archive, prefix, big_endian, source
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names, as protocol-2 pickles (torch.save's default) write builtins
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return ("storage-type", _STORAGE_DTYPES[name])
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return _stand_in(module, name)

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"{self.source}: unsupported persistent id {pid!r:.80}")
        storage_type, key = pid[1], str(pid[2])
        if isinstance(storage_type, tuple) and storage_type[:1] == ("storage-type",):
            dtype = storage_type[1]
        elif isinstance(storage_type, torch.dtype):  # some writers store the dtype itself
            dtype = storage_type
        else:
            raise pickle.UnpicklingError(f"{self.source}: unknown storage type {storage_type!r} of record "
                                         f"{key}")
        if key not in self.storages:
            name = f"{self.prefix}data/{key}"
            try:
                data = self.archive.read(name)
            except KeyError as exc:
                raise ValueError(f"{self.source}: storage record {name} is missing (truncated file?)") \
                    from exc
            item = torch.empty(0, dtype=dtype).element_size()
            if len(data) % item:
                raise ValueError(f"{self.source}: storage record {name} has {len(data)} bytes, not a "
                                 f"multiple of {item} ({dtype})")
            self.storages[key] = _Storage(data, dtype, self.big_endian)
        return self.storages[key]


def read_foreign_checkpoint(path: str | os.PathLike) -> Any:
    """The object saved in a zip-format ``torch.save`` file, read without executing pickled code.

    Args:
        path: the checkpoint (``.ckpt`` / ``.pt`` / ``.pth`` of PyTorch >= 1.6).

    Returns:
        the saved object: tensors on the CPU, plain containers as themselves, everything else as
        :class:`UnreadableObject` stand-ins (module docstring).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a zip-format PyTorch file (e.g. the legacy format of torch < 1.6, a TorchScript
            archive, a truncated download), or a corrupt pickle or storage record; the message names the
            file.
    """
    path = Path(path)
    check_checkpoint_file(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a zip-format PyTorch checkpoint (torch.save of PyTorch >= 1.6); "
                         "legacy or truncated files cannot be read safely")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
            if len(pickles) != 1:
                raise ValueError(f"{path}: expected one data.pkl in the archive, found {pickles or 'none'}"
                                 " (a TorchScript archive or not a torch.save file?)")
            prefix = pickles[0][: -len("data.pkl")]
            order_name = prefix + "byteorder"
            order = archive.read(order_name).decode().strip() if order_name in archive.namelist() else \
                sys.byteorder
            if order not in ("little", "big"):
                raise ValueError(f"{path}: unknown byte order {order!r}")
            with archive.open(pickles[0]) as f:
                unpickler = _RestrictedUnpickler(io.BufferedReader(f), archive, prefix, order == "big",
                                                 str(path))
                return unpickler.load()
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, TypeError, IndexError,
            AttributeError, OSError) as exc:
        raise ValueError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
