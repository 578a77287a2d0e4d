"""Read tensors out of PyTorch checkpoints without PyTorch and without running a pickle.

``torch.save`` writes a pickle, and a pickle is a small program: loading one with
``pickle.load`` can call any importable function (``os.system`` included). This module
reads the two formats ``torch.save`` has written since 2017 with a restricted
unpickler: its ``find_class`` admits only the handful of globals a plain state dict
needs, each mapped to a harmless function of ours, and refuses everything else
before anything runs.

Formats
-------
Legacy (``torch.save`` before 1.6, or ``_use_new_zipfile_serialization=False``), five
pickles and raw bytes, one after another in one stream::

    pickle  magic number 0x1950a86a20f9469cfc6c
    pickle  protocol version 1001
    pickle  sys_info dict (byte order, type sizes)
    pickle  the object; a storage is a persistent id
            ('storage', storage_type, key, location, numel, view_metadata)
    pickle  list of storage keys, in the order their bytes follow
    for each key: int64 element count, then count * itemsize raw bytes

Zip (``torch.save`` since 1.6): a zip archive ``<name>/data.pkl`` (the object; a
storage is ``('storage', storage_type, key, location, numel)``), one member
``<name>/data/<key>`` of raw bytes per storage, and optionally ``<name>/byteorder``.

A tensor is pickled as ``torch._utils._rebuild_tensor_v2(storage, storage_offset,
size, stride, requires_grad, backward_hooks[, metadata])`` (``_rebuild_tensor`` in
very old files): a strided view into a flat storage, offsets and strides counted in
elements. We rebuild it with ``numpy.lib.stride_tricks.as_strided`` after checking
that every element it addresses lies inside the storage, then copy it into a
C-contiguous array of its own.
"""

import io
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from scratchnst.errors import ScratchNSTError, one_line

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK\x03\x04"

# Storage class name -> little-endian dtype of one element. bfloat16 has no NumPy
# dtype: its elements are read as uint16 and widened to float32 (exactly: a bfloat16
# is the top half of a float32).
STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "ByteStorage": "u1",
    "CharStorage": "i1",
    "ShortStorage": "<i2",
    "IntStorage": "<i4",
    "LongStorage": "<i8",
    "BoolStorage": "u1",
}


class _StorageType(NamedTuple):
    """What ``torch.FloatStorage`` etc. unpickle to: a name and nothing callable."""

    name: str


class _StorageRef(NamedTuple):
    """A storage named in the pickle; its bytes are read after the pickle is done.

    ``offset`` and ``numel`` select a slice of the root storage ``key`` (old legacy
    files pickled views of storages; everything newer has ``offset = 0``).
    """

    key: str
    type_name: str
    numel: int
    offset: int = 0


class _TensorRef(NamedTuple):
    """A tensor as the pickle describes it: a strided view of a storage, in elements."""

    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple


def _int_tuple(x, what):
    if not isinstance(x, tuple) or not all(type(v) is int and v >= 0 for v in x):
        raise ScratchNSTError(f"{what} is {x!r}, not a tuple of non-negative ints: "
                              "not a plain tensor checkpoint")
    return x


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records, never computes.

    ``requires_grad``, ``backward_hooks`` and ``metadata`` do not change the values.
    """
    if not isinstance(storage, _StorageRef):
        raise ScratchNSTError("a tensor's storage is not a storage reference: "
                              "not a plain tensor checkpoint")
    if type(storage_offset) is not int or storage_offset < 0:
        raise ScratchNSTError(f"tensor storage offset {storage_offset!r} is not a "
                              "non-negative int")
    size, stride = _int_tuple(size, "tensor size"), _int_tuple(stride, "tensor stride")
    if len(size) != len(stride):
        raise ScratchNSTError(f"tensor size {size} and stride {stride} differ in length")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Stand-in for the pre-0.4 ``torch._utils._rebuild_tensor``."""
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


# (module, name) -> what the unpickler gets instead. Nothing here can touch the
# system: two recorders of ours, inert markers, and OrderedDict (a dict).
ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


