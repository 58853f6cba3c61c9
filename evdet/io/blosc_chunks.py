"""Reading Blosc-compressed chunked HDF5 datasets (RVT's and DSEC's event files) on several threads.

HDF5 decompresses chunks one at a time under its global lock, so ``dataset[a:b]`` uses one core. For a
1-D dataset whose only filter is Blosc (HDF5 filter 32001, as ``hdf5plugin`` writes and RVT / DSEC ship)
:class:`BloscChunks` reads the compressed chunks itself, with ``os.pread`` at the file addresses HDF5
reports (``H5Dchunk_iter``), and decompresses them with c-Blosc's thread-safe ``blosc_decompress_ctx``
from the Blosc filter library that ``hdf5plugin`` ships (the same code HDF5 would run). Both release the
GIL, so ranges of a dataset decode in parallel on Python threads. The values are those of
``dataset[a:b]``, byte for byte (tested against h5py).

:func:`blosc_chunks` returns None, and callers read through h5py, whenever anything differs from that
case: another filter or several, a file driver other than the default one, chunks that were never written
or stored unfiltered, or a Blosc library without ``blosc_decompress_ctx``.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import numpy as np

__all__ = ["BloscChunks", "blosc_chunks", "read_threads"]

BLOSC_FILTER = 32001
"""HDF5 filter id of Blosc (hdf5plugin's ``Blosc``)."""


def read_threads() -> int:
    """Threads a parallel read uses: the CPUs this process may run on, at most 8."""
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # not on Linux
        return max(1, min(8, os.cpu_count() or 1))


@functools.lru_cache(maxsize=1)
def _decompress_ctx():
    """c-Blosc's ``blosc_decompress_ctx`` from hdf5plugin's filter library, or None."""
    try:
        import hdf5plugin

        lib = ctypes.CDLL(str(Path(hdf5plugin.PLUGIN_PATH) / "libh5blosc.so"))
        fn = lib.blosc_decompress_ctx
    except (ImportError, OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class BloscChunks:
    """The chunks of one 1-D Blosc dataset: ``read(start, stop, out)`` fills ``out`` with
    ``dataset[start:stop]``.

    Args:
        fd: a file descriptor open for reading on the dataset's file (owned by the caller).
        offsets, sizes: file address and stored size (bytes) of chunk ``i`` (``int64 [num_chunks]``).
        chunk: rows per chunk. dtype: the dataset's dtype. path: its file, for messages.
    """

    def __init__(self, fd: int, offsets: np.ndarray, sizes: np.ndarray, chunk: int, dtype: np.dtype,
                 path: str):
        self.fd, self.offsets, self.sizes = fd, offsets, sizes
        self.chunk, self.dtype, self.path = int(chunk), np.dtype(dtype), path
        self._decompress = _decompress_ctx()

    def read(self, start: int, stop: int, out: np.ndarray) -> None:
        """``out[: stop - start] = dataset[start:stop]`` (``out`` contiguous, of the dataset's dtype): whole
        chunks are decompressed straight into ``out``, the partly needed ones at the ends into a spare.

        Raises:
            ValueError: a chunk does not decompress to a whole chunk (a corrupt file; names it).
        """
        c = self.chunk
        spare = None
        for j in range(start // c, (stop - 1) // c + 1):
            a, b = max(start, j * c), min(stop, (j + 1) * c)
            if a == j * c and b == (j + 1) * c:
                self._chunk(j, out[a - start:b - start])
                continue
            spare = self._chunk(j, np.empty(c, self.dtype) if spare is None else spare)
            out[a - start:b - start] = spare[a - j * c:b - j * c]

    def _chunk(self, j: int, dest: np.ndarray) -> np.ndarray:
        """Decompress chunk ``j`` into ``dest`` (contiguous, ``chunk`` rows); returns ``dest``."""
        whole = self.chunk * self.dtype.itemsize
        src = os.pread(self.fd, int(self.sizes[j]), int(self.offsets[j]))
        if self._decompress(src, dest.ctypes.data, whole, 1) != whole:
            raise ValueError(f"{self.path}: the Blosc chunk at byte offset {int(self.offsets[j])} does not "
                             f"decompress to {whole} bytes (corrupt file)")
        return dest


def blosc_chunks(dataset, fd: int, path: str) -> BloscChunks | None:
    """:class:`BloscChunks` of an h5py ``dataset`` (1-D, chunked, Blosc alone, every chunk written and
    filtered, default file driver, ``chunk_iter`` available), else None (read it through h5py)."""
    import h5py

    if _decompress_ctx() is None or dataset.chunks is None or dataset.ndim != 1 or not dataset.shape[0]:
        return None
    plist = dataset.id.get_create_plist()
    if plist.get_nfilters() != 1 or plist.get_filter(0)[0] != BLOSC_FILTER:
        return None
    f = dataset.file
    if f.id.get_access_plist().get_driver() != h5py.h5fd.SEC2 or not hasattr(dataset.id, "chunk_iter"):
        return None
    chunk = int(dataset.chunks[0])
    count = -(-int(dataset.shape[0]) // chunk)
    offsets = np.full(count, -1, dtype=np.int64)
    sizes = np.zeros(count, dtype=np.int64)
    masks = []

    def visit(info) -> None:
        j = int(info.chunk_offset[0]) // chunk
        offsets[j], sizes[j] = int(info.byte_offset), int(info.size)
        masks.append(int(info.filter_mask))

    dataset.id.chunk_iter(visit)
    if (offsets < 0).any() or any(masks):
        return None
    return BloscChunks(fd, offsets, sizes, chunk, dataset.dtype, path)  # offsets: addresses in the file
