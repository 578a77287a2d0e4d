"""Checks for the "write it yourself" exercises of tutorials 02 to 05, in one place.

Each tutorial has a stub that raises ``NotImplementedError`` and a cell

    check_exercise("relu_backward", relu_backward)

which prints ``relu_backward: not implemented yet`` for the stub, and otherwise the
check's relative error and whether it passes. ``tests/test_exercises.py`` runs the same
checks on the reference answers in ``tutorials/solutions.py`` (they must pass) and on
deliberately wrong answers (they must fail), so a check that cannot fail is caught too.

Every check draws non-degenerate random inputs in float64 from a fixed seed and
compares with :mod:`scratchnst.network.gradcheck` (finite differences, or
``rel_error`` against an independent formula), as tutorial 02 explains.

The exercises, and the contract each function must meet:

* 02 ``relu_backward(dout, x) -> dx``: ReLU's backward from its *input* x.
* 03 ``content_cost(a, p, k) -> (J, da)``: ``J = k sum((a - p)^2)`` and ``dJ/da``.
* 04 ``gram_backward(dG, F) -> dF``: the gradient through ``G = F F^T`` for any
  (not necessarily symmetric) upstream ``dG``.
* 04 ``style_layer_cost(a, A, k) -> (J, da)``: ``J = k sum((gram(F) - A)^2)`` with
  ``F = a.reshape(N, h*w)``, and ``dJ/da`` shaped like ``a``.
* 05 ``two_loop(g, s, y) -> d``: the L-BFGS direction ``d = -H g`` from the pairs
  ``s[i], y[i]`` (oldest first), ``H_0 = gamma I`` with ``gamma = s'y / y'y`` of the
  newest pair; ``-g`` when there are no pairs.
"""

import numpy as np

from scratchnst.method.costs import gram
from scratchnst.network import gradcheck, layers

TOLERANCE = 1e-7  # float64 central differences reach ~1e-10 on these; a wrong gradient is off by >1e-2


def _rng():
    return np.random.default_rng(2016)


def check_relu_backward(relu_backward):
    """Relative error of ``relu_backward(dout, x)`` against finite differences of ReLU."""
    rng = _rng()
    x = rng.standard_normal((3, 5, 4))
    x = np.where(np.abs(x) < 0.1, 0.5, x)  # clear of the kink at 0 by far more than h
    dout = rng.standard_normal(x.shape)
    dx = np.asarray(relu_backward(dout, x.copy()), dtype=float)
    return gradcheck.check_vjp(lambda z: layers.relu_forward(z)[0], x, dout, dx)


def check_content_cost(content_cost):
    """Relative error of ``content_cost(a, p, k)``'s value and gradient (the larger of the two)."""
    rng = _rng()
    a, p, k = rng.standard_normal((8, 5, 6)), rng.standard_normal((8, 5, 6)), 0.37
    J, da = content_cost(a.copy(), p, k)
    value_err = abs(float(J) - k * np.sum((a - p) ** 2)) / (k * np.sum((a - p) ** 2))
    num = gradcheck.numerical_grad(lambda z: content_cost(z, p, k)[0], a)
    return max(value_err, gradcheck.rel_error(np.asarray(da, dtype=float), num))


def check_gram_backward(gram_backward):
    """Relative error of ``gram_backward(dG, F)`` against finite differences, for a non-symmetric dG."""
    rng = _rng()
    F = rng.standard_normal((6, 20))  # (N_l, M_l)
    dG = rng.standard_normal((6, 6))  # not symmetric: the shortcut 2 dG F fails here
    dF = np.asarray(gram_backward(dG, F.copy()), dtype=float)
    return gradcheck.check_vjp(gram, F, dG, dF)


def check_style_layer_cost(style_layer_cost):
    """Relative error of ``style_layer_cost(a, A, k)``'s value and gradient (the larger of the two)."""
    rng = _rng()
    a = rng.standard_normal((6, 4, 5))  # (N, h, w)
    A = gram(rng.standard_normal((6, 20)))  # a target Gram
    k = 1.0 / (4 * 6**2 * 20**2)
    J, da = style_layer_cost(a.copy(), A, k)
    expected = k * np.sum((gram(a.reshape(6, 20)) - A) ** 2)
    value_err = abs(float(J) - expected) / expected
    num = gradcheck.numerical_grad(lambda z: style_layer_cost(z, A, k)[0], a)
    return max(value_err, gradcheck.rel_error(np.asarray(da, dtype=float), num))


def bfgs_direction(g, s, y):
    """``-H g`` with H built densely by the BFGS update from ``H_0 = gamma I`` (the reference for ``two_loop``).

    ``H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T`` for each pair, oldest first,
    ``rho = 1 / y^T s``: what the two-loop recursion computes without forming H.
    """
    n = g.size
    if not s:
        return -g
    H = (s[-1] @ y[-1]) / (y[-1] @ y[-1]) * np.eye(n)
    for si, yi in zip(s, y):
        rho = 1.0 / (yi @ si)
        V = np.eye(n) - rho * np.outer(yi, si)
        H = V.T @ H @ V + rho * np.outer(si, si)
    return -H @ g


def check_two_loop(two_loop):
    """Relative error of ``two_loop(g, s, y)`` against the dense BFGS matrix, with 0, 1 and 4 pairs."""
    rng = _rng()
    n = 12
    Q = rng.standard_normal((n, n))
    Hess = Q @ Q.T + n * np.eye(n)  # a convex quadratic's Hessian: every pair has s'y > 0
    s = [rng.standard_normal(n) for _ in range(4)]
    y = [Hess @ si for si in s]
    g = rng.standard_normal(n)
    errors = []
    for m in (0, 1, 4):
        d = np.asarray(two_loop(g.copy(), [si.copy() for si in s[:m]], [yi.copy() for yi in y[:m]]), dtype=float)
        errors.append(gradcheck.rel_error(d, bfgs_direction(g, s[:m], y[:m])))
    return max(errors)


CHECKS = {
    "relu_backward": check_relu_backward,
    "content_cost": check_content_cost,
    "gram_backward": check_gram_backward,
    "style_layer_cost": check_style_layer_cost,
    "two_loop": check_two_loop,
}


def check_exercise(name, fn, verbose=True):
    """Run exercise ``name``'s check on ``fn``.

    Returns None when ``fn`` raises ``NotImplementedError`` (the stub), else whether the
    relative error is below :data:`TOLERANCE`. Prints one line saying which, unless
    ``verbose`` is False.
    """
    try:
        err = CHECKS[name](fn)
    except NotImplementedError:
        if verbose:
            print(f"{name}: not implemented yet (fill in the stub above; tutorials/solutions.py has an answer)")
        return None
    ok = bool(err < TOLERANCE)
    if verbose:
        print(f"{name}: relative error {err:.1e} -> {'correct' if ok else 'WRONG (above ' + f'{TOLERANCE:.0e})'}")
    return ok
