"""Checkpoints of a stylization run: the image, the optimizer state, the settings.

A checkpoint is one ``.npz`` file (NumPy's zip of arrays; read back with
``allow_pickle=False``, so loading one never runs code). Arrays go in as arrays;
everything else (settings, counters, the RNG state, loss history) goes into one
JSON document stored under the key ``"meta"``. Nested state such as L-BFGS's
history, a list of arrays, is flattened to keys like ``optim/s/3`` with a JSON
placeholder ``{"__array__": "optim/s/3"}`` where the array was.

Writes are atomic (:mod:`scratchnst.files.atomic`), so an interrupted save leaves the
previous checkpoint intact.

Reading trusts nothing in the file. Every array's size is taken from its ``.npy``
header and checked against the bytes the zip really stores for it before any data is
read, so a few kilobytes cannot declare terabytes; and the state is checked against
the schema of a run (:func:`validate_run_state`) before :func:`scratchnst.stylize`
sees it. Whatever is wrong becomes one :class:`ScratchNSTError` line.
"""

import dataclasses
import json
import math
import struct
import tokenize
import types
import zipfile
import zlib
from pathlib import Path

import numpy as np

from scratchnst.backend import to_numpy
from scratchnst.errors import ScratchNSTError, one_line
from scratchnst.files.atomic import atomic_path

VERSION = 1
# What a damaged .npz can make zipfile, zlib, json and NumPy's header parser raise (a header's
# dict is tokenized and evaluated as a Python literal: hence SyntaxError and TokenError).
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, OverflowError, RecursionError, SyntaxError,
                tokenize.TokenError, struct.error, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error,
                NotImplementedError)
ARRAY_KINDS = "biuf"  # bool, int, unsigned, float: all a run stores ("U" only for the meta document)
HISTORY_TERMS = ("total", "content", "style", "tv")
# Items of the settings that are lists (the others have a plain type that dataclasses.fields names).
SETTINGS_LIST_ITEMS = {"styles": str, "content_layers": str, "style_layers": str,
                       "style_blend": float, "style_layer_weights": float}


def _flatten(value, prefix, arrays):
    """Replace arrays in a nested dict/list structure by placeholders; collect them."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0:
        arrays[prefix] = to_numpy(value)
        return {"__array__": prefix}
    if isinstance(value, dict):
        return {str(k): _flatten(v, f"{prefix}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flatten(v, f"{prefix}/{i}", arrays) for i, v in enumerate(value)]
    if hasattr(value, "item"):  # 0-d array or NumPy scalar
        return value.item()
    return value


def _unflatten(value, arrays):
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            name = value["__array__"]
            if not isinstance(name, str) or name not in arrays:
                raise ScratchNSTError(f"it refers to an array {name!r} that it does not hold")
            return arrays[name]
        return {k: _unflatten(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_unflatten(v, arrays) for v in value]
    return value


def save_checkpoint(path, state):
    """Write ``state`` (a nested dict of arrays, numbers, strings, lists) atomically."""
    path = Path(path)
    arrays = {}
    meta = _flatten(state, "state", arrays)
    doc = json.dumps({"version": VERSION, "state": meta})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(doc), **arrays)  # a file object: np.savez would add .npz to a name
    return path


# ---------------------------------------------------------------- reading, sizes first


def _member_header(zf, info, archive_size):
    """(key, shape, dtype) of one ``.npy`` member, from its header, once its size is proven.

    np.savez stores members uncompressed, so the bytes a header declares must be the
    bytes the archive holds for that member, and those lie inside the file: a header
    cannot make the reader allocate more than the file's own size.
    """
    name = info.filename
    if not name.endswith(".npy"):
        raise ScratchNSTError(f"member {name!r} is not a .npy array")
    key = name[: -len(".npy")]
    if info.compress_type != zipfile.ZIP_STORED:
        raise ScratchNSTError(f"array {key!r} is compressed, which np.savez never writes")
    if info.compress_size != info.file_size or info.header_offset + info.file_size > archive_size:
        raise ScratchNSTError(f"array {key!r} claims {info.file_size} bytes, more than the file holds")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ScratchNSTError(f"array {key!r} has .npy format version {version}")
        header = f.tell()
    if dtype.hasobject or dtype.kind not in (ARRAY_KINDS + "U" if key == "meta" else ARRAY_KINDS):
        raise ScratchNSTError(f"array {key!r} is of type {dtype}, which a checkpoint never holds")
    declared = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if declared != info.file_size - header:
        raise ScratchNSTError(f"array {key!r}: its header declares {shape} {dtype} ({declared} bytes), "
                              f"the file holds {info.file_size - header} bytes for it")
    return key, shape, dtype


def _read_arrays(path):
    """{key: array} of the .npz at ``path``, every member's size checked before any is read."""
    with zipfile.ZipFile(path) as zf:
        size = path.stat().st_size
        infos = {info.filename: info for info in zf.infolist()}
        keys = {name: _member_header(zf, info, size)[0] for name, info in infos.items()}
        if "meta" not in keys.values():
            raise ScratchNSTError("it has no meta document")
        arrays = {}
        for name, info in infos.items():
            with zf.open(info) as f:
                arrays[keys[name]] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


