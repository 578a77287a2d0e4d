"""A strict CPU stand-in for CuPy, used only by tests: the GPU code path, checked where there is no GPU.

scratchnst writes every op once against ``xp = array_module(x)``, but CI has no GPU, so
the CuPy branches (``if xp is np: ... else: ...``) and the habits CuPy forbids (handing
a device array to NumPy, mixing host arrays into device arithmetic, relying on a
``LinAlgError``) would otherwise go untested. This module is an array module whose
arrays refuse what ``cupy.ndarray`` refuses, and compute everything else with NumPy:

    monkeypatch.setattr(scratchnst.backend, "_cupy", strict_cupy)   # every "cupy" path lands here
    x = strict_cupy.asarray(host)          # a host-to-device copy, counted in UPLOADS
    out, _ = layers.relu_forward(x)        # the CuPy branch of the package, run on the CPU
    loss = float(out.sum())                # a device-to-host synchronisation, counted in SYNCS

Each rule below names the CuPy behaviour it copies. Sources: CuPy's
``cupy/_core/core.pyx`` (``ndarray``), ``_kernel.pyx`` and ``_scalar.pyx`` (kernel
arguments), ``_routines_indexing.pyx`` (``__setitem__``), ``_routines_manipulation.pyx``
and ``cupy/_manipulation/{join,dims}.py`` (joining), ``cupy/linalg/{_util,_decomposition}.py``
and ``cupyx/_ufunc_config.py`` (linalg errors), and the user guide's "Differences between
CuPy and NumPy" (https://docs.cupy.dev/en/stable/user_guide/difference.html).

It is not CuPy's performance model: the counters say how often the code would wait for
the GPU or copy to it, not how long that takes, and nothing here is asynchronous. Nor
does it copy CuPy's other differences: integer indices that wrap around instead of
raising, undefined results for repeated indices in an assignment, float-to-int casts,
streams, several devices, ``cupy.random`` (scratchnst draws on the host).
"""

import collections
import numbers
import sys
import time
import types

import numpy as np

# --------------------------------------------------------------------------- counters


class Counter:
    """How often something happened (``count``), and of which kind (``kinds["float"]``)."""

    def __init__(self, name):
        self.name = name
        self.count = 0
        self.kinds = collections.Counter()

    def add(self, kind):
        self.count += 1
        self.kinds[kind] += 1

    def reset(self):
        self.count = 0
        self.kinds.clear()

    def __repr__(self):
        return f"{self.name}({self.count}, {dict(self.kinds)})"


# Device to host, each a synchronisation on a GPU: .get(), asnumpy, .item(), .tolist(), .tobytes(),
# float(), int(), complex(), bool(), repr()/str()/format() (CuPy prints via get()), pickling, synchronize().
SYNCS = Counter("SYNCS")
# Host to device: asarray/array of host data (NumPy arrays, lists, Python or NumPy scalars), .set(),
# host arrays used as indices or as advanced-assignment values, host items given to hstack/vstack.
UPLOADS = Counter("UPLOADS")


def reset_counters():
    """Set both counters to zero."""
    SYNCS.reset()
    UPLOADS.reset()


# --------------------------------------------------------------------------- the array

_SCALARS = (bool, int, float, complex, np.generic)
_COMPARISONS = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}