def allowed_global(module, name):
    """Our stand-in for the global ``module.name``, or a one-line refusal."""
    try:
        return ALLOWED_GLOBALS[(module, name)]
    except (KeyError, TypeError):
        raise ScratchNSTError(
            f"scratchnst refuses to load global '{module}.{name}' from this pickle: "
            "not a plain tensor checkpoint (nothing was executed)"
        ) from None


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that loads only plain tensor state dicts.

    ``find_class`` is the only door through which a pickle reaches a callable (the
    GLOBAL, STACK_GLOBAL, INST, OBJ and EXT opcodes all go through it), so refusing
    there refuses before anything runs.

    Parameters
    ----------
    file : binary file
        The pickle stream.
    storages : dict or None
        Filled with ``key -> _StorageRef`` for every persistent id met; None for the
        small header pickles, which may not name storages.
    legacy : bool
        Persistent ids are 6-tuples with view metadata (legacy) or 5-tuples (zip).
    """

    def __init__(self, file, storages=None, legacy=False):
        super().__init__(file)
        self.storages = storages
        self.legacy = legacy

    def find_class(self, module, name):
        return allowed_global(module, name)

    def persistent_load(self, pid):
        n = 6 if self.legacy else 5
        if (self.storages is None or not isinstance(pid, tuple) or len(pid) not in (5, n)
                or pid[0] != "storage" or not isinstance(pid[1], _StorageType)
                or not isinstance(pid[2], str) or type(pid[4]) is not int or pid[4] < 0):
            raise ScratchNSTError(f"unexpected persistent id {_short_repr(pid)}: "
                                  "not a plain tensor checkpoint")
        _, storage_type, key, _location, numel = pid[:5]
        root = _StorageRef(key, storage_type.name, numel)
        seen = self.storages.setdefault(key, root)
        if seen != root:
            raise ScratchNSTError(f"storage {key!r} is declared twice, as {seen.type_name} "
                                  f"of {seen.numel} and {root.type_name} of {root.numel}")
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return root
        # Pre-0.4 files pickled views of storages: (view_key, offset, view_numel).
        if (not isinstance(view, tuple) or len(view) != 3
                or type(view[1]) is not int or type(view[2]) is not int
                or view[1] < 0 or view[2] < 0 or view[1] + view[2] > numel):
            raise ScratchNSTError(f"bad storage view {_short_repr(view)} of storage {key!r}")
        return root._replace(offset=view[1], numel=view[2])


def _short_repr(x, limit=80):
    r = repr(x)
    return r if len(r) <= limit else r[:limit] + "..."


def _check_opcodes(f):
    """Walk one pickle's opcodes from ``f`` without running them; raise on what is unsafe.

    Two things the C unpickler would do before ``find_class`` is ever asked are
    checked here: a ``LONG_BINPUT 4000000000`` makes it grow its memo table to that
    many slots (tens of GB from a ten-byte pickle), and a global outside the
    allowlist is refused before any object is built. Walking also checks that every
    length field is backed by bytes in the file, so no later read is sized by a lie.
    """
    n_ops = 0
    for op, arg, _pos in pickletools.genops(f):
        n_ops += 1
        # A pickler numbers memo slots 0, 1, 2, ...: one per PUT so far at most.
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= arg < n_ops:
            raise ScratchNSTError(f"pickle memo index {arg} at opcode {n_ops}: corrupt or hostile checkpoint")
        if op.name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            raise ScratchNSTError("pickle refers to out-of-band buffers: not a plain tensor checkpoint")
        if op.name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            allowed_global(module, name)


def _unpickle(data_or_file, storages=None, legacy=False):
    """Run the restricted unpickler, turning whatever a malformed stream raises into one line.

    The pickle machinery is driven by the file's bytes, so any exception it raises
    (UnpicklingError, EOFError, TypeError from a REDUCE on a marker, RecursionError,
    ...) is the file's fault, not ours: all become ScratchNSTError. Our own
    ScratchNSTErrors (a refused global) pass through unchanged.
    """
    f = io.BytesIO(data_or_file) if isinstance(data_or_file, bytes) else data_or_file
    start = f.tell()
    try:
        _check_opcodes(f)
        f.seek(start)
        return RestrictedUnpickler(f, storages, legacy).load()
    except ScratchNSTError:
        raise
    except Exception as e:  # noqa: BLE001 -- see docstring
        raise ScratchNSTError(f"corrupt or truncated pickle ({one_line(e)})") from None


def _storage_array(raw, type_name, byteorder):
    """Flat array of one storage's elements from its raw bytes, in native byte order."""
    dtype = np.dtype(STORAGE_DTYPES[type_name])
    if byteorder == "big":
        dtype = dtype.newbyteorder(">")
    a = np.frombuffer(raw, dtype=dtype)
    if type_name == "BFloat16Storage":
        return (a.astype(np.uint32) << 16).view(np.float32)
    if type_name == "BoolStorage":
        return a != 0  # any nonzero byte is True, as in torch
    return a.astype(dtype.newbyteorder("="), copy=False)