def _read_state(path):
    arrays = _read_arrays(path)
    meta = arrays.pop("meta")
    if meta.dtype.kind != "U" or meta.shape != ():
        raise ScratchNSTError(f"its meta is a {meta.dtype} array of shape {meta.shape}, not a JSON text")
    doc = json.loads(str(meta))
    if not isinstance(doc, dict):
        raise ScratchNSTError(f"its meta document is {_json_kind(doc)}, not a JSON object")
    if doc.get("version") != VERSION:
        raise ScratchNSTError(f"checkpoint version {doc.get('version')!r} is not supported (this reads {VERSION})")
    if "state" not in doc:
        raise ScratchNSTError("its meta document has no 'state'")
    return _unflatten(doc["state"], arrays)


def load_checkpoint(path, *, validate=True):
    """Read a checkpoint written by :func:`save_checkpoint`; one-line error if it is not one.

    Parameters
    ----------
    path : str or os.PathLike
    validate : bool
        Check the state against the schema of a run (:func:`validate_run_state`), as
        ``stylize(resume=...)`` needs it. False reads any state :func:`save_checkpoint`
        wrote (array sizes are checked either way).
    """
    path = Path(path)
    if not path.exists():
        raise ScratchNSTError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise ScratchNSTError(f"checkpoint {path} is not a regular file")
    try:
        state = _read_state(path)
        return validate_run_state(state) if validate else state
    except ScratchNSTError as e:
        raise ScratchNSTError(f"{path} is not a usable scratchnst checkpoint: {e}") from None
    except _READ_ERRORS as e:
        raise ScratchNSTError(f"{path} is not a readable scratchnst checkpoint ({one_line(e)})") from None


# ---------------------------------------------------------------- the schema of a run


