"""Finite-difference checks of hand-derived gradients.

Two forms, both with central differences in float64:

* :func:`numerical_vjp` estimates the vector-Jacobian product
  ``dx = d/dx sum(dout * f(x))`` one input coordinate at a time,
  ``(L(x + h e_i) - L(x - h e_i)) / 2h``. This is exactly what an
  ``op_backward(dout, cache)`` returns, so it checks a backward pass entry by
  entry. Cost: two forward passes per input element, fine for small ops.
* :func:`directional_derivative` estimates ``d/dt L(x + t v)`` at ``t = 0`` for one
  random direction ``v``: a single scalar finite difference, which must equal
  ``<grad L(x), v>``. Cheap enough for the whole VGG19.

:func:`rel_error` is the comparison both report,
``max|a - b| / max(max|a|, max|b|, tiny)``: the error relative to the size of
the gradient, so it is meaningful whether gradients are large or small.

Because central differences have truncation error O(h^2 f''') and rounding
error O(eps |f| / h), h = 1e-5 in float64 gives about 1e-10 relative accuracy on
smooth functions. For piecewise-linear ops (ReLU, max pooling) keep inputs away
from the kinks (by more than h), or the estimate straddles a kink.
"""

import numpy as np

from scratchnst.backend import array_module, to_float


def rel_error(a, b):
    """``max|a - b| / max(max|a|, max|b|)``: the relative error between two arrays."""
    xp = array_module(a)
    a = xp.asarray(a, dtype=np.float64)
    b = xp.asarray(b, dtype=np.float64)
    scale = max(to_float(xp.abs(a).max()), to_float(xp.abs(b).max()), 1e-300)
    return to_float(xp.abs(a - b).max()) / scale


def numerical_vjp(f, x, dout, h=1e-5):
    """Central-difference estimate of ``d/dx sum(dout * f(x))``.

    Parameters
    ----------
    f : callable
        Maps an array shaped like ``x`` to an array shaped like ``dout``.
    x : ndarray, float64
        Point of evaluation. Perturbed in place one entry at a time and restored.
    dout : ndarray
        Upstream gradient (the "vector" of the vector-Jacobian product).
    h : float
        Step.

    Returns
    -------
    dx : ndarray, shaped like ``x``.
    """
    xp = array_module(x)
    dx = xp.zeros_like(x)
    if not x.flags.c_contiguous:
        raise ValueError("numerical_vjp perturbs x in place through a flat view: pass a contiguous array")
    flat, dflat = x.reshape(-1), dx.reshape(-1)  # views into x and dx
    for i in range(flat.size):
        old = flat[i].copy()
        flat[i] = old + h
        plus = xp.sum(dout * f(x))
        flat[i] = old - h
        minus = xp.sum(dout * f(x))
        flat[i] = old
        dflat[i] = (plus - minus) / (2 * h)
    return dx


def numerical_grad(loss, x, h=1e-5):
    """Central-difference gradient of a scalar function ``loss(x)``."""
    xp = array_module(x)
    return numerical_vjp(lambda z: xp.asarray(loss(z)), x, xp.asarray(1.0), h)


def directional_derivative(loss, x, v, h=1e-5):
    """Central-difference estimate of ``d/dt loss(x + t v)`` at ``t = 0``.

    Compare it with ``sum(grad * v)`` of the analytic gradient.
    """
    return (to_float(loss(x + h * v)) - to_float(loss(x - h * v))) / (2 * h)


def check_vjp(f, x, dout, dx, h=1e-5):
    """Relative error between an analytic ``dx`` and :func:`numerical_vjp`."""
    return rel_error(dx, numerical_vjp(f, x, dout, h))


def check_directional(loss, x, grad, seed=0, h=1e-5):
    """Relative error of ``<grad, v>`` against a finite difference along random ``v``.

    ``v`` is drawn on the host from ``np.random.default_rng(seed)`` (unit
    normal entries) and moved to ``x``'s device, so NumPy and CuPy see the same
    direction. Returns ``(rel_err, analytic, numeric)``.
    """
    xp = array_module(x)
    v = xp.asarray(np.random.default_rng(seed).standard_normal(x.shape), dtype=x.dtype)
    analytic = to_float(xp.sum(grad * v))
    numeric = directional_derivative(loss, x, v, h)
    err = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-300)
    return err, analytic, numeric
