"""A pickle reader that builds only plain tensor checkpoints, and runs nothing else.

A pickle is a small program: ``pickle.load`` can call any importable function
(``os.system`` included). :class:`RestrictedUnpickler` admits only the handful of
globals a plain state dict needs, each mapped to a harmless function of ours, and
:func:`unpickle` first walks the opcodes without running them, so a hostile file is
refused before anything is built. :mod:`scratchnst.files.torchfile` reads the
PyTorch file formats around it.
"""

import io
import pickle
import pickletools
from collections import OrderedDict
from typing import NamedTuple

from scratchnst.errors import ScratchNSTError, one_line

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


class StorageType(NamedTuple):
    """What ``torch.FloatStorage`` etc. unpickle to: a name and nothing callable."""

    name: str


class StorageRef(NamedTuple):
    """A storage named in the pickle; its bytes are read after the pickle is done.

    ``offset`` and ``numel`` select a slice of the root storage ``key`` (old legacy
    files pickled views of storages; everything newer has ``offset = 0``).
    """

    key: str
    type_name: str
    numel: int
    offset: int = 0


class TensorRef(NamedTuple):
    """A tensor as the pickle describes it: a strided view of a storage, in elements."""

    storage: StorageRef
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
    if not isinstance(storage, StorageRef):
        raise ScratchNSTError("a tensor's storage is not a storage reference: "
                              "not a plain tensor checkpoint")
    if type(storage_offset) is not int or storage_offset < 0:
        raise ScratchNSTError(f"tensor storage offset {storage_offset!r} is not a "
                              "non-negative int")
    size, stride = _int_tuple(size, "tensor size"), _int_tuple(stride, "tensor stride")
    if len(size) != len(stride):
        raise ScratchNSTError(f"tensor size {size} and stride {stride} differ in length")
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """Stand-in for the pre-0.4 ``torch._utils._rebuild_tensor``."""
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


# (module, name) -> what the unpickler gets instead. Nothing here can touch the
# system: two recorders of ours, inert markers, and OrderedDict (a dict).
ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
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
        Filled with ``key -> StorageRef`` for every persistent id met; None for the
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
                or pid[0] != "storage" or not isinstance(pid[1], StorageType)
                or not isinstance(pid[2], str) or type(pid[4]) is not int or pid[4] < 0):
            raise ScratchNSTError(f"unexpected persistent id {short_repr(pid)}: "
                                  "not a plain tensor checkpoint")
        _, storage_type, key, _location, numel = pid[:5]
        root = StorageRef(key, storage_type.name, numel)
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
            raise ScratchNSTError(f"bad storage view {short_repr(view)} of storage {key!r}")
        return root._replace(offset=view[1], numel=view[2])


def short_repr(x, limit=80):
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


def unpickle(data_or_file, storages=None, legacy=False):
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
