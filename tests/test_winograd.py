"""Winograd convolution (scratchnst.winograd) against the reference convolution of
scratchnst.layers, by finite differences, and through the whole VGG19.

Floors as for the other fast paths (tests/test_fastconv.py): <= 1e-12 relative in
float64 and <= 1e-4 in float32 against the reference; finite differences <= 1e-7.
F(4x4, 3x3) is the default (conv="winograd"); F(2x2, 3x3) (conv="winograd2") is tested alike.
"""

import gc

import numpy as np
import pytest
from helpers import LAYERS_USED, conv_inputs  # tests/ is on sys.path (pytest rootdir conftest)

import scratchnst
from scratchnst.backend import to_numpy
from scratchnst.network import layers as L
from scratchnst.network.fast import gemm as fastconv
from scratchnst.network.fast import winograd as Wg
from scratchnst.network.fast import winograd_transforms as WT
from scratchnst.network.gradcheck import check_vjp, rel_error

FLOOR = {np.float64: 1e-12, np.float32: 1e-4}
MS = [2, 4]


@pytest.fixture
def every_layer(monkeypatch):
    """Winograd for every 3x3 conv, however few channels (normally thin ones go to the GEMM)."""
    monkeypatch.setattr(Wg, "MIN_CHANNELS", {2: 1, 4: 1})


