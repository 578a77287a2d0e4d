"""ReLU and max pooling for the fast path: in place where safe, with compact caches.

The reference ops (:mod:`scratchnst.network.layers`) keep float32 activations and
int64 indices for their backward passes. These keep only what the backward needs,
and are tested against the reference (``tests/test_fastconv.py``):

* :func:`relu_forward_inplace` overwrites a convolution's fresh output, which
  nothing else holds (:class:`scratchnst.network.vgg.VGG19` decides when that is
  so), and caches *where* the ReLU was open: a bool mask, 1 byte instead of 4.
* :func:`max_pool_forward` caches *which* entry of each 2x2 window was the
  maximum: a uint8, 1 byte instead of 8.
"""

from typing import NamedTuple

import numpy as np

from scratchnst.backend import array_module

# --------------------------------------------------------------------------- ReLU


def relu_forward_inplace(x):
    """ReLU that overwrites its input: ``x <- max(x, 0)``. Returns ``(x, mask)``.

    Only for arrays nobody else holds (a convolution's fresh output). The cache is
    the mask ``x > 0`` (bool, a quarter of the float32 activation), which is all
    the backward pass needs: see :func:`scratchnst.network.layers.relu_backward`.
    """
    xp = array_module(x)
    xp.maximum(x, 0, out=x)
    return x, x > 0


def relu_forward(x):
    """ReLU into a new array, ``(out, mask)``: for inputs that must survive (a requested conv output)."""
    xp = array_module(x)
    out = xp.maximum(x, 0)
    return out, out > 0


def relu_backward(dout, mask, inplace=False):
    """``dx = dout * [x > 0]`` (derivative 0 at the kink, as in PyTorch); in place when ``inplace``."""
    xp = array_module(dout)
    if inplace:
        return xp.multiply(dout, mask, out=dout)
    return dout * mask


# --------------------------------------------------------------------------- max pooling


class PoolCache(NamedTuple):
    shape: tuple  # (C, H, W) of the input
    index: object  # (C, Ho, Wo) uint8: 0..3, which of the window's four entries was the (first) maximum


# Offsets of a 2x2 window's entries, in row-major order: the order of the tie rule.
_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def max_pool_forward(x):
    """2x2 max pooling, stride 2, floored, as :func:`scratchnst.network.layers.max_pool_forward`.

    The reference views the input as (C, Ho, Wo, 4) windows, which makes NumPy copy
    the strided view for ``argmax``. Here each window entry is a strided slice
    (``x[:, di::2, dj::2]``), the max is three elementwise maxima, and the index of
    the first maximum is kept as uint8.
    """
    xp = array_module(x)
    C, H, W = x.shape
    Ho, Wo = H // 2, W // 2
    corners = [x[:, di : 2 * Ho : 2, dj : 2 * Wo : 2] for di, dj in _CORNERS]  # 4 x (C, Ho, Wo) views
    out = xp.maximum(corners[0], corners[1])
    xp.maximum(out, corners[2], out=out)
    xp.maximum(out, corners[3], out=out)
    # Tie rule: the FIRST maximum in row-major order. Walk the corners backwards so
    # that an earlier corner that also equals the max overwrites a later one.
    # xp.where, not a masked assignment: CuPy would read each mask's count back to the host.
    index = xp.full(out.shape, 3, dtype=np.uint8)
    for k in (2, 1, 0):
        index = xp.where(corners[k] == out, np.uint8(k), index)
    return out, PoolCache(tuple(x.shape), index)


def max_pool_backward(dout, cache):
    """Gradient of 2x2 max pooling: ``dout`` routed to the first maximum of each window.

    See :func:`scratchnst.network.layers.max_pool_backward` for the derivation; rows and
    columns dropped by the floor get 0.
    """
    xp = array_module(dout)
    shape, index = cache
    _, Ho, Wo = dout.shape
    dx = xp.zeros(shape, dtype=dout.dtype)
    for k, (di, dj) in enumerate(_CORNERS):
        dx[:, di : 2 * Ho : 2, dj : 2 * Wo : 2] = dout * (index == k)
    return dx
