"""Shared fixtures: every test that takes ``xp`` runs once per backend.

The backends are NumPy; the strict CPU stand-in for CuPy (tests/strict_cupy.py), which
runs the package's CuPy code path on every machine, CI included; and real CuPy where
a CUDA device is present.
"""

from pathlib import Path

import numpy as np
import pytest

from scratchnst.backend import gpu_available
from scratchnst.network.fast import bands as band_sizes

DATA = Path(__file__).parent / "data"


def _backends():
    yield pytest.param("numpy", id="numpy")
    yield pytest.param("strict", id="strict-cupy")
    yield pytest.param(
        "cupy",
        id="cupy",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device"),
        ],
    )


@pytest.fixture(params=list(_backends()))
def xp(request, monkeypatch):
    """The array module under test: numpy, the strict stand-in for CuPy, and cupy where a GPU is present."""
    if request.param == "numpy":
        return np
    if request.param == "strict":
        return use_strict_cupy(monkeypatch)
    import cupy

    return cupy


def use_strict_cupy(monkeypatch):
    """Route every CuPy code path of scratchnst to the stand-in for this test; returns it, counters reset."""
    import strict_cupy

    import scratchnst.backend

    monkeypatch.setattr(scratchnst.backend, "_cupy", strict_cupy)
    strict_cupy.reset_counters()
    return strict_cupy


@pytest.fixture(params=[p for p in _backends() if p.values[0] != "numpy"])
def device_xp(request, monkeypatch):
    """The GPU's array module: the strict stand-in everywhere, and real CuPy where a CUDA device is present."""
    if request.param == "strict":
        return use_strict_cupy(monkeypatch)
    import cupy

    return cupy


@pytest.fixture
def strict_xp(monkeypatch):
    """The strict stand-in for CuPy alone (for tests of the GPU path that need no NumPy twin)."""
    return use_strict_cupy(monkeypatch)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=[False, True], ids=["one-band", "many-bands"])
def bands(request, monkeypatch):
    """Run a fast-conv test with the usual band size, and with bands of a single row, so
    that several bands and a short last band are exercised even on tiny images."""
    if request.param:
        monkeypatch.setattr(band_sizes, "BAND_BYTES", {"numpy": 1, "cupy": 1})
        monkeypatch.setattr(band_sizes, "MIN_BAND_PIXELS", 1)
    return request.param
