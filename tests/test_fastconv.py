"""The fast ops of scratchnst.fastconv against the reference ops of scratchnst.layers,
and by finite differences on their own.

Floors: fast vs reference <= 1e-12 relative in float64 and <= 1e-4 in float32
(rounding only: the same sums in another order); finite differences <= 1e-7 (float64).
Timing is the benchmarks' business (benchmarks/), never a test's.

The small cases have too few channels for Winograd to pay (``MIN_CHANNELS``), so without
help the ``winograd`` and ``winograd2`` parametrisations would quietly repeat the GEMM's
tests: the ``winograd_calls`` fixture lowers the threshold, as test_winograd.py's
``every_layer`` does, and counts the Winograd convolutions, and each test asserts the count.
"""

import numpy as np
import pytest
from helpers import LAYERS_USED, conv_inputs  # tests/ is on sys.path (pytest rootdir conftest)
from test_layers import CONV_CASES, distinct

import scratchnst
from scratchnst.backend import to_numpy
from scratchnst.network import layers as L
from scratchnst.network.fast import gemm as F
from scratchnst.network.fast import relu_pool as RP
from scratchnst.network.fast import winograd as Wg
from scratchnst.network.gradcheck import check_directional, check_vjp, rel_error
from scratchnst.network.vgg import CONV_ALGORITHMS, REFERENCE_CONV

FAST_CONVS = [name for name in CONV_ALGORITHMS if name != REFERENCE_CONV]
FLOOR = {np.float64: 1e-12, np.float32: 1e-4}
WINOGRAD_M = {"winograd": 4, "winograd2": 2}  # the tile size each algorithm must use, F(m x m, 3 x 3)


def spy_on_winograd(monkeypatch):
    """Count the calls of ``winograd_conv3x3`` and of its adjoint (the input gradient); the tile size m of each."""
    calls, real, real_adjoint = [], Wg.winograd_conv3x3, Wg.winograd_conv3x3_adjoint

    def spy(x, U, T, pad=1):
        calls.append(T.m)
        return real(x, U, T, pad)

    def spy_adjoint(dout, U, T, *args):
        calls.append(T.m)
        return real_adjoint(dout, U, T, *args)

    monkeypatch.setattr(Wg, "winograd_conv3x3", spy)
    monkeypatch.setattr(Wg, "winograd_conv3x3_adjoint", spy_adjoint)
    return calls


@pytest.fixture
def winograd_calls(monkeypatch):
    """Winograd for every 3x3 conv, however few channels, and the list of its calls (``spy_on_winograd``)."""
    monkeypatch.setattr(Wg, "MIN_CHANNELS", {2: 1, 4: 1})
    return spy_on_winograd(monkeypatch)


def expected_winograd_calls(algo, C, O, k):
    """Winograd convolutions in one forward and one input gradient: the forward for every 3x3 kernel; the
    gradient too, unless the layer has so few input channels (9 C <= O) that it goes the col2im way."""
    if algo not in WINOGRAD_M:
        return []
    return [WINOGRAD_M[algo]] * ((k == 3) + (k == 3 and 9 * C > O))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("algo", FAST_CONVS)
@pytest.mark.parametrize("C,H,W,O,k,pad", CONV_CASES + [(4, 9, 7, 5, 3, 1), (3, 10, 12, 2, 3, 1)])
def test_fast_conv_matches_reference(rng, xp, bands, winograd_calls, algo, dtype, C, H, W, O, k, pad):
    forward, backward = CONV_ALGORITHMS[algo]
    x, w, b = conv_inputs(rng, xp, C, H, W, O, dtype, k)
    out, cache = forward(x, w, b, pad)
    ref, ref_cache = L.conv2d_forward(x, w, b, pad)
    assert out.shape == ref.shape and out.dtype == dtype
    dout = xp.asarray(rng.standard_normal(ref.shape), dtype=dtype)
    dx, dx_ref = backward(dout, cache), L.conv2d_backward_input(dout, ref_cache)
    assert dx.shape == x.shape and dx.dtype == dtype
    assert winograd_calls == expected_winograd_calls(algo, C, O, k)
    errs = rel_error(out, ref), rel_error(dx, dx_ref)
    print(f"{algo} {np.dtype(dtype).name} conv {C}x{H}x{W} k={k} pad={pad}: fwd {errs[0]:.1e}, bwd {errs[1]:.1e}")
    assert max(errs) <= FLOOR[dtype], errs


@pytest.mark.parametrize("algo", FAST_CONVS)
@pytest.mark.parametrize("C,H,W,O,k,pad", CONV_CASES)
def test_fast_conv_backward_gradcheck(rng, xp, bands, winograd_calls, algo, C, H, W, O, k, pad):
    forward, backward = CONV_ALGORITHMS[algo]
    x, w, b = conv_inputs(rng, xp, C, H, W, O, np.float64, k)
    out, cache = forward(x, w, b, pad)
    dout = xp.asarray(rng.standard_normal(out.shape))
    dx = backward(dout, cache)
    assert winograd_calls == expected_winograd_calls(algo, C, O, k)
    err = check_vjp(lambda z: forward(z, w, b, pad)[0], x, dout, dx)
    assert err < 1e-7, err