def _materialize(name, t, arrays):
    """The tensor ``t`` as a C-contiguous array of its own, after bounds checks.

    Parameters
    ----------
    name : str
        State-dict key, for error messages.
    t : _TensorRef
    arrays : dict
        Root storage key -> flat array of all its elements.

    Notes
    -----
    Element ``(i_0, ..., i_{n-1})`` of the tensor is storage element
    ``offset + sum_k i_k * stride_k``; with non-negative strides the largest is
    ``offset + sum_k (size_k - 1) * stride_k``, so checking that one index against the
    storage length checks them all. Tensors with more elements than their storage
    (stride-0 expanded views) are refused, so that a few bytes of pickle cannot ask
    for terabytes.
    """
    root = arrays[t.storage.key]
    storage = root[t.storage.offset:t.storage.offset + t.storage.numel]
    numel = int(np.prod(t.size, dtype=object)) if t.size else 1
    if numel == 0:
        return np.empty(t.size, dtype=storage.dtype)
    # A stride along a length-1 axis is never used; zero it so it cannot overflow.
    stride = tuple(0 if n == 1 else s for n, s in zip(t.size, t.stride, strict=True))
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, stride, strict=True))
    if last >= len(storage) or numel > len(storage):
        raise ScratchNSTError(
            f"tensor {name!r} (offset {t.offset}, size {t.size}, stride {t.stride}) reaches "
            f"past its storage of {len(storage)} elements: corrupt checkpoint")
    view = np.lib.stride_tricks.as_strided(
        storage[t.offset:], shape=t.size,
        strides=tuple(s * storage.itemsize for s in stride), writeable=False)
    return view.copy(order="C")


def _state_dict(obj, arrays):
    if not isinstance(obj, dict):
        raise ScratchNSTError(f"the checkpoint holds a {type(obj).__name__}, "
                              "not a dict of tensors (a state dict)")
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, _TensorRef):
            raise ScratchNSTError(f"entry {_short_repr(key)} of the checkpoint is a "
                                  f"{type(value).__name__}, not a tensor: not a plain state dict")
        out[key] = _materialize(key, value, arrays)
    return out


def _load_legacy(data):
    """Parse the legacy (non-zip) serialization from its bytes."""
    f = io.BytesIO(data)
    if _unpickle(f) != LEGACY_MAGIC:
        raise ScratchNSTError("not a PyTorch checkpoint (no legacy magic number, not a zip)")
    version = _unpickle(f)
    if version != LEGACY_PROTOCOL:
        raise ScratchNSTError(f"unsupported legacy PyTorch protocol version {version!r}")
    sys_info = _unpickle(f)
    if not isinstance(sys_info, dict):
        raise ScratchNSTError("corrupt legacy PyTorch checkpoint (bad sys_info)")
    byteorder = "little" if sys_info.get("little_endian", True) else "big"
    storages = {}
    obj = _unpickle(f, storages, legacy=True)
    keys = _unpickle(f)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ScratchNSTError("corrupt legacy PyTorch checkpoint (bad storage key list)")
    arrays = {}
    count = struct.Struct("<q" if byteorder == "little" else ">q")
    for key in keys:
        ref = storages.get(key)
        if ref is None or key in arrays:
            raise ScratchNSTError(f"corrupt legacy PyTorch checkpoint (storage key {key!r} "
                                  "not declared in the pickle, or listed twice)")
        head = f.read(count.size)
        if len(head) < count.size:
            raise ScratchNSTError(f"truncated PyTorch checkpoint (storage {key!r} missing)")
        (numel,) = count.unpack(head)
        if numel != ref.numel:
            raise ScratchNSTError(f"corrupt legacy PyTorch checkpoint (storage {key!r} has "
                                  f"{numel} elements, the pickle says {ref.numel})")
        nbytes = numel * np.dtype(STORAGE_DTYPES[ref.type_name]).itemsize
        raw = f.read(nbytes)
        if len(raw) < nbytes:
            raise ScratchNSTError(f"truncated PyTorch checkpoint (storage {key!r} has "
                                  f"{len(raw)} of {nbytes} bytes)")
        arrays[key] = _storage_array(raw, ref.type_name, byteorder)
    missing = sorted(set(storages) - set(arrays))
    if missing:
        raise ScratchNSTError(f"corrupt legacy PyTorch checkpoint (storage {missing[0]!r} "
                              "has no data)")
    return _state_dict(obj, arrays)


