"""The strict CuPy stand-in (tests/strict_cupy.py) against the CuPy rules it claims to copy.

Each rule is checked both ways: what CuPy refuses raises here, and what CuPy allows
works and gives NumPy's numbers. A stand-in that let everything through would pass
the package's tests and prove nothing, so the refusals are the point.
"""

import io
import pickle
import weakref

import numpy as np
import pytest
import strict_cupy as cp  # tests/ is on sys.path (pytest rootdir conftest)

import scratchnst.backend


@pytest.fixture(autouse=True)
def counters():
    cp.reset_counters()
    yield
    cp.reset_counters()


@pytest.fixture
def x(rng):
    """A (2, 3) float64 device array of non-degenerate values; the counters start at zero."""
    a = cp.asarray(rng.standard_normal((2, 3)))
    cp.reset_counters()
    return a


@pytest.fixture
def patched(monkeypatch):
    """The package's "cupy" backend, routed to the stand-in."""
    monkeypatch.setattr(scratchnst.backend, "_cupy", cp)
    return cp


# --------------------------------------------------------------------------- the array type


def test_type_reads_as_cupy_to_the_backend(x, patched):
    assert type(x).__module__.startswith("cupy")
    assert not isinstance(x, np.ndarray)
    assert scratchnst.backend.array_module(x) is cp
    assert scratchnst.backend.backend_name(x) == "cupy"
    host = scratchnst.backend.to_numpy(x)
    assert type(host) is np.ndarray and cp.SYNCS.count == 1
    assert scratchnst.backend.get_xp("cupy") is cp and scratchnst.backend.gpu_available()


def test_without_the_patch_the_backend_reaches_for_cupy(x, monkeypatch):
    # Unpatched, a stand-in array is taken for CuPy's by its module name: the backend imports CuPy for it.
    monkeypatch.setattr(scratchnst.backend, "_import_cupy", lambda: "imported")
    assert scratchnst.backend.array_module(x) == "imported"


# --------------------------------------------------------------------------- implicit conversion


def _pillow(a):
    from PIL import Image

    Image.fromarray(a)


def _h5py(a):
    import h5py

    with h5py.File(io.BytesIO(), "w") as f:
        f.create_dataset("a", data=a)


def _matplotlib(a):
    import matplotlib.image

    matplotlib.image.imsave(io.BytesIO(), a, format="png")


@pytest.mark.parametrize(
    "convert",
    [np.asarray, np.array, lambda a: np.zeros((2, 3)) + np.asarray(a), lambda a: np.array([a, a]), _pillow, _h5py],
    ids=["asarray", "array", "asarray-in-expr", "list-of", "pillow", "h5py"],
)
def test_implicit_conversion_is_refused(x, convert):
    with pytest.raises((TypeError, AttributeError)) as err:
        convert(x)
    if err.type is TypeError and "Implicit" not in str(err.value):
        pytest.fail(f"refused, but not by __array__: {err.value}")
    assert cp.SYNCS.count == 0


def test_matplotlib_refuses(x):
    with pytest.raises(TypeError, match="Implicit conversion"):
        _matplotlib(x)


def test_no_host_view_of_the_buffer(x):
    for name in ("data", "ctypes", "__array_interface__", "__array_struct__", "tofile"):
        with pytest.raises(AttributeError):
            getattr(x, name)
    with pytest.raises(TypeError):
        memoryview(x)


# --------------------------------------------------------------------------- counted transfers


@pytest.mark.parametrize(
    "kind, to_host",
    [
        ("get", lambda a: a.get()),
        ("asnumpy", cp.asnumpy),
        ("item", lambda a: a[0, 0].item()),
        ("tolist", lambda a: a.tolist()),
        ("tobytes", lambda a: a.tobytes()),
        ("float", lambda a: float(a[0, 0])),
        ("int", lambda a: int(a[0, 0])),
        ("bool", lambda a: bool(a[0, 0])),
        ("repr", repr),
        ("pickle", pickle.dumps),
    ],
)
def test_each_way_to_the_host_is_one_sync(x, kind, to_host):
    to_host(x)
    assert cp.SYNCS.count == 1 and cp.SYNCS.kinds[kind] == 1


def test_float_of_a_sum_is_exactly_one_sync(x):
    expected = x.get().sum()
    cp.reset_counters()
    s = x.sum()
    assert cp.SYNCS.count == 0  # the reduction itself stays on the device
    assert float(s) == pytest.approx(expected)
    assert cp.SYNCS.count == 1


def test_get_is_a_copy_and_get_out_fills_a_host_array(x):
    host = x.get()
    host[...] = 0
    assert x.get().any()  # writing to the host copy did not reach the device buffer
    out = np.empty((2, 3))
    assert x.get(out=out) is out and np.array_equal(out, cp.asnumpy(x))


