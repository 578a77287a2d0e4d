"""Reading, resizing and writing images, and the bundled example images.

Everything here works on ``uint8`` arrays shaped ``(H, W, 3)`` in RGB order, the
layout Pillow and image files use. Converting to the network's ``(3, H, W)`` float
input space is the job of the preprocessing code, not of this module.

* :func:`load_image` turns whatever Pillow can open (greyscale, 16-bit, palette,
  CMYK, images with transparency, rotated phone photos) into that one layout, and
  turns every way a file can be unusable into one :class:`ScratchNSTError` line
  (the decoding is :mod:`scratchnst.files.decode`).
* :func:`save_image` writes atomically, so an interrupted run never leaves a
  half-written picture behind, and stores run settings as PNG text chunks that
  :func:`read_png_metadata` reads back.
* :func:`bundled_image` / :func:`resolve_image_path` let the tutorials and the
  command line name the example images (``"astronaut"``, ``"starry_night"``)
  instead of paths; their provenance is in ``data/images/SOURCES.md``.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

from scratchnst.errors import ScratchNSTError, one_line
from scratchnst.files.atomic import atomic_path, check_writable
from scratchnst.files.decode import READ_ERRORS, open_decoded, pil_to_rgb_array

IMAGE_DIR = Path(__file__).resolve().parent.parent / "data" / "images"  # scratchnst/data/images
"""Folder of the bundled example images (setuptools installs the package unzipped,
so this is a real folder whose paths can be handed to Pillow or printed)."""

BUNDLED_SUFFIX = ".jpg"

# Extension -> Pillow format name for save_image. Only lossless PNG can carry the
# metadata faithfully; JPEG is offered because results are often shared as JPEG.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}

def _check_uint8_image(img, what="image"):
    """Raise unless ``img`` is a ``uint8`` NumPy array shaped ``(H, W, 3)``."""
    if not isinstance(img, np.ndarray):
        raise ScratchNSTError(f"{what} must be a NumPy uint8 array of shape (H, W, 3), got {type(img).__name__}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ScratchNSTError(f"{what} must be a uint8 array of shape (H, W, 3), got {img.dtype} of shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ScratchNSTError(f"{what} is empty (shape {img.shape})")


def load_image(path, long_side=None):
    """Read an image file as an RGB ``uint8`` array.

    Parameters
    ----------
    path : str or os.PathLike
        Any image file Pillow reads (PNG, JPEG, TIFF, GIF, BMP, WebP, ...). Only
        the first frame of an animation or multi-page file is used.
    long_side : int, optional
        If given, resize (down or up, Lanczos) so that ``max(H, W) == long_side``,
        keeping the aspect ratio.

    Returns
    -------
    img : ndarray, uint8, shape (H, W, 3)
        RGB, upright as a viewer shows it: the EXIF orientation tag that phones
        write instead of rotating the pixels is applied. Greyscale (``1``, ``L``,
        ``I;16``, ``I``, ``F``) is replicated to three channels, 16-bit and float
        data are scaled (not clipped) to 0..255, and transparency (``RGBA``,
        ``LA``, palette or colour-key transparency) is composited over white.

    Raises
    ------
    ScratchNSTError
        The file is missing, is a directory, is not an image, or is truncated
        or corrupt; the one-line message names the file.
    """
    with open_decoded(path) as im:
        try:
            im = ImageOps.exif_transpose(im)
        except READ_ERRORS as e:
            raise ScratchNSTError(f"cannot read image {path}: bad EXIF data ({one_line(e)})") from None
        img = pil_to_rgb_array(im, path)
    if long_side is not None:
        img = resize_long_side(img, long_side)
    return np.ascontiguousarray(img)


def resize_to(img, size):
    """Resize an RGB ``uint8`` image to ``size = (H, W)`` with a Lanczos filter.

    Parameters
    ----------
    img : ndarray, uint8, shape (H, W, 3)
    size : (int, int)
        Target ``(H, W)``, NumPy order (Pillow's own ``resize`` takes ``(W, H)``).

    Returns
    -------
    out : ndarray, uint8, shape (size[0], size[1], 3)
        A new array, also when the size is unchanged.
    """
    _check_uint8_image(img)
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ScratchNSTError(f"size must be (H, W), two positive integers, got {size!r}") from None
    if h < 1 or w < 1:
        raise ScratchNSTError(f"size must be (H, W), two positive integers, got {size!r}")
    if (h, w) == img.shape[:2]:
        return img.copy()
    # Lanczos (a windowed sinc) is the sharpest of Pillow's filters and, unlike
    # bilinear, antialiases when shrinking, so fine textures in a style image
    # do not alias into moire that the Gram matrices would then faithfully copy.
    out = Image.fromarray(img).resize((w, h), Image.Resampling.LANCZOS)
    return np.asarray(out)


def resize_long_side(img, long_side):
    """Resize so that ``max(H, W) == long_side``, keeping the aspect ratio.

    The short side becomes ``round(short * long_side / long)``, at least 1 px.

    Parameters
    ----------
    img : ndarray, uint8, shape (H, W, 3)
    long_side : int
        Positive target length of the longer side, in pixels.

    Returns
    -------
    out : ndarray, uint8, shape (H', W', 3)
    """
    _check_uint8_image(img)
    if isinstance(long_side, bool) or not isinstance(long_side, (int, np.integer)) or long_side < 1:
        raise ScratchNSTError(f"long_side must be a positive integer, got {long_side!r}")
    h, w = img.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if h >= w:
        size = (int(long_side), size[1])  # exact, whatever the rounding did
    else:
        size = (size[0], int(long_side))
    return resize_to(img, size)


READ_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")  # what image_files lists


def image_files(folder=None):
    """Image files of ``folder`` (sorted), or the bundled images when None."""
    folder = Path(IMAGE_DIR if folder is None else folder)
    if not folder.is_dir():
        raise ScratchNSTError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in READ_SUFFIXES and p.is_file())
    if not paths:
        raise ScratchNSTError(f"no images ({', '.join(READ_SUFFIXES)}) in {folder}")
    return paths


def bundled_images():
    """Names of the bundled example images, sorted (e.g. ``"starry_night"``)."""
    return sorted(p.stem for p in IMAGE_DIR.glob("*" + BUNDLED_SUFFIX))


def bundled_image(name):
    """Path of a bundled example image.

    Parameters
    ----------
    name : str
        ``"starry_night"`` or ``"starry_night.jpg"``; see :func:`bundled_images`.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ScratchNSTError
        Unknown name; the message lists the choices.
    """
    stem = str(name)
    if stem.lower().endswith(BUNDLED_SUFFIX):
        stem = stem[: -len(BUNDLED_SUFFIX)]
    names = bundled_images()
    if stem not in names:
        raise ScratchNSTError(f"no bundled image named {name!r}; choose one of {', '.join(names)}")
    return IMAGE_DIR / (stem + BUNDLED_SUFFIX)


def resolve_image_path(s):
    """An image argument as a path: an existing file, else a bundled image name.

    So the command line accepts both ``photo.jpg`` and ``astronaut``. A file in the
    working directory wins over a bundled image of the same name, so a user's
    own file is never silently replaced by an example.

    Parameters
    ----------
    s : str or os.PathLike

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ScratchNSTError
        Neither an existing file nor a bundled image name.
    """
    path = Path(s)
    if path.is_file():
        return path
    bare_name = path.name == str(s)  # "astronaut", not "photos/astronaut"
    if bare_name:
        try:
            return bundled_image(path.name)
        except ScratchNSTError:
            pass
    if path.is_dir():
        raise ScratchNSTError(f"expected an image file but {path} is a directory")
    raise ScratchNSTError(
        f"no image file {str(s)!r} and no bundled image of that name; bundled images: {', '.join(bundled_images())}"
    )


def _png_info(metadata):
    """A ``PngInfo`` holding ``metadata`` as text chunks, keys checked against the PNG spec."""
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        key = str(key)
        # PNG keywords are 1-79 Latin-1 characters; Pillow would fail obscurely.
        if not 1 <= len(key) <= 79 or not all(ord(c) < 256 for c in key):
            raise ScratchNSTError(f"PNG metadata key {key!r} must be 1-79 Latin-1 characters")
        # add_text writes tEXt, or iTXt (UTF-8) when the value is not Latin-1.
        info.add_text(key, str(value))
    return info


def check_image_output(path):
    """Refuse early, before minutes of work, an image output that cannot be written (one-line error)."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise ScratchNSTError(f"output {path} must end in {', '.join(SAVE_FORMATS)}")
    return check_writable(path)


def save_image(path, img, metadata=None):
    """Write an RGB ``uint8`` image atomically: the whole file or nothing.

    Through :func:`scratchnst.files.atomic.atomic_path`: an interrupted or failed write
    never leaves a truncated picture at ``path`` (an earlier file there survives
    intact), and the temporary file is removed on any failure.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.png``, ``.jpg`` or ``.jpeg`` (case-insensitive); the extension
        picks the format.
    img : ndarray, uint8, shape (H, W, 3)
        RGB pixels.
    metadata : dict, optional
        For PNG, each item becomes a text chunk (values through ``str``), read back
        by :func:`read_png_metadata`. JPEG has no key-value text, so the dict is
        stored as a JSON comment (COM segment) instead, for people to read; values
        too long for its 64 KB are left out (:func:`_jpeg_comment`).

    Raises
    ------
    ScratchNSTError
        Bad ``img``, unknown extension, bad metadata key, or the directory is
        missing or not writable; nothing is left at ``path``.
    """
    _check_uint8_image(img)
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ScratchNSTError(
            f"cannot save {path}: unknown image extension {path.suffix!r}; use one of {', '.join(SAVE_FORMATS)}"
        )
    options = {}
    if fmt == "PNG" and metadata:
        options["pnginfo"] = _png_info(metadata)
    if fmt == "JPEG":
        # 95 keeps stylized brush strokes free of visible blocking; 4:4:4 avoids
        # halving the colour resolution of thin coloured strokes.
        options.update(quality=95, subsampling=0)
        if metadata:
            options["comment"] = _jpeg_comment(metadata)

    pil = Image.fromarray(np.ascontiguousarray(img))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pil.save(f, format=fmt, **options)


JPEG_COMMENT_BYTES = 65533  # a COM segment's 16-bit length counts its own two bytes


def _jpeg_comment(metadata):
    """``metadata`` as a JSON comment that fits one JPEG COM segment.

    Very long settings (a dozen style images with long paths) would not fit, and the
    image matters more than its notes: the longest values are left out until it fits,
    and ``"omitted"`` names them (the run's checkpoint, or a PNG, keeps them all).
    """
    items = {str(k): str(v) for k, v in metadata.items()}
    omitted = []
    text = json.dumps(items)  # ASCII (non-ASCII is escaped), so characters are bytes
    while len(text) > JPEG_COMMENT_BYTES:
        longest = max(items, key=lambda k: len(items[k]))
        omitted.append(longest)
        del items[longest]
        text = json.dumps({**items, "omitted": ", ".join(omitted)[:1000]})
    return text


def read_png_metadata(path):
    """The text chunks (``tEXt``, ``zTXt``, ``iTXt``) of a PNG file as a dict.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    metadata : dict of str -> str
        Empty when the file has no text chunks.

    Raises
    ------
    ScratchNSTError
        The file is missing, unreadable, or not a PNG.
    """
    with open_decoded(path) as im:  # decoding also reaches text chunks after the pixels
        if im.format != "PNG":
            raise ScratchNSTError(f"{path} is a {im.format} file, not a PNG; it has no PNG text chunks")
        return {str(k): str(v) for k, v in im.text.items()}
