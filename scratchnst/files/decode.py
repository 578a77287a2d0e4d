"""Whatever Pillow can open, fully decoded, as one layout: RGB ``uint8`` (H, W, 3).

:func:`scratchnst.files.images.load_image` reads every file through here, so that
greyscale, 16-bit, palette, CMYK and transparent images all arrive the same way,
and every way a file can be unusable becomes one :class:`ScratchNSTError` line.
"""

import struct
import warnings
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

# No image format packs more pixels into a byte than this: 1-bit pixels (8 to a byte)
# under deflate's greatest compression ratio, 1032:1.
MAX_PIXELS_PER_BYTE = 8 * 1032


def _check_plausible_size(im, path):
    """Refuse an image that claims more pixels than its file could ever encode.

    Only above Pillow's ``MAX_IMAGE_PIXELS``, where Pillow itself would warn of a
    decompression bomb: there a 196-byte PNG claiming 12000x12000 pixels is refused from
    its header, before 144 MB are allocated for them, while a real photo of that size
    (megabytes of data) loads without a word.
    """
    w, h = im.size
    limit, size = Image.MAX_IMAGE_PIXELS, path.stat().st_size
    if limit and w * h > limit and w * h > MAX_PIXELS_PER_BYTE * size:
        raise ScratchNSTError(f"cannot read image {path}: it claims {w}x{h} pixels in {size} bytes, more than "
                              "any image format holds (corrupt, or a decompression bomb)")


@contextmanager
def open_decoded(path):
    """Open ``path`` with Pillow and decode it fully, or raise one clear error.

    Decoding here (``im.load()``), not lazily later, is what turns a truncated or
    corrupt file into an error at load time instead of a crash mid-run. A context
    manager, because Pillow keeps multi-frame files (GIF, TIFF) open after
    ``load()``; the ``with`` closes them once the caller has its pixels.

    Pillow's own warnings are silenced while the file is open, the caller's block
    included (where EXIF is read): they report what Pillow then copes with (corrupt
    EXIF tags it skips; a large image, checked here by :func:`_check_plausible_size`),
    and on stderr they would only be noise around our one line.
    """
    path = Path(path)
    if not path.exists():
        raise ScratchNSTError(f"image file not found: {path}")
    if path.is_dir():
        raise ScratchNSTError(f"expected an image file but {path} is a directory")
    if not path.is_file():  # a FIFO or a device: opening it could block forever
        raise ScratchNSTError(f"cannot read image {path}: not a regular file")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        try:
            im = Image.open(path)
        except UnidentifiedImageError:
            raise ScratchNSTError(f"{path} is not an image Pillow can read") from None
        except PermissionError:
            raise ScratchNSTError(f"cannot read {path}: permission denied") from None
        except READ_ERRORS as e:
            raise ScratchNSTError(f"cannot read image {path}: {one_line(e)}") from None
        with im:
            _check_plausible_size(im, path)
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
