"""Finite-difference checks of every op in scratchnst.layers, plus forward semantics.

Inputs are drawn on the host from a seeded generator and moved to the backend, in
float64. Floor: relative error <= 1e-7 (see scratchnst.gradcheck.rel_error).
"""

import numpy as np
import pytest

from scratchnst.backend import to_numpy
from scratchnst.network import layers as L
from scratchnst.network.gradcheck import check_vjp, numerical_vjp, rel_error

FLOOR = 1e-7


def away_from_zero(rng, shape, gap=1e-2):
    """Uniform values in +-[gap, 1]: no entry within a finite-difference step of ReLU's kink."""
    return rng.uniform(gap, 1.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape):
    """A random permutation of well-separated values: no ties in any pooling window,
    and no entry close enough to another for a finite-difference step to swap them."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 + rng.uniform(0, 0.01, n)).reshape(shape)


def direct_conv(x, w, b, pad):
    """Convolution by its definition, four nested sums, as an independent reference."""
    C, H, W = x.shape
    O, _, kh, kw = w.shape
    xpad = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = H + 2 * pad - kh + 1, W + 2 * pad - kw + 1
    out = np.zeros((O, Ho, Wo))
    for o in range(O):
        for i in range(Ho):
            for j in range(Wo):
                out[o, i, j] = b[o] + np.sum(w[o] * xpad[:, i : i + kh, j : j + kw])
    return out


# (C, H, W, O, k, pad): odd sizes, 1x1, 3x3 and 5x5 kernels, with and without padding
CONV_CASES = [(3, 5, 4, 2, 3, 1), (2, 7, 6, 3, 3, 1), (1, 4, 5, 2, 1, 0), (2, 6, 5, 2, 5, 2), (3, 5, 5, 2, 3, 0)]


@pytest.mark.parametrize("C,H,W,O,k,pad", CONV_CASES)
def test_conv_forward_matches_definition(rng, xp, C, H, W, O, k, pad):
    x, w, b = rng.standard_normal((C, H, W)), rng.standard_normal((O, C, k, k)), rng.standard_normal(O)
    out, _ = L.conv2d_forward(xp.asarray(x), xp.asarray(w), xp.asarray(b), pad=pad)
    ref = direct_conv(x, w, b, pad)
    assert out.shape == ref.shape
    assert rel_error(to_numpy(out), ref) < 1e-13


@pytest.mark.parametrize("C,H,W,O,k,pad", CONV_CASES)
def test_conv_backward_gradcheck(rng, xp, C, H, W, O, k, pad):
    x = xp.asarray(rng.standard_normal((C, H, W)))
    w = xp.asarray(rng.standard_normal((O, C, k, k)))
    b = xp.asarray(rng.standard_normal(O))
    out, cache = L.conv2d_forward(x, w, b, pad=pad)
    dout = xp.asarray(rng.standard_normal(out.shape))
    dx, dw, db = L.conv2d_backward(dout, cache)
    errs = {
        "dx": check_vjp(lambda z: L.conv2d_forward(z, w, b, pad)[0], x, dout, dx),
        "dw": check_vjp(lambda z: L.conv2d_forward(x, z, b, pad)[0], w, dout, dw),
        "db": check_vjp(lambda z: L.conv2d_forward(x, w, z, pad)[0], b, dout, db),
    }
    print(f"conv {C}x{H}x{W} k={k} pad={pad}: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    assert max(errs.values()) < FLOOR, errs


def test_conv_does_not_modify_input(rng):
    x, w, b = rng.standard_normal((2, 4, 4)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    x0 = x.copy()
    L.conv2d_forward(x, w, b)
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("shape", [(3, 5, 4), (2, 7, 3), (1, 1, 1)])
def test_relu_gradcheck(rng, xp, shape):
    x = xp.asarray(away_from_zero(rng, shape))
    out, cache = L.relu_forward(x)
    np.testing.assert_array_equal(to_numpy(out), np.maximum(to_numpy(x), 0))
    dout = xp.asarray(rng.standard_normal(shape))
    err = check_vjp(lambda z: L.relu_forward(z)[0], x, dout, L.relu_backward(dout, cache))
    print(f"relu {shape}: {err:.1e}")
    assert err < FLOOR


def test_relu_gradient_at_zero_is_zero(xp):
    x = xp.asarray([[[-1.0, 0.0, 2.0]]])
    _, cache = L.relu_forward(x)
    np.testing.assert_array_equal(to_numpy(L.relu_backward(xp.ones_like(x), cache)), [[[0, 0, 1]]])


@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("shape", [(2, 6, 4), (3, 6, 5), (1, 7, 7), (2, 5, 8), (1, 2, 2), (1, 3, 3)])
def test_pool_gradcheck(rng, xp, pool, shape):
    forward = L.max_pool_forward if pool == "max" else L.avg_pool_forward
    backward = L.max_pool_backward if pool == "max" else L.avg_pool_backward
    x = xp.asarray(distinct(rng, shape))
    out, cache = forward(x)
    assert out.shape == (shape[0], shape[1] // 2, shape[2] // 2)  # floored: 6x5 -> 3x2
    dout = xp.asarray(rng.standard_normal(out.shape))
    dx = backward(dout, cache)
    assert dx.shape == shape
    err = check_vjp(lambda z: forward(z)[0], x, dout, dx)
    print(f"{pool}pool {shape}: {err:.1e}")
    assert err < FLOOR


def test_pool_forward_values():
    x = np.arange(30.0).reshape(1, 6, 5)  # 6x5 -> 3x2, the last column dropped
    mx, _ = L.max_pool_forward(x)
    av, _ = L.avg_pool_forward(x)
    np.testing.assert_array_equal(mx, [[[6, 8], [16, 18], [26, 28]]])
    np.testing.assert_array_equal(av, [[[3, 5], [13, 15], [23, 25]]])


def test_max_pool_ties_route_to_first_maximum(xp):
    # every window holds four equal values: the first in row-major order gets it all
    x = xp.ones((1, 4, 4))
    _, cache = L.max_pool_forward(x)
    dx = to_numpy(L.max_pool_backward(xp.full((1, 2, 2), 5.0), cache))
    expected = np.zeros((1, 4, 4))
    expected[0, ::2, ::2] = 5.0
    np.testing.assert_array_equal(dx, expected)
    # a tie between positions (0,1) and (1,0): (0,1) comes first
    x = xp.asarray([[[0.0, 3.0], [3.0, 1.0]]])
    _, cache = L.max_pool_forward(x)
    np.testing.assert_array_equal(to_numpy(L.max_pool_backward(xp.ones((1, 1, 1)), cache)), [[[0, 1], [0, 0]]])


def test_checker_catches_a_wrong_gradient(rng):
    """The checker must be able to fail: a transposed kernel, a dropped factor, an
    off-by-one in the max-pool routing all give large errors."""
    x, w, b = rng.standard_normal((2, 5, 5)), rng.standard_normal((2, 2, 3, 3)), rng.standard_normal(2)
    out, cache = L.conv2d_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    f = lambda z: L.conv2d_forward(z, w, b)[0]  # noqa: E731
    wrong_cache = cache._replace(w=w[:, :, ::-1, ::-1])  # forgot that backward flips the kernel
    assert check_vjp(f, x, dout, L.conv2d_backward_input(dout, wrong_cache)) > 1e-2
    assert check_vjp(f, x, dout, 0.5 * L.conv2d_backward_input(dout, cache)) > 1e-2

    x = distinct(rng, (1, 4, 4))
    out, cache = L.max_pool_forward(x)
    dout = rng.standard_normal(out.shape)
    wrong = cache._replace(argmax=(cache.argmax + 1) % 4)
    assert check_vjp(lambda z: L.max_pool_forward(z)[0], x, dout, L.max_pool_backward(dout, wrong)) > 1e-2


def test_checker_catches_a_wrong_relu_gradient(rng):
    """A ReLU backward that forgets the mask, or masks by the sign of dout instead of x, fails the check."""
    x = away_from_zero(rng, (3, 5, 4))
    out, cache = L.relu_forward(x)
    dout = rng.standard_normal(x.shape)
    f = lambda z: L.relu_forward(z)[0]  # noqa: E731
    assert check_vjp(f, x, dout, L.relu_backward(dout, cache)) < FLOOR
    for wrong in (dout, dout * (dout > 0)):
        assert check_vjp(f, x, dout, wrong) > 1e-2


def test_checker_catches_a_wrong_avg_pool_gradient(rng):
    """An average-pool backward without the 1/s^2, or that routes each window's gradient to one entry
    as max pooling does, fails the check; so does one that spreads gradient onto the floored-off column."""
    x = distinct(rng, (2, 6, 5))  # the last column is dropped by the floor
    out, cache = L.avg_pool_forward(x)
    dout = rng.standard_normal(out.shape)
    f = lambda z: L.avg_pool_forward(z)[0]  # noqa: E731
    dx = L.avg_pool_backward(dout, cache)
    assert check_vjp(f, x, dout, dx) < FLOOR
    first_entry = L.max_pool_backward(dout, L.PoolCache(x.shape, 2, np.zeros(out.shape, dtype=int)))
    spilled = dx.copy()
    spilled[:, :, -1] = dx[:, :, -2]  # gradient for inputs the forward never read
    for wrong in (4 * dx, first_entry, spilled):
        assert check_vjp(f, x, dout, wrong) > 1e-2


def test_numerical_vjp_of_a_known_function():
    """The checker against a gradient worked out by hand: f(x) = x**3 has f' = 3x**2."""
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    dout = np.array([[1.0, 2.0], [-1.0, 0.5]])
    np.testing.assert_allclose(numerical_vjp(lambda z: z**3, x, dout), dout * 3 * x**2, rtol=1e-9)
