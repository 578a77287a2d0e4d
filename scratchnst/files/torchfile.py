"""Read tensors out of PyTorch checkpoints without PyTorch and without running a pickle.

``torch.save`` writes a pickle, and a pickle is a small program: loading one with
``pickle.load`` can call any importable function (``os.system`` included). This module
reads the two formats ``torch.save`` has written since 2017 with the restricted
unpickler of :mod:`scratchnst.files.safe_pickle`, which admits only the handful of
globals a plain state dict needs and refuses everything else before anything runs.

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
import struct
import zipfile
import zlib

import numpy as np

from scratchnst.errors import ScratchNSTError, one_line
from scratchnst.files.safe_pickle import STORAGE_DTYPES, TensorRef, short_repr, unpickle

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK\x03\x04"
MAX_PICKLE_BYTES = 64 * 2**20  # a state dict's data.pkl: a few kB for VGG19, whatever the tensors' size
READ_CHUNK = 2**20


def read_member(zf, name, limit):
    """The bytes of zip member ``name``, refusing (one line) a member of more than ``limit`` bytes.

    Read in chunks and counted, not trusted to its header: a deflated member can inflate
    1000-fold (a zip bomb), and this never holds more than ``limit`` bytes of it.
    """
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ScratchNSTError(f"zip member {name} declares {info.file_size} bytes, more than the {limit} "
                              "it may hold")
    chunks, total = [], 0
    with zf.open(info) as f:
        while chunk := f.read(min(READ_CHUNK, limit + 1 - total)):
            total += len(chunk)
            if total > limit:
                raise ScratchNSTError(f"zip member {name} inflates to more than {limit} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


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
    t : TensorRef
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
        if not isinstance(key, str) or not isinstance(value, TensorRef):
            raise ScratchNSTError(f"entry {short_repr(key)} of the checkpoint is a "
                                  f"{type(value).__name__}, not a tensor: not a plain state dict")
        out[key] = _materialize(key, value, arrays)
    return out


def _load_legacy(data):
    """Parse the legacy (non-zip) serialization from its bytes."""
    f = io.BytesIO(data)
    if unpickle(f) != LEGACY_MAGIC:
        raise ScratchNSTError("not a PyTorch checkpoint (no legacy magic number, not a zip)")
    version = unpickle(f)
    if version != LEGACY_PROTOCOL:
        raise ScratchNSTError(f"unsupported legacy PyTorch protocol version {version!r}")
    sys_info = unpickle(f)
    if not isinstance(sys_info, dict):
        raise ScratchNSTError("corrupt legacy PyTorch checkpoint (bad sys_info)")
    byteorder = "little" if sys_info.get("little_endian", True) else "big"
    storages = {}
    obj = unpickle(f, storages, legacy=True)
    keys = unpickle(f)
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
        byteorder = read_member(zf, prefix + "byteorder", 16).decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise ScratchNSTError(f"unknown byte order {byteorder!r} in PyTorch checkpoint")
    storages = {}
    obj = unpickle(read_member(zf, pkls[0], MAX_PICKLE_BYTES), storages, legacy=False)
    arrays = {}
    for key, ref in storages.items():
        member = f"{prefix}data/{key}"
        nbytes = ref.numel * np.dtype(STORAGE_DTYPES[ref.type_name]).itemsize
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise ScratchNSTError(f"PyTorch checkpoint lacks the data of storage {key!r} "
                                  f"({member})") from None
        # Checked before reading, so a lying header cannot make us inflate a zip bomb: torch.save
        # stores storages uncompressed, so their bytes are bytes of the file itself.
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise ScratchNSTError(f"storage {key!r} is compressed in the zip, which torch.save never "
                                  "does: refused, as a zip bomb would be")
        if info.file_size != nbytes:
            raise ScratchNSTError(f"storage {key!r} has {info.file_size} bytes, the pickle "
                                  f"says {nbytes}: corrupt checkpoint")
        arrays[key] = _storage_array(read_member(zf, member, nbytes), ref.type_name, byteorder)
    return _state_dict(obj, arrays)


def _read_all(path_or_fileobj):
    if hasattr(path_or_fileobj, "read"):
        return path_or_fileobj.read()
    path = path_or_fileobj
    if os.path.exists(path) and not (os.path.isfile(path) or os.path.isdir(path)):
        # A FIFO or a device: open() could block forever. (A directory fails to open, below.)
        raise ScratchNSTError(f"cannot read {os.fspath(path_or_fileobj)!s}: not a regular file")
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