class ndarray:
    """A device array: a NumPy buffer that only ``.get()`` and friends hand to the host.

    ``type(x).__module__`` is ``"cupy_strict"`` so that code telling CuPy arrays apart
    by module name (``scratchnst.backend.to_numpy``) takes them for CuPy's.
    """

    __module__ = "cupy_strict"
    __slots__ = ("_a", "__weakref__")  # cupy.ndarray declares __weakref__: the Winograd kernel cache needs it
    __array_priority__ = 100  # cupy.ndarray's value
    __hash__ = None  # unhashable, like numpy.ndarray and cupy.ndarray (== is elementwise)

    def __init__(self, shape, dtype=float, order="C"):
        # cupy.ndarray(shape, dtype) allocates without initialising, as numpy.empty does
        self._a = np.empty(shape, dtype, order=order)

    @classmethod
    def _of(cls, a):
        self = object.__new__(cls)
        self._a = a
        return self

    # ------------------------------------------------------------ the only ways to the host
    def get(self, stream=None, order="C", out=None):
        """A copy on the host (cupy.ndarray.get): never the device buffer itself, so writes do not alias."""
        return self._host("get", order, out)

    def _host(self, kind, order="C", out=None):
        SYNCS.add(kind)
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        """Copy a host array into this one (cupy.ndarray.set: same dtype and shape, or an error)."""
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        UPLOADS.add("set")
        self._a[...] = arr

    def item(self):
        SYNCS.add("item")
        return self._a.item()

    def tolist(self):
        SYNCS.add("tolist")
        return self._a.tolist()

    def tobytes(self, order="C"):
        SYNCS.add("tobytes")
        return self._a.tobytes(order)

    # Converted first, counted after: an array that cannot convert fails before any transfer.
    def __float__(self):
        value = float(self._a)
        SYNCS.add("float")
        return value

    def __int__(self):
        value = int(self._a)
        SYNCS.add("int")
        return value

    def __complex__(self):
        value = complex(self._a)
        SYNCS.add("complex")
        return value

    def __bool__(self):
        # cupy.ndarray.__nonzero__: bool(self.get()) for one element, ValueError for more (as NumPy)
        value = bool(self._a)
        SYNCS.add("bool")
        return value

    def __repr__(self):
        SYNCS.add("repr")  # cupy.ndarray.__repr__ is repr(self.get())
        return repr(self._a).replace("array(", "strict_cupy.array(", 1)

    def __str__(self):
        SYNCS.add("repr")
        return str(self._a)

    def __format__(self, spec):
        SYNCS.add("repr")
        return format(self._a, spec)

    def __reduce__(self):
        SYNCS.add("pickle")  # cupy.ndarray.__reduce__ is (cupy.array, (self.get(),)): unpickling uploads
        return array, (self._a.copy(),)

    def __array__(self, dtype=None, copy=None):
        # cupy.ndarray.__array__, word for word: NumPy, Pillow, h5py and matplotlib all stop here
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    # ------------------------------------------------------------ NumPy's protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # cupy.ndarray.__array_ufunc__: np.maximum(x, 0) runs cupy.maximum, with CuPy's operand rule;
        # other methods (reduce, at, outer) return NotImplemented, so NumPy raises TypeError.
        if method != "__call__":
            return NotImplemented
        return _elementwise(ufunc, inputs, kwargs)

    def __array_function__(self, func, arg_types, args, kwargs):
        # cupy.ndarray.__array_function__: np.sum(x) runs cupy.sum; a function CuPy lacks, NotImplemented.
        namespace = linalg if func.__module__ == "numpy.linalg" else _this
        mine = getattr(namespace, func.__name__, None)
        if mine is None or mine is func or not all(issubclass(t, (ndarray, np.ndarray)) for t in arg_types):
            return NotImplemented
        return mine(*args, **kwargs)

    # ------------------------------------------------------------ attributes and methods
    def __getattr__(self, name):
        # Reached only for names not defined on the class: numpy.ndarray's methods and attributes,
        # minus the host's views of the buffer (CuPy has no ctypes; its .data is a device pointer).
        if name.startswith("__") or name in ("_a", "data", "ctypes", "flat", "tofile", "dump", "dumps"):
            raise AttributeError(f"strict_cupy.ndarray has no attribute {name!r} (use .get() for host data)")
        attr = getattr(self._a, name)
        return _strict_call(attr, f"ndarray.{name}") if callable(attr) else _wrap(attr)

    def __setattr__(self, name, value):
        if name == "shape":  # cupy.ndarray.shape has a setter (reshape without copy), as NumPy's
            self._a.shape = value
        elif name == "_a":
            object.__setattr__(self, name, value)
        else:
            raise AttributeError(f"cannot set {name!r} on strict_cupy.ndarray")

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        # cupy.ndarray.__iter__ yields self[i]: device arrays (0-d for a 1-d array), not host scalars
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __copy__(self):
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._of(self._a.copy())

    # ------------------------------------------------------------ indexing
    def __getitem__(self, key):
        # CuPy returns a 0-d device array, not a host scalar, for x[i, j]; the Ellipsis makes NumPy's a view too
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        key = _index(key)
        if isinstance(value, ndarray):
            value = value._a
        elif not isinstance(value, _SCALARS) and not (isinstance(value, np.ndarray) and value.ndim == 0):
            if all(not isinstance(k, np.ndarray) for k in key):
                # CuPy's basic-index assignment of a host value is ndarray.fill(value) (_scatter_op):
                # a scalar or 0-d array is fine, anything larger is refused. (CUPY_EXPERIMENTAL_SLICE_COPY=1
                # lets x[:] = host of the same shape and dtype through; it is off by default.)
                if isinstance(value, np.ndarray):
                    raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
                raise TypeError(f"Unsupported type {type(value)}")
            UPLOADS.add("setitem")  # an advanced-index assignment converts the value with cupy.array: an upload
        self._a[key] = value