@pytest.mark.parametrize("algo", list(WINOGRAD_M))
def test_winograd_from_min_channels_up(rng, monkeypatch, algo):
    """With the real threshold: a layer of MIN_CHANNELS channels each side runs Winograd (and matches the
    reference), one channel fewer runs the GEMM."""
    m = WINOGRAD_M[algo]
    forward, backward = CONV_ALGORITHMS[algo]
    calls = spy_on_winograd(monkeypatch)
    for C, expected in [(Wg.MIN_CHANNELS[m], [m, m]), (Wg.MIN_CHANNELS[m] - 1, [])]:
        calls.clear()
        x, w, b = conv_inputs(rng, np, C, 6, 5, C, np.float64)
        out, cache = forward(x, w, b, 1)
        ref, ref_cache = L.conv2d_forward(x, w, b, 1)
        dout = rng.standard_normal(ref.shape)
        dx = backward(dout, cache)
        assert calls == expected, (C, calls)
        assert max(rel_error(out, ref), rel_error(dx, L.conv2d_backward_input(dout, ref_cache))) <= FLOOR[np.float64]


def test_fast_conv_keeps_only_what_backward_needs(rng):
    x, w, b = conv_inputs(rng, np, 2, 5, 5, 3, np.float32, 3)
    x0 = x.copy()
    _, cache = F.conv2d_forward(x, w, b)
    np.testing.assert_array_equal(x, x0)  # forward never modifies its input
    assert cache.shape == x.shape and not any(c is x for c in cache)


def test_gradcheck_catches_a_wrong_fast_gradient(rng):
    """An unflipped kernel in the backward convolution must fail the check."""
    x, w, b = conv_inputs(rng, np, 2, 5, 6, 3, np.float64, 3)
    out, cache = F.conv2d_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    wrong = F.conv2d_forward_nocache(dout, np.ascontiguousarray(w.transpose(1, 0, 2, 3)), None, 1)
    assert check_vjp(lambda z: F.conv2d_forward(z, w, b)[0], x, dout, wrong) > 1e-2


# ---------------------------------------------------------------- ReLU and pooling


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_inplace_matches_reference(rng, xp, dtype):
    x = xp.asarray(rng.standard_normal((3, 7, 5)), dtype=dtype)
    x[0, 0, 0] = 0.0  # the kink: derivative 0, as in the reference
    ref, ref_cache = L.relu_forward(x)
    dout = xp.asarray(rng.standard_normal(x.shape), dtype=dtype)
    dref = L.relu_backward(dout, ref_cache)

    out, mask = RP.relu_forward(x)
    assert out is not x and mask.dtype == bool
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ref))
    np.testing.assert_array_equal(to_numpy(RP.relu_backward(dout, mask)), to_numpy(dref))

    y = x.copy()
    out, mask = RP.relu_forward_inplace(y)
    assert out is y  # overwritten, no new array
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ref))
    d = dout.copy()
    assert RP.relu_backward(d, mask, inplace=True) is d
    np.testing.assert_array_equal(to_numpy(d), to_numpy(dref))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(2, 6, 4), (3, 6, 5), (1, 7, 7), (2, 5, 8), (1, 2, 2), (1, 3, 3)])
def test_fast_max_pool_matches_reference(rng, xp, dtype, shape):
    x = xp.asarray(distinct(rng, shape), dtype=dtype)
    out, cache = RP.max_pool_forward(x)
    ref, ref_cache = L.max_pool_forward(x)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(ref))
    np.testing.assert_array_equal(to_numpy(cache.index), to_numpy(ref_cache.argmax))
    assert cache.index.dtype == np.uint8
    dout = xp.asarray(rng.standard_normal(ref.shape), dtype=dtype)
    dx = RP.max_pool_backward(dout, cache)
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(L.max_pool_backward(dout, ref_cache)))
    if dtype == np.float64:
        assert check_vjp(lambda z: RP.max_pool_forward(z)[0], x, dout, dx) < 1e-7


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_blocks_and_threads_of_the_pool_and_relu_passes_change_nothing(rng, xp, monkeypatch, threads):
    # Small integers: ties in most windows. Blocks of 3 channels (of 13, over the threads)
    # exercise every split; odd H and W exercise the floor's dropped row and column.
    from scratchnst.network.fast.threads import set_num_threads

    monkeypatch.setattr(RP, "BLOCK_BYTES", 3 * 11 * 9 * 4)
    previous = set_num_threads(threads)
    try:
        x = xp.asarray(rng.integers(-2, 3, size=(13, 11, 9)), dtype=np.float32)
        out, cache = RP.max_pool_forward(x)
        ref, ref_cache = L.max_pool_forward(x)
        np.testing.assert_array_equal(to_numpy(out), to_numpy(ref))
        np.testing.assert_array_equal(to_numpy(cache.index), to_numpy(ref_cache.argmax))
        dout = xp.asarray(rng.standard_normal(ref.shape), dtype=np.float32)
        np.testing.assert_array_equal(to_numpy(RP.max_pool_backward(dout, cache)),
                                      to_numpy(L.max_pool_backward(dout, ref_cache)))
        y, mask = RP.relu_forward_inplace(x.copy())
        np.testing.assert_array_equal(to_numpy(y), np.maximum(to_numpy(x), 0))
        np.testing.assert_array_equal(to_numpy(mask), to_numpy(x) > 0)
        d = xp.asarray(rng.standard_normal(x.shape), dtype=np.float32)
        np.testing.assert_array_equal(to_numpy(RP.relu_backward(d, mask)), to_numpy(d) * (to_numpy(x) > 0))
    finally:
        set_num_threads(previous)


