"""The choice between NumPy and CuPy, in one place.

Every op in scratchnst is written once, against the array module of its inputs:

    xp = array_module(x)   # numpy for numpy arrays, cupy for cupy arrays

so the same line runs on the CPU or the GPU. This is the only module that
imports CuPy; the import is optional (``pip install scratchnst[gpu]``).
"""

import numpy as np

from scratchnst.errors import ScratchNSTError

BACKENDS = ("numpy", "cupy")

_cupy = None  # imported on first use


def _import_cupy():
    """Import CuPy and check that a CUDA device is usable, or raise one clear error."""
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy
    except ImportError:
        raise ScratchNSTError(
            "the GPU (backend 'cupy') needs CuPy, which is not installed: pip install 'scratchnst[cuda12]' or "
            "'scratchnst[cuda13]', as nvidia-smi's CUDA Version says (or use --device cpu / backend='numpy')"
        ) from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 -- whatever CUDA raises, the user gets one line
        raise ScratchNSTError(_cuda_failure(e)) from None
    if n < 1:
        raise ScratchNSTError("CuPy and the CUDA driver are installed but there is no CUDA device; use --device cpu")
    _cupy = cupy
    return cupy


def _cuda_failure(e):
    """One line for a CUDA runtime error at start-up: which of driver or device is missing."""
    text = " ".join(str(e).split())
    if "driver" in text.lower() or "libcuda" in text.lower():  # cudaErrorInsufficientDriver, no libcuda.so
        return (f"CuPy is installed but the NVIDIA driver is missing or older than its CUDA ({text}); "
                "install or update the driver, or use --device cpu")
    return f"CuPy is installed but no CUDA device is usable ({text}); use --device cpu"


def get_xp(backend="numpy"):
    """The array module for a backend name: ``numpy`` or ``cupy``."""
    if backend == "numpy":
        return np
    if backend == "cupy":
        return _import_cupy()
    raise ScratchNSTError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device (never raises)."""
    try:
        _import_cupy()
    except ScratchNSTError:
        return False
    return True


def array_module(x):
    """``numpy`` or ``cupy``, whichever owns the array ``x``."""
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy
    if type(x).__module__.startswith("cupy"):
        return _import_cupy()
    return np


def backend_name(x):
    """``"numpy"`` or ``"cupy"``, whichever owns the array ``x``."""
    return "cupy" if array_module(x) is not np else "numpy"


def to_backend(x, backend="numpy", dtype=None):
    """Move (and optionally cast) an array to a backend; no copy when nothing changes."""
    xp = get_xp(backend)
    if xp is np:
        x = to_numpy(x)
        return np.asarray(x, dtype=dtype)
    return xp.asarray(x, dtype=dtype)


def to_numpy(x):
    """A NumPy array from a NumPy or CuPy array (copies device memory to the host)."""
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def to_float(x):
    """A Python float from a 0-d array of either backend (synchronises on the GPU)."""
    return float(to_numpy(x))


def device_memory_bytes():
    """Free memory on the current CUDA device, in bytes (CuPy must be usable)."""
    cupy = _import_cupy()
    free, _total = cupy.cuda.runtime.memGetInfo()
    return free
