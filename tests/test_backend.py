"""Choosing NumPy or CuPy: without a usable GPU, one line that says what is missing."""

import sys
import types

import pytest

import scratchnst.backend as backend
from scratchnst.cli import main
from scratchnst.errors import ScratchNSTError


def fake_cupy(get_device_count):
    """A module that imports as ``cupy`` and answers ``cuda.runtime.getDeviceCount`` as told."""
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime), ndarray=type("ndarray", (), {}))


def raising(message):
    def get_device_count():
        raise RuntimeError(message)

    return get_device_count


CASES = {
    "no cupy": (None, "CuPy, which is not installed"),
    "old driver": (fake_cupy(raising("cudaErrorInsufficientDriver: CUDA driver version is insufficient for "
                                     "CUDA runtime version")), "NVIDIA driver is missing or older"),
    "no libcuda": (fake_cupy(raising("CUDA driver library (libcuda.so) not found")), "NVIDIA driver is missing"),
    "no device": (fake_cupy(raising("cudaErrorNoDevice: no CUDA-capable device is detected")),
                  "no CUDA device is usable"),
    "zero devices": (fake_cupy(lambda: 0), "there is no CUDA device"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_what_is_missing_is_named(monkeypatch, case):
    module, expected = CASES[case]
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", module)  # None: "import cupy" raises ImportError
    with pytest.raises(ScratchNSTError, match=expected) as e:
        backend.get_xp("cupy")
    assert "\n" not in str(e.value)
    assert backend.gpu_available() is False


def test_the_command_line_says_it_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", CASES["old driver"][0])
    code = main(["stylize", "chelsea", "starry_night", "--device", "gpu", "--size", "32", "--quiet",
                 "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and "driver" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_working_cupy_is_used(monkeypatch):
    module = fake_cupy(lambda: 1)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setitem(sys.modules, "cupy", module)
    assert backend.get_xp("cupy") is module and backend.gpu_available()