def test_fast_max_pool_ties_route_to_first_maximum(xp):
    x = xp.asarray([[[0.0, 3.0, 5.0, 5.0], [3.0, 1.0, 5.0, 5.0]]])  # ties (0,1)=(1,0); all four equal
    _, cache = RP.max_pool_forward(x)
    dx = to_numpy(RP.max_pool_backward(xp.ones((1, 1, 2)), cache))
    np.testing.assert_array_equal(dx, [[[0, 1, 1, 0], [0, 0, 0, 0]]])


# ---------------------------------------------------------------- the whole network


@pytest.fixture(scope="module")
def nets():
    """{(conv, dtype): network} for the reference and every fast algorithm, NumPy."""
    return {
        (conv, dtype): scratchnst.load_vgg19(dtype=dtype, conv=conv)
        for conv in CONV_ALGORITHMS
        for dtype in ("float64", "float32")
    }



@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("algo", FAST_CONVS)
def test_fast_network_matches_reference(nets, rng, monkeypatch, algo, dtype):
    """Style transfer's layers, odd image size: activations and the input gradient."""
    x = rng.uniform(-100, 100, (3, 37, 29))
    acts_ref = nets[REFERENCE_CONV, dtype].forward(x, LAYERS_USED)
    grads = {n: rng.standard_normal(a.shape).astype(dtype) for n, a in acts_ref.items()}
    g_ref = nets[REFERENCE_CONV, dtype].backward(grads)
    calls = spy_on_winograd(monkeypatch)
    acts = nets[algo, dtype].forward(x, LAYERS_USED)
    g = nets[algo, dtype].backward(grads)
    # The real threshold, 13 convs up to relu5_1: F(4x4) for all 12 but conv1_1 (3 input channels), forward
    # and gradient; F(2x2) for the 10 with at least 128 channels each side (not conv1_x, conv2_1).
    assert calls == {"winograd": [4] * 24, "winograd2": [2] * 20}.get(algo, []), calls
    fwd = max(rel_error(acts[n], acts_ref[n]) for n in LAYERS_USED)
    bwd = rel_error(g, g_ref)
    print(f"{algo} {dtype} VGG19 vs reference: forward {fwd:.1e}, backward {bwd:.1e}")
    assert g.dtype == np.dtype(dtype)
    assert max(fwd, bwd) <= FLOOR[np.dtype(dtype).type]


@pytest.mark.parametrize("algo", FAST_CONVS)
def test_fast_network_directional_gradcheck(nets, rng, algo):
    net = nets[algo, "float64"]
    x = rng.uniform(-100, 100, (3, 35, 27))
    acts = net.forward(x, LAYERS_USED)
    g = {n: rng.standard_normal(a.shape) for n, a in acts.items()}

    def loss(z):
        a = net.forward(z, LAYERS_USED)
        return sum(np.sum(g[n] * a[n]) for n in LAYERS_USED)

    grad = net.backward(g)
    err, analytic, numeric = check_directional(loss, x, grad, seed=5, h=1e-4)
    print(f"{algo} VGG19 directional check: {analytic:.10e} vs {numeric:.10e}, rel {err:.1e}")
    assert err <= 1e-7


@pytest.mark.parametrize("algo", FAST_CONVS)
def test_in_place_ops_leave_requested_and_given_arrays_alone(nets, rng, algo):
    """A requested conv output is not overwritten by its ReLU; backward leaves the
    caller's gradient arrays untouched, and may be called twice after one forward."""
    net = nets[algo, "float64"]
    x = rng.uniform(-100, 100, (3, 12, 10))
    acts = net.forward(x, ["conv1_2", "relu1_2", "relu2_1"])
    assert (acts["conv1_2"] < 0).any()
    np.testing.assert_array_equal(acts["relu1_2"], np.maximum(acts["conv1_2"], 0))
    ref = nets[REFERENCE_CONV, "float64"].forward(x, ["conv1_2"])["conv1_2"]
    assert rel_error(acts["conv1_2"], ref) < 1e-12
    g = {"relu1_2": rng.standard_normal(acts["relu1_2"].shape), "relu2_1": rng.standard_normal(acts["relu2_1"].shape)}
    g0 = {n: a.copy() for n, a in g.items()}
    first = net.backward(g)
    for n in g:
        np.testing.assert_array_equal(g[n], g0[n])
    np.testing.assert_array_equal(net.backward(g), first)
