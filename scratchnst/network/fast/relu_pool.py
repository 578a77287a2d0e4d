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
from scratchnst.network.fast.threads import split_over_threads, transform_threads

# Channels per block of the CPU passes: a block's input (here 512 KiB and up) is read
# from memory once and then from cache by the passes that follow. Whole channels
# always; on a GPU one block (a kernel launch per block would cost more than it saves).
BLOCK_BYTES = 512 << 10


def _channel_blocks(xp, lo, hi, channel_bytes):
    """``(c0, c1)`` blocks of channels ``lo:hi`` of about ``BLOCK_BYTES`` each (one block on a GPU)."""
    step = hi - lo if xp is not np else max(1, BLOCK_BYTES // max(channel_bytes, 1))
    return [(c0, min(c0 + step, hi)) for c0 in range(lo, hi, max(step, 1))]


# --------------------------------------------------------------------------- ReLU


def _blockwise(x, fn):
    """``fn(c0, c1)`` over blocks of ``x``'s channels (:data:`BLOCK_BYTES`), split over our threads on NumPy."""
    xp = array_module(x)
    channel_bytes = x[:1].nbytes  # one channel (C, ...) of x

    def blocks(lo, hi):
        for c0, c1 in _channel_blocks(xp, lo, hi, channel_bytes):
            fn(c0, c1)

    split_over_threads(transform_threads(xp), len(x), blocks)


def relu_forward_inplace(x):
    """ReLU that overwrites its input: ``x <- max(x, 0)``. Returns ``(x, mask)``.

    Only for arrays nobody else holds (a convolution's fresh output). The cache is
    the mask ``x > 0`` (bool, a quarter of the float32 activation), which is all
    the backward pass needs: see :func:`scratchnst.network.layers.relu_backward`.
    """
    xp = array_module(x)
    mask = xp.empty(x.shape, dtype=bool)

    def block(c0, c1):
        xp.maximum(x[c0:c1], 0, out=x[c0:c1])
        xp.greater(x[c0:c1], 0, out=mask[c0:c1])

    _blockwise(x, block)
    return x, mask


def relu_forward(x):
    """ReLU into a new array, ``(out, mask)``: for inputs that must survive (a requested conv output)."""
    xp = array_module(x)
    out = xp.maximum(x, 0)
    return out, out > 0


def relu_backward(dout, mask, inplace=False):
    """``dx = dout * [x > 0]`` (derivative 0 at the kink, as in PyTorch); in place when ``inplace``."""
    xp = array_module(dout)
    out = dout if inplace else xp.empty_like(dout)
    _blockwise(dout, lambda c0, c1: xp.multiply(dout[c0:c1], mask[c0:c1], out=out[c0:c1]))
    return out


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
    (``x[:, di::2, dj::2]``: corners a, b on the first row, c, d on the second) and
    the index of the first maximum is kept as uint8, by a tournament:

        m_ab = max(a, b)   i_ab = [b > a]          (0 or 1: a wins ties)
        m_cd = max(c, d)   i_cd = 2 + [d > c]      (2 or 3: c wins ties)
        out  = max(m_ab, m_cd)
        index = i_cd where m_cd > m_ab, else i_ab  (the first row wins ties)

    so every tie goes to the first maximum in row-major order, as the reference's
    argmax. On NumPy the channels are split over our threads, a cache-sized block at
    a time (:data:`BLOCK_BYTES`).
    """
    xp = array_module(x)
    C, H, W = x.shape
    Ho, Wo = H // 2, W // 2
    out = xp.empty((C, Ho, Wo), dtype=x.dtype)
    index = xp.empty((C, Ho, Wo), dtype=np.uint8)

    def block(c0, c1):
        a, b, c, d = (x[c0:c1, di : 2 * Ho : 2, dj : 2 * Wo : 2] for di, dj in _CORNERS)  # (k, Ho, Wo) views
        m_ab, m_cd = xp.maximum(a, b), xp.maximum(c, d)
        i_ab = (b > a).view(np.uint8)  # bool is one byte, 0 or 1
        i_cd = (d > c).view(np.uint8) + np.uint8(2)
        xp.maximum(m_ab, m_cd, out=out[c0:c1])
        index[c0:c1] = xp.where(m_cd > m_ab, i_cd, i_ab)

    _blockwise(x, block)
    return out, PoolCache(tuple(x.shape), index)


def max_pool_backward(dout, cache):
    """Gradient of 2x2 max pooling: ``dout`` routed to the first maximum of each window.

    See :func:`scratchnst.network.layers.max_pool_backward` for the derivation. The four
    corner writes together fill every entry of the windows, so only the rows and
    columns dropped by the floor (odd H or W) need zeros first.
    """
    xp = array_module(dout)
    shape, index = cache
    _, Ho, Wo = dout.shape
    dx = xp.empty(shape, dtype=dout.dtype)
    dx[:, 2 * Ho :] = 0
    dx[:, :, 2 * Wo :] = 0

    def block(c0, c1):
        for k, (di, dj) in enumerate(_CORNERS):
            xp.multiply(dout[c0:c1], index[c0:c1] == k, out=dx[c0:c1, di : 2 * Ho : 2, dj : 2 * Wo : 2])

    _blockwise(dx, block)
    return dx