def _index(key):
    """An index for the NumPy buffer, as a tuple ending in Ellipsis (so that x[i, j] is a 0-d view)."""
    key = key if isinstance(key, tuple) else (key,)
    out = []
    for k in key:
        if isinstance(k, ndarray):
            k = k._a
            if k.dtype == bool:
                # CuPy sizes a boolean-mask selection (and scatters a masked assignment) by scanning
                # the mask and reading its count back to the host: a synchronisation, as nonzero() is.
                SYNCS.add("mask")
        elif isinstance(k, (np.ndarray, list)):
            UPLOADS.add("index")  # CuPy's _prepare_slice_list converts host index arrays with cupy.array
            k = np.asarray(k)
        out.append(k)
    if not any(k is Ellipsis for k in out):
        out.append(Ellipsis)
    return tuple(out)


# --------------------------------------------------------------------------- wrapping and unwrapping


def _wrap(result, inputs=None):
    """Device arrays from NumPy results: arrays and NumPy scalars (reductions: 0-d), inside tuples too.

    ``inputs`` maps id(buffer) -> the stand-in that holds it, so that a result NumPy hands back
    unchanged (``out=``, ``asarray``, ``astype(copy=False)``) is the caller's own array, as in CuPy.
    """
    if isinstance(result, np.ndarray):
        same = (inputs or {}).get(id(result))  # not `or`: that would call bool() on a device array
        return ndarray._of(result) if same is None else same
    if isinstance(result, np.generic):
        return ndarray._of(np.asarray(result))  # CuPy's reductions return 0-d arrays, not scalars
    if isinstance(result, tuple) and hasattr(result, "_fields"):  # EighResult and co.: CuPy returns a tuple
        return tuple(_wrap(r, inputs) for r in result)
    if type(result) in (tuple, list):
        return type(result)(_wrap(r, inputs) for r in result)
    return result


def _unwrap(obj, inputs, what):
    """NumPy buffers from stand-ins (inside lists and tuples too); a host array is refused, as by CuPy's routines."""
    if isinstance(obj, ndarray):
        inputs[id(obj._a)] = obj
        return obj._a
    if isinstance(obj, np.ndarray):
        raise TypeError(f"Unsupported type {type(obj)}: {what} takes device arrays (move host data with asarray)")
    if type(obj) in (tuple, list):
        return type(obj)(_unwrap(v, inputs, what) for v in obj)
    return obj


def _strict_call(fn, what):
    """``fn`` (a NumPy function or method) on stand-ins: buffers in, device arrays out."""

    def call(*args, **kwargs):
        inputs = {}
        args = _unwrap(args, inputs, what)
        kwargs = {k: _unwrap(v, inputs, what) for k, v in kwargs.items()}
        return _wrap(fn(*args, **kwargs), inputs)

    call.__name__ = what
    call.__doc__ = f"numpy's {what} on strict_cupy arrays: host arrays refused, results on the device."
    return call