def _json_kind(value):
    """What a JSON value is, in JSON's words: 'an array', 'a number', 'null'..."""
    kinds = ((type(None), "null"), (bool, "a boolean"), ((int, float), "a number"), (str, "a string"),
             (list, "an array"), (dict, "an object"))
    return next((name for t, name in kinds if isinstance(value, t)), f"a {type(value).__name__}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    """A finite JSON number (an int or a float, never a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fits(value, kind, item=None):
    """Whether a JSON ``value`` fits a settings field's annotation ``kind`` (``float | None``, ``list``...)."""
    if isinstance(kind, types.UnionType):
        return any(_fits(value, k, item) for k in kind.__args__)
    if kind is type(None):
        return value is None
    if kind is list:
        return isinstance(value, list) and all(_fits(v, item or (str, float)) for v in value)
    if isinstance(kind, tuple):
        return any(_fits(value, k) for k in kind)
    return {bool: lambda v: isinstance(v, bool), int: _is_int, float: _is_number,
            str: lambda v: isinstance(v, str)}.get(kind, lambda v: True)(value)


def _check_settings(d):
    """The checkpoint's settings as a validated :class:`~scratchnst.transfer.settings.Settings`."""
    from scratchnst.transfer.settings import Settings

    if not isinstance(d, dict):
        raise ScratchNSTError(f"its settings are {_json_kind(d)}, not an object")
    for f in dataclasses.fields(Settings):
        if f.name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ScratchNSTError(f"its settings lack {f.name!r}")
        elif not _fits(d[f.name], f.type, SETTINGS_LIST_ITEMS.get(f.name)):
            kind = f.type.__name__ if isinstance(f.type, type) else str(f.type)
            raise ScratchNSTError(f"its settings' {f.name!r} is {d[f.name]!r}, which is not of type {kind}")
    return Settings.from_dict(d).validate()


def _check_history(history, level):
    if not isinstance(history, dict):
        raise ScratchNSTError(f"its history is {_json_kind(history)}, not an object")
    for key in (*HISTORY_TERMS, "level"):
        if not isinstance(history.get(key), list):
            raise ScratchNSTError(f"its history lacks the list {key!r}")
    lengths = {len(history[key]) for key in (*HISTORY_TERMS, "level")}
    if len(lengths) != 1:
        raise ScratchNSTError(f"its history lists have different lengths {sorted(lengths)}")
    for key in HISTORY_TERMS:
        if not all(_is_number(v) for v in history[key]):
            raise ScratchNSTError(f"its history {key!r} holds something other than finite numbers")
    if not all(_is_int(v) and 0 <= v <= level for v in history["level"]):
        raise ScratchNSTError(f"its history 'level' holds something other than levels 0..{level}")


def _check_rng(state):
    """The state must set the PCG64 generator a run draws from (``np.random.default_rng``)."""
    try:
        np.random.default_rng().bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as e:
        raise ScratchNSTError(f"its RNG state is not one of NumPy's PCG64 ({one_line(e)})") from None


def _entry(opt, key):
    if key not in opt:
        raise ScratchNSTError(f"its optimizer state lacks {key!r}")
    return opt[key]


def _float_array(opt, key, shape):
    """``opt[key]``, a finite float array of ``shape`` (None: any (3, H, W) image)."""
    a = _entry(opt, key)
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        what = f"an array of {a.dtype}" if isinstance(a, np.ndarray) else _json_kind(a)
        raise ScratchNSTError(f"its optimizer {key!r} is {what}, not a float array")
    ok = (a.ndim == 3 and a.shape[0] == 3) if shape is None else a.shape == shape
    if not ok:
        raise ScratchNSTError(f"its optimizer {key!r} has shape {a.shape}, expected "
                              f"{'(3, H, W)' if shape is None else shape}")
    if not np.isfinite(a).all():
        raise ScratchNSTError(f"its optimizer {key!r} holds NaN or infinity")
    return a


def _check_counts(opt, keys):
    for key in keys:
        if not (_is_int(_entry(opt, key)) and opt[key] >= 0):
            raise ScratchNSTError(f"its optimizer {key!r} is {opt[key]!r}, not a count")


def _check_lbfgs(opt, shape, history_size):
    s = _entry(opt, "s")
    k = s.shape[0] if isinstance(s, np.ndarray) and s.ndim == 4 else -1
    if not 0 <= k <= history_size:
        raise ScratchNSTError(f"its L-BFGS 's' is not a stack of at most {history_size} steps of shape {shape}")
    _float_array(opt, "s", (k, *shape))
    _float_array(opt, "y", (k, *shape))
    rho = _entry(opt, "rho")  # a list of floats; an array in checkpoints before rho was kept as floats
    rho = rho.tolist() if isinstance(rho, np.ndarray) and rho.ndim == 1 else rho
    if not (isinstance(rho, list) and len(rho) == k and all(_is_number(r) for r in rho)):
        raise ScratchNSTError(f"its L-BFGS 'rho' is not {k} finite numbers, one per stored step")
    if not isinstance(_entry(opt, "converged"), bool) or not isinstance(_entry(opt, "message"), str):
        raise ScratchNSTError("its L-BFGS 'converged' is not a bool or its 'message' not a string")


def _check_adam(opt, shape):
    for key in ("m", "v"):
        if _entry(opt, key) is not None:  # None before the first step
            _float_array(opt, key, shape)
    _check_counts(opt, ("t",))


def _check_optimizer(opt, settings, level, long_side):
    if not isinstance(opt, dict):
        raise ScratchNSTError(f"its optimizer state is {_json_kind(opt)}, not an object")
    x = _float_array(opt, "x", None)
    if max(x.shape[1:]) != long_side or min(x.shape[1:]) < 1:
        raise ScratchNSTError(f"its optimizer 'x' has shape {x.shape}, not an image of long side {long_side} "
                              f"as level {level} of these settings has")
    _float_array(opt, "g", x.shape)
    if not _is_number(_entry(opt, "f")):
        raise ScratchNSTError(f"its optimizer 'f' is {opt['f']!r}, not a finite number")
    _check_counts(opt, ("n_iter", "n_evals"))
    if settings.optimizer == "lbfgs":
        _check_lbfgs(opt, x.shape, settings.history)
    else:
        _check_adam(opt, x.shape)


def validate_run_state(state):
    """Check that ``state`` is what ``stylize(resume=state)`` continues from; return it.

    The schema is what :func:`scratchnst.transfer.loop.save_checkpoint_of` writes:
    ``settings`` (valid :class:`~scratchnst.transfer.settings.Settings`), ``level`` (one
    of the levels those settings plan), ``history`` (equal-length lists ``total``,
    ``content``, ``style``, ``tv`` of finite numbers and ``level`` of levels), ``rng``
    (a PCG64 state) and ``optimizer`` (:meth:`LBFGS.state_dict` or
    :meth:`AdamLoop.state_dict`: ``x`` (3, H, W) with the level's long side, ``g``
    like it, ``s`` and ``y`` (k, 3, H, W) with k <= ``history``, ``rho`` k numbers, or
    Adam's ``m`` and ``v`` like ``x``).

    Raises
    ------
    ScratchNSTError
        One line naming the first entry that does not fit.
    """
    from scratchnst.transfer.levels import scale_sizes

    if not isinstance(state, dict):
        raise ScratchNSTError(f"its state is {_json_kind(state)}, not an object")
    for key in ("settings", "level", "history", "rng", "optimizer"):
        if key not in state:
            raise ScratchNSTError(f"its state lacks {key!r}")
    settings = _check_settings(state["settings"])
    sizes = scale_sizes(settings.size, settings.scales)
    level = state["level"]
    if not (_is_int(level) and 0 <= level < len(sizes)):
        raise ScratchNSTError(f"its level {level!r} is not one of the {len(sizes)} level(s) 0..{len(sizes) - 1} "
                              "its settings plan")
    _check_history(state["history"], level)
    _check_rng(state["rng"])
    _check_optimizer(state["optimizer"], settings, level, sizes[level])
    return state
