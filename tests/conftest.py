"""Shared fixtures: every test that takes ``xp`` runs once per available backend."""

from pathlib import Path

import numpy as np
import pytest

from scratchnst.backend import gpu_available
from scratchnst.network.fast import bands as band_sizes

DATA = Path(__file__).parent / "data"


def _backends():
    yield pytest.param("numpy", id="numpy")
    yield pytest.param(
        "cupy",
        id="cupy",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device"),
        ],
    )


@pytest.fixture(params=list(_backends()))
def xp(request):
    """The array module under test: numpy, and cupy where a GPU is present."""
    if request.param == "numpy":
        return np
    import cupy

    return cupy


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