@pytest.mark.parametrize("T", [WT.F2, WT.F4], ids=["F2", "F4"])
def test_one_dimensional_identity(rng, T):
    """y = A^T [(G g) * (B^T d)] is the 3-tap correlation y_i = sum_u g_u d_{i+u} (Lavin, eq. 5)."""
    for _ in range(5):
        g, d = rng.standard_normal(3), rng.standard_normal(T.m + 2)
        direct = np.array([g @ d[i : i + 3] for i in range(T.m)])
        np.testing.assert_allclose(T.AT @ ((T.G @ g) * (T.BT @ d)), direct, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize(
    "C,H,W,O,pad",
    [
        (1, 5, 4, 2, 1),
        (3, 7, 9, 5, 1),
        (16, 9, 7, 16, 1),
        (17, 10, 13, 33, 1),
        (4, 6, 5, 3, 0),
        (5, 5, 6, 4, 2),
        (2, 1, 1, 3, 1),
        (2, 2, 3, 3, 1),
    ],
)
def test_winograd_matches_reference(rng, xp, bands, every_layer, m, dtype, C, H, W, O, pad):
    x, w, b = conv_inputs(rng, xp, C, H, W, O, dtype)
    out = Wg.conv2d_forward_nocache(x, w, b, pad, m=m)
    ref, ref_cache = L.conv2d_forward(x, w, b, pad)
    assert out.shape == ref.shape and out.dtype == dtype and out.flags.c_contiguous
    dout = xp.asarray(rng.standard_normal(ref.shape), dtype=dtype)
    dx = Wg.conv2d_backward_input(dout, fastconv.ConvCache(x.shape, w, pad), m=m)
    assert dx.shape == x.shape and dx.dtype == dtype
    errs = rel_error(out, ref), rel_error(dx, L.conv2d_backward_input(dout, ref_cache))
    print(f"F({m}x{m}) {np.dtype(dtype).name} {C}x{H}x{W} -> {O} pad={pad}: fwd {errs[0]:.1e}, bwd {errs[1]:.1e}")
    assert max(errs) <= FLOOR[dtype], errs


@pytest.mark.parametrize(
    "C,O,k,pad", [(3, 64, 3, 1), (3, 64, 3, 0), (64, 3, 3, 1), (16, 16, 5, 2), (16, 16, 1, 0), (16, 16, 3, 3)]
)
def test_other_convs_fall_back_to_gemm(rng, xp, C, O, k, pad):
    """Thin layers, other kernel sizes and wide padding go to fastconv (and conv1_1's gradient,
    3 -> 64, to w^T dout and col2im) and still match the reference."""
    x = xp.asarray(rng.standard_normal((C, 8, 7)))
    w = xp.asarray(rng.standard_normal((O, C, k, k)))
    b = xp.asarray(rng.standard_normal(O))
    assert not any(Wg._use_winograd(w, pad, m) for m in MS)
    out, cache = Wg.conv2d_forward(x, w, b, pad)
    ref, ref_cache = L.conv2d_forward(x, w, b, pad)
    dout = xp.asarray(rng.standard_normal(ref.shape))
    dx = Wg.conv2d_backward_input(dout, cache)
    assert max(rel_error(out, ref), rel_error(dx, L.conv2d_backward_input(dout, ref_cache))) <= 1e-12


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize(
    "C,H,W,O,pad", [(2, 5, 4, 3, 1), (3, 6, 7, 2, 1), (2, 5, 5, 2, 0), (2, 4, 5, 3, 2), (1, 5, 6, 9, 1)]
)  # the last: 9 C <= O, the gradient by w^T dout and col2im
def test_winograd_backward_gradcheck(rng, xp, every_layer, m, C, H, W, O, pad):
    x, w, b = conv_inputs(rng, xp, C, H, W, O, np.float64)
    out = Wg.conv2d_forward_nocache(x, w, b, pad, m=m)
    dout = xp.asarray(rng.standard_normal(out.shape))
    dx = Wg.conv2d_backward_input(dout, fastconv.ConvCache(x.shape, w, pad), m=m)
    err = check_vjp(lambda z: Wg.conv2d_forward_nocache(z, w, b, pad, m=m), x, dout, dx)
    assert err < 1e-7, err


def test_gradcheck_catches_an_unflipped_winograd_kernel(rng, every_layer):
    """The backward convolution with the forward kernel merely transposed must fail the check."""
    x, w, b = conv_inputs(rng, np, 2, 5, 6, 3, np.float64)
    out = Wg.conv2d_forward_nocache(x, w, b, 1)
    dout = rng.standard_normal(out.shape)
    U_wrong = WT.kernel_transform(np.ascontiguousarray(w.transpose(1, 0, 2, 3)), WT.F2)
    wrong = Wg.winograd_conv3x3(dout, U_wrong, WT.F2, 1)
    assert check_vjp(lambda z: Wg.conv2d_forward_nocache(z, w, b, 1), x, dout, wrong) > 1e-2


@pytest.mark.parametrize("m", MS)
def test_outputs_with_an_all_zero_window_are_exact_zeros(rng, xp, every_layer, m):
    """As with the direct convolution: the gradient of one unit is exactly 0 outside its receptive field."""
    w = xp.asarray(rng.uniform(0.5, 1.5, (6, 5, 3, 3)))
    dout = xp.zeros((6, 13, 11))
    dout[2, 6, 4] = 1.0
    dx = Wg.conv2d_backward_input(dout, fastconv.ConvCache((5, 13, 11), w, 1), m=m)
    rows, cols = np.nonzero(np.abs(to_numpy(dx)).sum(axis=0))
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (5, 8, 3, 6)
    x = xp.zeros((5, 13, 11))
    x[:, 0, 0] = 1.0
    out = Wg.conv2d_forward_nocache(x, xp.asarray(rng.standard_normal((6, 5, 3, 3))), None, 1, m=m)
    assert int(xp.count_nonzero(out[:, 2:, :])) == 0 and int(xp.count_nonzero(out[:, :, 2:])) == 0


def test_forward_leaves_its_input_alone_and_caches_no_input(rng):
    x, w, b = conv_inputs(rng, np, 16, 6, 5, 16, np.float32)
    x0 = x.copy()
    _, cache = Wg.conv2d_forward(x, w, b)
    np.testing.assert_array_equal(x, x0)
    assert cache.shape == x.shape and not any(c is x for c in cache)


def test_kernel_cache_follows_the_array_object(rng):
    cache = WT.KernelCache()
    w = rng.standard_normal((4, 3, 3, 3))
    U = cache.get(w, WT.F2)
    assert cache.get(w, WT.F2) is U  # computed once per kernel
    Ub = cache.get(w, WT.F2, flip=True)
    np.testing.assert_allclose(Ub, WT.kernel_transform(fastconv.flipped_transposed(w), WT.F2))
    w2 = w.copy()  # equal values, another array: its own entry
    assert cache.get(w2, WT.F2) is not U and len(cache) == 3
    del w, U, Ub
    gc.collect()
    assert len(cache) == 1  # entries die with their kernel


# ---------------------------------------------------------------- the whole network


@pytest.fixture(scope="module")
def reference64():
    return scratchnst.load_vgg19(dtype="float64", conv="im2col")


@pytest.mark.parametrize("m", MS)
def test_vgg19_float32_winograd_matches_float64_reference(reference64, rng, monkeypatch, m):
    """Style transfer's layers and input gradient, odd size (tiles are cropped at every depth)."""
    monkeypatch.setattr(Wg, "DEFAULT_M", m)
    x = rng.uniform(-100, 100, (3, 45, 39))
    acts_ref = reference64.forward(x, LAYERS_USED)
    grads = {n: rng.standard_normal(a.shape) for n, a in acts_ref.items()}
    g_ref = reference64.backward(grads)
    net = scratchnst.load_vgg19(dtype="float32", conv="winograd")
    acts = net.forward(x.astype(np.float32), LAYERS_USED)
    g = net.backward({n: a.astype(np.float32) for n, a in grads.items()})
    fwd = max(rel_error(acts[n], acts_ref[n]) for n in LAYERS_USED)
    bwd = rel_error(g, g_ref)
    print(f"VGG19 float32 F({m}x{m}) vs float64 reference: forward {fwd:.1e}, backward {bwd:.1e}")
    assert g.dtype == np.float32
    assert max(fwd, bwd) <= 1e-4
