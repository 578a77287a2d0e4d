"""Whatever Pillow can open, fully decoded, as one layout: RGB ``uint8`` (H, W, 3).

:func:`scratchnst.files.images.load_image` reads every file through here, so that
greyscale, 16-bit, palette, CMYK and transparent images all arrive the same way,
and every way a file can be unusable becomes one :class:`ScratchNSTError` line.
"""

import struct
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from scratchnst.errors import ScratchNSTError, one_line

# Errors Pillow raises for unreadable content: not an image, truncated data
# ("image file is truncated"), broken chunks (SyntaxError from the PNG parser),
# absurd sizes (DecompressionBombError), bad EXIF (ValueError/KeyError/...).
READ_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    struct.error,
    Image.DecompressionBombError,
)


@contextmanager
def open_decoded(path):
    """Open ``path`` with Pillow and decode it fully, or raise one clear error.

    Decoding here (``im.load()``), not lazily later, is what turns a truncated or
    corrupt file into an error at load time instead of a crash mid-run. A context
    manager, because Pillow keeps multi-frame files (GIF, TIFF) open after
    ``load()``; the ``with`` closes them once the caller has its pixels.
    """
    path = Path(path)
    if not path.exists():
        raise ScratchNSTError(f"image file not found: {path}")
    if path.is_dir():
        raise ScratchNSTError(f"expected an image file but {path} is a directory")
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise ScratchNSTError(f"{path} is not an image Pillow can read") from None
    except PermissionError:
        raise ScratchNSTError(f"cannot read {path}: permission denied") from None
    except READ_ERRORS as e:
        raise ScratchNSTError(f"cannot read image {path}: {one_line(e)}") from None
    with im:
        try:
            im.load()
        except READ_ERRORS as e:
            raise ScratchNSTError(f"cannot read image {path}: {one_line(e)}") from None
        yield im


def _high_bit_depth_to_uint8(im):
    """16-bit and 32-bit greyscale (modes ``I;16*``, ``I``, ``F``) to ``uint8`` (H, W).

    ``im.convert("L")`` would clip these to 0..255, which turns almost every
    16-bit photo white. Instead the full range is mapped linearly onto 0..255:

    * ``I;16``: ``round(v * 255 / 65535)``.
    * ``I`` (32-bit int; what TIFFs and older Pillow versions give for 16-bit
      data): treated as 16-bit when every value lies in 0..65535, otherwise the
      data have no agreed white point and min..max is stretched onto 0..255.
    * ``F`` (32-bit float): treated as 0..1 when every value lies there (the usual
      convention for float images), otherwise min..max is stretched.
    """
    v = np.asarray(im)
    if im.mode.startswith("I;16"):
        lo, hi = 0.0, 65535.0
    elif im.mode == "F" and not np.isfinite(v).all():
        raise ValueError("float image contains NaN or infinity")
    elif im.mode == "I" and v.min() >= 0 and v.max() <= 65535:
        lo, hi = 0.0, 65535.0
    elif im.mode == "F" and v.min() >= 0 and v.max() <= 1:
        lo, hi = 0.0, 1.0
    else:
        lo, hi = float(v.min()), float(v.max())
        hi = hi if hi > lo else lo + 1.0  # a constant image maps to black, not NaN
    v = (v.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def _composite_over_white(rgba):
    """``uint8`` (H, W, 4) straight-alpha RGBA -> (H, W, 3) RGB on a white page.

    Transparent pixels often store arbitrary colours (black, or leftovers from an
    editor) that merely dropping the alpha channel would expose. White is the
    background such images (logos, drawings, scans) are meant to be seen on, and a
    style transfer of them should look like what the viewer saw.
    ``out = (rgb * a + 255 * (255 - a)) / 255``, rounded; exact in integers.
    """
    rgb = rgba[..., :3].astype(np.uint32)
    a = rgba[..., 3:].astype(np.uint32)
    out = (rgb * a + 255 * (255 - a) + 127) // 255  # +127 rounds to nearest
    return out.astype(np.uint8)


def pil_to_rgb_array(im, path):
    """Any Pillow image -> ``uint8`` (H, W, 3) RGB array (see :func:`load_image`)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        try:
            grey = _high_bit_depth_to_uint8(im)
        except ValueError as e:
            raise ScratchNSTError(f"cannot read image {path}: {e}") from None
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        # convert("RGBA") resolves palette transparency and tRNS colour keys and
        # un-premultiplies RGBa/La, leaving one straight-alpha case to composite.
        return _composite_over_white(np.asarray(im.convert("RGBA")))
    if im.mode != "RGB":
        # CMYK uses Pillow's naive formula (ignores an embedded ICC profile);
        # good enough for style images, which are rarely CMYK anyway.
        try:
            im = im.convert("RGB")
        except ValueError as e:
            raise ScratchNSTError(f"cannot read image {path}: unsupported mode {im.mode!r} ({one_line(e)})") from None
    return np.asarray(im)