def _load_zip(zf):
    """Parse the zip serialization from an open ``zipfile.ZipFile``."""
    pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        raise ScratchNSTError("a zip file, but not a PyTorch checkpoint (no <name>/data.pkl)")
    prefix = pkls[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in zf.namelist():
        byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise ScratchNSTError(f"unknown byte order {byteorder!r} in PyTorch checkpoint")
    storages = {}
    obj = _unpickle(zf.read(pkls[0]), storages, legacy=False)
    arrays = {}
    for key, ref in storages.items():
        member = f"{prefix}data/{key}"
        nbytes = ref.numel * np.dtype(STORAGE_DTYPES[ref.type_name]).itemsize
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise ScratchNSTError(f"PyTorch checkpoint lacks the data of storage {key!r} "
                                  f"({member})") from None
        # Checked before reading, so a lying header cannot make us inflate a zip bomb.
        if info.file_size != nbytes:
            raise ScratchNSTError(f"storage {key!r} has {info.file_size} bytes, the pickle "
                                  f"says {nbytes}: corrupt checkpoint")
        arrays[key] = _storage_array(zf.read(member), ref.type_name, byteorder)
    return _state_dict(obj, arrays)


def _read_all(path_or_fileobj):
    if hasattr(path_or_fileobj, "read"):
        return path_or_fileobj.read()
    try:
        with open(path_or_fileobj, "rb") as f:
            return f.read()
    except OSError as e:
        raise ScratchNSTError(f"cannot read {os.fspath(path_or_fileobj)!s}: "
                              f"{e.strerror or one_line(e)}") from None


def load_state_dict(path_or_fileobj):
    """Read a PyTorch state dict (legacy or zip serialization) without PyTorch.

    Parameters
    ----------
    path_or_fileobj : str, os.PathLike or binary file object
        A file written by ``torch.save(state_dict, ...)``.

    Returns
    -------
    dict of str to numpy.ndarray
        Every tensor, in file order, as a C-contiguous array that owns its memory,
        in the tensor's dtype (bfloat16 widened to float32, bool as bool).

    Raises
    ------
    ScratchNSTError
        One line, for a missing, truncated, corrupt or wrong-format file, and for any
        pickle that names a global outside the allowlist (nothing from it is run).
    """
    # Read the whole file: the legacy format is one sequential stream anyway, and a
    # BytesIO caps every read at what is there, so a corrupt length field in the
    # pickle cannot make the reader allocate more than the file's size.
    data = _read_all(path_or_fileobj)
    if not isinstance(data, bytes):
        raise ScratchNSTError("load_state_dict needs a binary file")
    if not data:
        raise ScratchNSTError("empty file: not a PyTorch checkpoint")
    if data.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return _load_zip(zf)
        except ScratchNSTError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
                OverflowError, struct.error, NotImplementedError, RuntimeError) as e:
            # What zipfile raises on a damaged archive: zlib.error for a bad deflated
            # member, OverflowError for an absurd header offset, RuntimeError for an
            # encrypted member, NotImplementedError for an unknown compression method.
            raise ScratchNSTError(f"corrupt zip checkpoint ({one_line(e)})") from None
    if not data.startswith(b"\x80"):  # every binary pickle opens with PROTO
        raise ScratchNSTError("not a PyTorch checkpoint (neither a zip nor a legacy pickle)")
    return _load_legacy(data)
