"""How pixels become the network's input, and the checks on images handed to it.

The preprocessing (channel order, scale, mean, std) belongs to the weights:
Caffe-trained VGG expects BGR pixels 0..255 minus a mean pixel, torchvision's
expects RGB 0..1 standardised. A weights file stores it
(:mod:`scratchnst.files.weights`); the network applies it.
"""

from dataclasses import dataclass

import numpy as np

from scratchnst.backend import array_module, to_numpy
from scratchnst.errors import ScratchNSTError


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


def check_input_image(image, what="image"):
    """Check for a float image (3, H, W) in the network's input space; raise a one-line error otherwise.

    An RGB uint8 array is the likeliest mistake, so the message says how to convert one.
    """
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or len(shape) != 3 or shape[0] != 3 or dtype is None or dtype.kind != "f":
        is_uint = dtype is not None and dtype.kind == "u"
        hint = " (use net.preprocess(rgb) for an RGB uint8 image)" if is_uint else ""
        raise ScratchNSTError(
            f"{what} must be a float image (3, H, W) in the network's input space, got {dtype} {shape}{hint}"
        )
    return image