def _elementwise(fn, inputs, kwargs):
    """An element-wise operation with CuPy's operand rule (``_kernel._preprocess_args``).

    Operands: device arrays, Python scalars and NumPy scalar types (``np.float32(2)``). A
    ``numpy.ndarray``, even 0-d, or a list raises ``TypeError: Unsupported type <class ...>``,
    as CuPy does: it would be an implicit upload. Exception copied from CuPy: comparisons take
    a 0-d NumPy array as its ``.item()`` (``cupy.ndarray.__richcmp__``). ``out=`` must be a device array.
    """
    name = getattr(fn, "__name__", "")
    args = []
    for x in inputs:
        if isinstance(x, ndarray):
            x = x._a
        elif name in _COMPARISONS and isinstance(x, np.ndarray) and x.ndim == 0:
            x = x.item()
        elif not (x is None or isinstance(x, _SCALARS)):  # None: clip's missing bound
            raise TypeError(f"Unsupported type {type(x)}")
        args.append(x)
    out = kwargs.get("out")
    if out is not None:
        outs = out if isinstance(out, tuple) else (out,)
        if not all(isinstance(o, ndarray) for o in outs):
            raise TypeError(f"Unsupported type {type(outs[0])}: out= must be a device array")
        kwargs = {**kwargs, "out": tuple(o._a for o in outs) if isinstance(fn, np.ufunc) else outs[0]._a}
        fn(*args, **kwargs)
        return outs[0] if len(outs) == 1 else outs
    result = fn(*args, **kwargs)
    if isinstance(result, (bool, int, float, complex)):  # allclose and co.: CuPy answers on the device
        result = np.asarray(result)
    return _wrap(result)


class _Elementwise:
    """A NumPy ufunc (or clip, where, ...) called with CuPy's operand rule (:func:`_elementwise`)."""

    def __init__(self, fn):
        self._fn = fn
        self.__name__ = fn.__name__

    def __call__(self, *args, **kwargs):
        return _elementwise(self._fn, args, kwargs)

    def __getattr__(self, name):  # nin, nout; reduce, outer, at (CuPy has these for a few ufuncs only)
        attr = getattr(self._fn, name)
        return _strict_call(attr, f"{self.__name__}.{name}") if callable(attr) else attr

    def __repr__(self):
        return f"<strict_cupy elementwise {self.__name__!r}>"


def _operator(ufunc, reflected=False, inplace=False):
    def op(self, other):
        if inplace:  # cupy: _math._add(self, other, self)
            return _elementwise(ufunc, (self, other), {"out": self})
        return _elementwise(ufunc, (other, self) if reflected else (self, other), {})

    return op


_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "and": np.bitwise_and,
    "or": np.bitwise_or, "xor": np.bitwise_xor, "lshift": np.left_shift, "rshift": np.right_shift,
    "matmul": np.matmul,
}  # fmt: skip
for _name, _ufunc in _BINARY.items():
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
    setattr(ndarray, f"__r{_name}__", _operator(_ufunc, reflected=True))
    if _name != "matmul":  # cupy.ndarray has no __imatmul__
        setattr(ndarray, f"__i{_name}__", _operator(_ufunc, inplace=True))
_COMPARE = {
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
}  # fmt: skip
for _name, _ufunc in _COMPARE.items():
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
for _name, _ufunc in {"neg": np.negative, "pos": np.positive, "abs": np.absolute, "invert": np.invert}.items():
    setattr(ndarray, f"__{_name}__", lambda self, _u=_ufunc: _elementwise(_u, (self,), {}))


# --------------------------------------------------------------------------- module functions

_this = sys.modules[__name__]