def test_a_failed_conversion_is_not_counted(x):
    with pytest.raises((TypeError, ValueError)):
        float(x)  # 6 elements
    with pytest.raises(ValueError):
        bool(x)
    assert cp.SYNCS.count == 0


def test_uploads_are_counted_and_copied(rng):
    host = rng.standard_normal(4)
    a = cp.asarray(host)
    assert cp.UPLOADS.count == 1
    host[0] = 1e9
    assert a.get()[0] != 1e9  # the device buffer never aliases the host array
    cp.asarray([1.0, 2.0])
    cp.array(3.0)
    assert cp.UPLOADS.count == 3 and cp.UPLOADS.kinds["array"] == 1
    assert cp.asarray(a) is a  # already on the device: no copy, no upload
    assert cp.asarray(a, dtype=np.float32).dtype == np.float32
    assert cp.array(a) is not a
    assert cp.UPLOADS.count == 3
    a.set(np.zeros(4))
    assert cp.UPLOADS.kinds["set"] == 1 and not a.get().any()
    with pytest.raises(TypeError):
        a.set(np.zeros(4, np.float32))


def test_synchronize_counts(patched):
    cp.cuda.Device().synchronize()
    cp.cuda.Stream.null.synchronize()
    assert cp.SYNCS.kinds["synchronize"] == 2


# --------------------------------------------------------------------------- element-wise operands


@pytest.mark.parametrize(
    "op",
    [
        lambda a: a + np.zeros(3),
        lambda a: np.zeros(3) + a,
        lambda a: a * np.array(2.0),  # even 0-d
        lambda a: a + [1.0, 2.0, 3.0],
        lambda a: a @ np.eye(3),
        lambda a: cp.maximum(a, np.zeros(3)),
        lambda a: cp.multiply(a, np.ones(3)),
        lambda a: np.maximum(a, np.zeros(3)),
        lambda a: cp.clip(a, np.zeros(3), 1.0),
        lambda a: cp.where(a > 0, a, np.zeros(3)),
        lambda a: cp.maximum(a, 0, out=np.empty((2, 3))),
        lambda a: a.__iadd__(np.ones(3)),
    ],
    ids=["add", "radd", "mul-0d", "list", "matmul", "maximum", "multiply", "np.maximum", "clip", "where", "out",
         "iadd"],
)  # fmt: skip
def test_host_arrays_are_refused_in_elementwise_ops(x, op):
    with pytest.raises(TypeError, match="Unsupported type|NotImplemented"):
        op(x)
    assert cp.UPLOADS.count == 0


@pytest.mark.parametrize(
    "op",
    [
        lambda xp, a: a + 2,
        lambda xp, a: 2.5 - a,
        lambda xp, a: a * np.float32(2),
        lambda xp, a: np.float32(2) * a,
        lambda xp, a: xp.maximum(a, 0),
        lambda xp, a: np.maximum(a, 0),  # NumPy's ufunc on a device array runs the device's
        lambda xp, a: xp.clip(a, -0.5, 0.5),
        lambda xp, a: xp.where(a > 0, a, 0.0),
        lambda xp, a: (a > np.float64(0)) & (a < 1),
        lambda xp, a: a < np.array(0.5),  # comparisons take a 0-d host array (cupy's __richcmp__)
        lambda xp, a: -(abs(a) ** 2) / 3,
        lambda xp, a: a @ a.T,
        lambda xp, a: xp.sqrt(xp.abs(a)),
        lambda xp, a: xp.isfinite(a),
    ],
)
def test_scalars_are_accepted_and_results_match_numpy(rng, op):
    host = rng.standard_normal((2, 3))
    got = op(cp, cp.asarray(host))
    assert isinstance(got, cp.ndarray)
    np.testing.assert_array_equal(got.get(), op(np, host))


# --------------------------------------------------------------------------- reductions and results


@pytest.mark.parametrize(
    "reduce",
    [
        lambda a: a.sum(),
        lambda a: a.max(),
        lambda a: a.min(),
        lambda a: a.mean(),
        lambda a: a.argmax(),
        lambda a: a.any(),
        lambda a: a.all(),
        lambda a: cp.sum(a * a),
        lambda a: np.sum(a),  # dispatched through __array_function__, as CuPy's
        lambda a: cp.linalg.norm(a),
        lambda a: a[1, 2],
    ],
)
def test_reductions_are_0d_device_arrays(x, reduce):
    r = reduce(x)
    assert isinstance(r, cp.ndarray) and r.shape == ()
    assert cp.SYNCS.count == 0


