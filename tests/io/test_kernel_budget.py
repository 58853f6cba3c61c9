"""Tests of evdet.io.kernel_budget: when the DAT, EVT 2.0 and EVT 3.0 decoders use numpy and when they load
their numba kernels, and that a fresh process reading a clean real recording never imports numba."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from evdet.io import dat_records, evt2, evt3
from evdet.io.kernel_budget import KernelBudget
from evdet.io.raw import RawReader


def test_the_kernels_take_over_once_imported_or_after_the_budget(monkeypatch):
    budget = KernelBudget("evdet_test_kernels", 100)
    assert budget.numpy_first()
    budget.spend(99)
    assert budget.numpy_first()
    budget.spend(1)
    assert not budget.numpy_first()
    budget = KernelBudget("evdet_test_kernels", 100)
    monkeypatch.setitem(sys.modules, "evdet_test_kernels", object())
    assert not budget.numpy_first()


@pytest.mark.parametrize("codec, kernels", [(dat_records, "evdet.io.dat_kernels"),
                                            (evt2, "evdet.io.evt2_kernels"), (evt3, "evdet.io.evt3_kernels")])
def test_each_codec_counts_against_its_own_kernels(codec, kernels):
    assert codec.KERNELS.kernels == kernels and codec.KERNELS.budget >= 1 << 23
    __import__(kernels)  # the module exists (a misspelt name would keep the numpy path forever)


@pytest.mark.parametrize("name, word, type_shift, corrupt_word", [
    ("evt2_sample.raw", np.uint32, 28, (8 << 28) | 12345),
    ("evt3_sample.raw", np.uint16, 12, (8 << 12) | 100)])
@pytest.mark.parametrize("corrupt", [False, True])
def test_a_fresh_process_reads_a_real_sample_without_numba(real_data, tmp_path, name, word, type_shift,
                                                           corrupt_word, corrupt):
    """The point of the numpy paths: ``read_events`` of a clean EVT 2.0 / 3.0 recording in a fresh process
    never imports numba (its load costs more than the decode); one corrupt time-high word needs the
    kernel."""
    path = real_data / name
    if corrupt:
        data = bytearray(path.read_bytes())
        offset = RawReader(path).data_offset
        words = np.frombuffer(bytes(data[offset:]), dtype=word)
        size = np.dtype(word).itemsize
        i = offset + size * int(np.flatnonzero(words >> type_shift == 8)[20])
        data[i:i + size] = word(corrupt_word).tobytes()
        path = tmp_path / "corrupt.raw"
        path.write_bytes(bytes(data))
    code = ("import sys; from evdet.io import read_events; e = read_events(sys.argv[1]); "
            "print(len(e), 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    count, numba_loaded = out.stdout.split()
    assert int(count) > 100_000 and numba_loaded == str(corrupt)