def asarray(a, dtype=None, order=None, *, copy=None, blocking=False):
    """A device array: ``a`` itself when it is one already (cast if asked), else an upload of host data."""
    return _to_device(a, dtype, copy, order or "K", 0, "asarray")


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """A device array, a copy unless ``copy`` says otherwise; host data is uploaded."""
    return _to_device(obj, dtype, copy, order, ndmin, "array")


asanyarray = asarray  # CuPy has no subclasses: asanyarray is asarray


def _to_device(obj, dtype, copy, order, ndmin, kind):
    if isinstance(obj, ndarray):  # already on the device: at most a device-side copy or cast
        return _wrap(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin), {id(obj._a): obj})
    if type(obj) in (list, tuple) and _holds_device_array(obj):  # cupy.array([x, y]) of device arrays
        return ndarray._of(np.array(_unwrap(obj, {}, "array"), dtype=dtype, order=order, ndmin=ndmin))
    UPLOADS.add(kind)
    # Always a copy: a device buffer never shares memory with the host array it came from.
    return ndarray._of(np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _holds_device_array(seq):
    return any(isinstance(v, ndarray) or (type(v) in (list, tuple) and _holds_device_array(v)) for v in seq)


def asnumpy(a, stream=None, order="C", out=None):
    """A host array: a copy (counted as a sync) of a device array, ``numpy.asarray`` of anything else."""
    if isinstance(a, ndarray):
        return a._host("asnumpy", order, out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    """This module when any argument is a stand-in array, else numpy (cupy.get_array_module)."""
    return _this if any(isinstance(a, ndarray) for a in args) else np


def ascontiguousarray(a, dtype=None):
    # cupy's is a cpdef typed `_ndarray_base a`: a host array is a TypeError, not an upload
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got {type(a).__name__})")
    return _wrap(np.ascontiguousarray(a._a, dtype=dtype), {id(a._a): a})


def _device_arrays(tup, what):
    # cupy's concatenate_method: host arrays fail in _preprocess_args, Python scalars in its type check
    for x in tup:
        if not isinstance(x, ndarray):
            raise TypeError(f"Only cupy arrays can be {what} (got {type(x)})")
    return [x._a for x in tup]


def concatenate(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    tup = list(tup)
    if any(a.ndim == 0 for a in _device_arrays(tup, "concatenated")):
        raise TypeError("zero-dimensional arrays cannot be concatenated")  # NumPy says ValueError
    return _strict_call(np.concatenate, "concatenate")(tup, axis, out=out, dtype=dtype, casting=casting)


def stack(tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
    tup = list(tup)
    _device_arrays(tup, "stacked")  # cupy.stack calls cupy.expand_dims(x, axis) on each, typed _ndarray_base
    return _strict_call(np.stack, "stack")(tup, axis, out=out, dtype=dtype, casting=casting)


def hstack(tup, *, dtype=None, casting="same_kind"):
    # cupy.hstack and vstack pass each item through cupy.atleast_1d/2d, which call cupy.asarray: host items upload
    tup = [_to_device(x, None, None, "K", 0, "hstack") for x in tup]
    return _strict_call(np.hstack, "hstack")(tup, dtype=dtype, casting=casting)


def vstack(tup, *, dtype=None, casting="same_kind"):
    tup = [_to_device(x, None, None, "K", 0, "vstack") for x in tup]
    return _strict_call(np.vstack, "vstack")(tup, dtype=dtype, casting=casting)


# Element-wise routines NumPy does not implement as ufuncs (CuPy does: the same operand rule).
_ELEMENTWISE = {"clip", "where", "round", "around", "isclose", "allclose", "nan_to_num"}
_attributes = {}


def __getattr__(name):
    """Everything else, from NumPy: functions made strict, dtypes and constants as they are."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _attributes:
        obj = getattr(np, name)
        if isinstance(obj, np.ufunc) or name in _ELEMENTWISE:
            obj = _Elementwise(obj)
        elif isinstance(obj, (type, numbers.Number, np.generic)) or obj is None:
            pass  # float32, dtype, finfo, newaxis, pi, inf, nan: cupy.float32 is numpy.float32
        elif callable(obj):
            obj = _strict_call(obj, name)
        else:  # numpy.random, numpy.lib, ...: host modules, which would hand back host arrays
            raise AttributeError(f"strict_cupy does not mirror numpy.{name} ({type(obj).__name__})")
        _attributes[name] = obj
    return _attributes[name]


# --------------------------------------------------------------------------- linalg


def _nan_like(*arrays):
    """The result NumPy would have given for the last input (its shape, a float dtype), all NaN."""
    dtype = np.result_type(*arrays)
    dtype = dtype if dtype.kind in "fc" else np.dtype(np.float64)
    return np.full(arrays[-1].shape, np.nan, dtype)


def _linalg(name, on_error=None):
    """cupy.linalg.<name>: device arrays only, and no LinAlgError for a singular input.

    cupy.linalg checks its argument (``_util._assert_cupy_array``: a host array is a
    LinAlgError) but, with the default ``cupyx.errstate(linalg="ignore")``, never reads
    cuSOLVER's devInfo (that would synchronise): a singular or indefinite matrix gives
    whatever cuSOLVER left in the output, not an exception. The stand-in's garbage is
    NaN (``on_error``), so that code relying on the exception sees NaNs, not a pass.
    """
    fn = getattr(np.linalg, name)

    def call(*arrays, **kwargs):
        if not all(isinstance(a, ndarray) for a in arrays):
            raise np.linalg.LinAlgError("cupy.linalg only supports cupy.ndarray")
        raw = [a._a for a in arrays]
        try:
            return _wrap(fn(*raw, **kwargs))
        except np.linalg.LinAlgError:
            if on_error is None:
                raise
            return _wrap(on_error(*raw))

    call.__name__ = name
    return call


linalg = types.SimpleNamespace(
    cholesky=_linalg("cholesky", _nan_like),
    inv=_linalg("inv", _nan_like),
    solve=_linalg("solve", _nan_like),  # shaped like b
    eigh=_linalg("eigh", lambda a: (_nan_like(a)[..., 0], _nan_like(a))),
    eigvalsh=_linalg("eigvalsh", lambda a: _nan_like(a)[..., 0]),
    det=_linalg("det"),  # NumPy's det does not raise on a singular matrix either
    slogdet=_linalg("slogdet"),
    norm=_linalg("norm"),
    svd=_linalg("svd"),
    qr=_linalg("qr"),
    pinv=_linalg("pinv"),
)


# --------------------------------------------------------------------------- cuda


class _Runtime:
    """``cupy.cuda.runtime``: one device, with a fake memory size a test may change
    (``monkeypatch.setattr(strict_cupy.cuda.runtime, "free_bytes", n)``)."""

    free_bytes = 12 << 30
    total_bytes = 16 << 30

    def getDeviceCount(self):
        return 1

    def memGetInfo(self):
        return self.free_bytes, self.total_bytes


class _Device:
    """``cupy.cuda.Device``: device 0; ``synchronize()`` waits for the GPU, so it counts as a sync."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def synchronize(self):
        SYNCS.add("synchronize")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Stream:
    """``cupy.cuda.Stream``; ``Stream.null`` is the default stream."""

    null = None

    def synchronize(self):
        SYNCS.add("synchronize")


class _Event:
    """``cupy.cuda.Event``: here the host's clock at ``record()``, since nothing runs asynchronously."""

    def __init__(self, *args, **kwargs):
        self.t = None

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        SYNCS.add("synchronize")


def _get_elapsed_time(start, end):
    """``cupy.cuda.get_elapsed_time``: milliseconds between two recorded events."""
    return (end.t - start.t) * 1e3


_Stream.null = _Stream()
cuda = types.SimpleNamespace(
    runtime=_Runtime(), Device=_Device, Stream=_Stream, get_current_stream=lambda: _Stream.null,
    Event=_Event, get_elapsed_time=_get_elapsed_time,
)