@pytest.mark.parametrize(
    "op",
    [
        lambda xp, a: xp.pad(a, ((1, 1), (0, 2))),
        lambda xp, a: xp.stack([a, a + 1], axis=1),
        lambda xp, a: xp.concatenate([a, a], axis=0),
        lambda xp, a: xp.einsum("ij,kj->ik", a, a),
        lambda xp, a: xp.roll(a, 1, axis=(0, 1)),
        lambda xp, a: xp.repeat(a[..., None], 3, axis=-1),
        lambda xp, a: xp.ascontiguousarray(a.T[:, ::-1]),
        lambda xp, a: a.reshape(3, 2).transpose(1, 0).astype(np.float32).ravel(),
        lambda xp, a: a.sum(axis=1, keepdims=True) + a.mean(axis=0),
        lambda xp, a: xp.broadcast_to(a[:, :1], (2, 3)),
        lambda xp, a: xp.zeros_like(a) + xp.eye(2, 3) + xp.full((2, 3), 7.0) + xp.arange(3),
    ],
)
def test_delegated_operations_match_numpy(rng, op):
    host = rng.standard_normal((2, 3))
    got = op(cp, cp.asarray(host))
    assert isinstance(got, cp.ndarray)
    np.testing.assert_array_equal(got.get(), op(np, host))


def test_delegated_functions_refuse_host_arrays(x):
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.einsum("ij,kj->ik", x, np.ones((2, 3)))
    with pytest.raises(TypeError):
        cp.ascontiguousarray(np.ones(3))
    with pytest.raises(TypeError, match="Unsupported type"):
        x.dot(np.ones(3))


def test_out_writes_into_the_device_buffer(x):
    y = cp.empty((2, 3))
    assert cp.maximum(x, 0, out=y) is y
    np.testing.assert_array_equal(y.get(), np.maximum(x.get(), 0))
    assert np.multiply(x, 2, out=y) is y  # NumPy's ufunc, out= a device array
    np.testing.assert_array_equal(y.get(), 2 * x.get())
    z = cp.empty((2, 2))
    assert cp.matmul(x, x.T, out=z) is z
    np.testing.assert_allclose(z.get(), x.get() @ x.get().T)
    s = cp.empty(3)
    assert cp.sum(x, axis=0, out=s) is s  # a delegated function's out=
    np.testing.assert_allclose(s.get(), x.get().sum(axis=0))
    before = x
    x += 1  # in place: the same array, its own buffer
    assert x is before
    view = x[0]
    view *= 0
    assert not x.get()[0].any()


# --------------------------------------------------------------------------- joining


@pytest.mark.parametrize(
    "join",
    [
        lambda a: cp.stack([a, 1.0]),
        lambda a: cp.stack([a, np.ones((2, 3))]),
        lambda a: cp.concatenate([a, np.ones((1, 3))]),
        lambda a: cp.concatenate([a[0, 0], a[0, 1]]),  # 0-d
        lambda a: np.concatenate([a, np.ones((1, 3))]),
    ],
)
def test_stack_and_concatenate_take_device_arrays_only(x, join):
    with pytest.raises(TypeError):
        join(x)


def test_hstack_and_vstack_convert_and_count(x):
    h = cp.hstack([x, np.ones((2, 1))])
    v = cp.vstack([x, np.ones(3)])
    assert h.shape == (2, 4) and v.shape == (3, 3)
    assert cp.UPLOADS.kinds["hstack"] == 1 and cp.UPLOADS.kinds["vstack"] == 1
    assert cp.stack([x, x]).shape == (2, 2, 3) and cp.UPLOADS.count == 2


# --------------------------------------------------------------------------- linalg


@pytest.mark.parametrize("name", ["cholesky", "inv"])
def test_linalg_gives_nan_instead_of_raising(name):
    singular = cp.asarray(np.ones((3, 3)))
    with pytest.raises(np.linalg.LinAlgError):
        getattr(np.linalg, name)(np.ones((3, 3)))  # NumPy raises...
    r = getattr(cp.linalg, name)(singular)  # ...CuPy does not
    assert isinstance(r, cp.ndarray) and r.shape == (3, 3) and np.isnan(r.get()).all()


def test_linalg_solve_and_eigh(rng):
    a = rng.standard_normal((3, 3))
    spd = a @ a.T + 3 * np.eye(3)
    b = rng.standard_normal(3)
    np.testing.assert_allclose(cp.linalg.solve(cp.asarray(spd), cp.asarray(b)).get(), np.linalg.solve(spd, b))
    np.testing.assert_allclose(cp.linalg.cholesky(cp.asarray(spd)).get(), np.linalg.cholesky(spd))
    lam, U = cp.linalg.eigh(cp.asarray(spd))
    np.testing.assert_allclose(((U * lam) @ U.T).get(), spd)
    nan = cp.linalg.solve(cp.asarray(np.zeros((3, 3))), cp.asarray(b))
    assert nan.shape == (3,) and np.isnan(nan.get()).all()
    assert float(cp.linalg.det(cp.asarray(np.ones((2, 2))))) == 0.0


def test_linalg_refuses_host_arrays():
    # cupy.linalg._util._assert_cupy_array raises LinAlgError: an except LinAlgError would swallow it
    with pytest.raises(np.linalg.LinAlgError, match="cupy"):
        cp.linalg.cholesky(np.eye(3))


# --------------------------------------------------------------------------- indexing


def test_indexing(x):
    host = x.get()
    cp.reset_counters()
    mask = x > 0  # a device mask
    np.testing.assert_array_equal(x[mask].get(), host[host > 0])
    idx = cp.asarray([2, 0])
    np.testing.assert_array_equal(x[:, idx].get(), host[:, [2, 0]])
    np.testing.assert_array_equal(x[1, ::-1].get(), host[1, ::-1])
    np.testing.assert_array_equal(x[None, ..., 1].get(), host[None, ..., 1])
    assert cp.UPLOADS.count == 1  # idx only
    x[:, [0]]  # a host index array: CuPy uploads it
    assert cp.UPLOADS.kinds["index"] == 1
    element = x[0, 0]
    element += 100  # a 0-d view, as CuPy's
    assert x.get()[0, 0] == pytest.approx(host[0, 0] + 100)


def test_setitem(x):
    x[...] = cp.zeros((2, 3))
    x[0] = 1.0
    x[1, 2] = np.float32(2)
    x[1, 1] = np.array(3.0)  # 0-d host arrays fill
    np.testing.assert_array_equal(x.get(), [[1, 1, 1], [0, 3, 2]])
    with pytest.raises(ValueError, match="non-scalar numpy.ndarray"):
        x[...] = np.ones((2, 3))  # basic index: CuPy's fill() refuses a host array
    with pytest.raises(TypeError):
        x[0] = [1.0, 2.0, 3.0]
    x[x > 0.5] = np.full(5, 9.0)  # advanced index: converted, i.e. uploaded
    assert cp.UPLOADS.kinds["setitem"] == 1
    np.testing.assert_array_equal(x.get(), [[9, 9, 9], [0, 9, 9]])


def test_len_iter_weakref_and_hash(x):
    assert len(x) == 2
    rows = list(x)
    assert all(isinstance(r, cp.ndarray) and r.shape == (3,) for r in rows)
    assert weakref.ref(x)() is x
    with pytest.raises(TypeError):
        hash(x)
    with pytest.raises(TypeError):
        iter(x[0, 0])
    assert cp.SYNCS.count == 0


# --------------------------------------------------------------------------- the module's other names


def test_dtypes_and_constants_pass_through():
    assert cp.float32 is np.float32 and cp.float64 is np.float64 and cp.uint8 is np.uint8 and cp.bool_ is np.bool_
    assert cp.dtype is np.dtype and cp.finfo is np.finfo
    assert cp.newaxis is None and cp.pi == np.pi and cp.inf == np.inf and np.isnan(cp.nan)


def test_host_modules_are_not_mirrored():
    with pytest.raises(AttributeError, match="random"):
        cp.random  # noqa: B018
    with pytest.raises(AttributeError):
        cp.no_such_function  # noqa: B018


def test_get_array_module(x):
    assert cp.get_array_module(x, np.ones(1)) is cp
    assert cp.get_array_module(np.ones(1), 2.0) is np


def test_cuda_namespace(patched, monkeypatch):
    assert cp.cuda.runtime.getDeviceCount() == 1
    free, total = cp.cuda.runtime.memGetInfo()
    assert 0 < free <= total
    monkeypatch.setattr(cp.cuda.runtime, "free_bytes", 123)
    assert scratchnst.backend.device_memory_bytes() == 123
    with cp.cuda.Device(0) as d:
        assert d.id == 0


def test_a_host_leak_in_a_function_is_caught(patched, rng):
    """The stand-in's use: a function that sneaks a host array into device arithmetic fails on the CPU too."""
    weights = np.array([0.25, 0.5, 0.25])

    def leaky(a):
        xp = scratchnst.backend.array_module(a)
        return xp.sum(a * weights)  # fine on NumPy, a TypeError on CuPy

    def fixed(a):
        xp = scratchnst.backend.array_module(a)
        return xp.sum(a * xp.asarray(weights))

    host = rng.standard_normal(3)
    assert leaky(host) == pytest.approx(float(fixed(cp.asarray(host))))
    with pytest.raises(TypeError, match="Unsupported type"):
        leaky(cp.asarray(host))


def test_boolean_mask_indexing_is_a_synchronisation():
    """Reading or writing through a boolean mask needs the mask's count on the host: one sync each."""
    x = cp.asarray(np.arange(6.0))
    cp.reset_counters()
    y = x[x > 2]
    x[x > 4] = 0.0
    assert cp.SYNCS.kinds["mask"] == 2
    assert float(y.sum()) == 3 + 4 + 5
