"""Fast versions of the ops in :mod:`scratchnst.layers`, for the stylization path.

The reference ops are written to be read; these are written to be run, and each is
tested against its reference (``tests/test_fastconv.py``): same results to float32
rounding, same finite-difference checks. What changes, and why:

* **Convolution in row bands** (:func:`conv2d_forward`). The reference builds the
  whole im2col matrix, ``kh*kw = 9`` copies of the input: 2.4 GB for conv1_2 of a
  1024 px image, and as much again for its gradient. Here the output is computed a
  band of rows at a time; each band's im2col block (at most ``BAND_BYTES``, reused
  for every band) is filled and multiplied straight into the output. Same GEMM
  (K = 9 C), same arithmetic, memory ``O(band)`` instead of ``O(9 * input)``.
* **Gradient as a convolution** (:func:`conv2d_backward_input`). The gradient with
  respect to the input of a stride-1 convolution is itself a convolution, of
  ``dout`` with the kernel transposed (``c <-> o``) and flipped (``u, v -> k-1-u,
  k-1-v``). So the backward pass reuses the banded forward instead of building a
  9x ``dcols`` matrix and scattering it back with nine slice-adds.
* **In-place ReLU, compact caches** (:func:`relu_forward_inplace`,
  :func:`max_pool_forward`). A convolution's output is a fresh array that nothing
  else holds, so its ReLU may overwrite it. Backward passes only need *where* the
  ReLU was open (a bool mask, 1 byte) and *which* window entry was the maximum (a
  uint8, 1 byte), not float32 activations (4 bytes) or int64 indices (8 bytes).
* **Float32 throughout.** No op here promotes: constants are cast, outputs are
  allocated in the input's dtype.

Every function uses ``xp = array_module(x)``, so it runs on NumPy and CuPy alike; on
CuPy the bands are made much larger, because there the cost of a band is a kernel
launch, not cache misses.
"""

from typing import NamedTuple

import numpy as np

from .backend import array_module

# Size of one band's im2col block. Smaller blocks stay in cache between their fill
# and their product, but every band is one GEMM call, and each call synchronises
# OpenBLAS's threads: on a loaded machine a sync can cost a scheduler time slice.
# Measured side by side on a busy 2-core machine (256 px iteration, 2 threads),
# 8 MiB bands were 2.4x slower than 64 MiB ones, and 64 MiB was as fast as one band
# per layer. 64 MiB still bounds the block (the whole im2col of conv1_2 at 1024 px
# is 2.4 GB). On a GPU, where each band is a handful of kernel launches, larger.
BAND_BYTES = {"numpy": 64 << 20, "cupy": 512 << 20}
MIN_BAND_PIXELS = 512  # below this a GEMM is too thin to run at full speed


def band_rows(xp, row_bytes, Wo, Ho):
    """Rows of output per band: as many as fit BAND_BYTES, at least MIN_BAND_PIXELS pixels, at most Ho."""
    budget = BAND_BYTES["numpy" if xp is np else "cupy"]
    rows = max(budget // max(row_bytes, 1), -(-MIN_BAND_PIXELS // max(Wo, 1)), 1)
    return int(min(rows, Ho))


# --------------------------------------------------------------------------- conv


class ConvCache(NamedTuple):
    shape: tuple  # (C, H, W) of the input; the input itself is not needed by backward_input
    w: object  # (O, C, kh, kw) kernel
    pad: int


def conv2d_forward_nocache(x, w, b, pad):
    """The banded convolution itself: ``out`` (O, Ho, Wo), as :func:`scratchnst.layers.conv2d_forward`.

    ``b`` may be None (no bias: the backward pass uses this). For each band of
    output rows ``i0 .. i0+r``::

        cols[c, u, v, i, j] = xpad[c, i0 + i + u, j + v]        # (C, kh, kw, r, Wo)
        out[:, i0 + i, j]   = w.reshape(O, C kh kw) @ cols       # ocuv,cuvp->op

    which is the reference's im2col product restricted to those rows.
    """
    xp = array_module(x)
    C, H, W = x.shape
    O, Cw, kh, kw = w.shape
    if Cw != C:
        raise ValueError(f"conv2d: input has {C} channels, kernel expects {Cw}")
    Ho, Wo = H + 2 * pad - kh + 1, W + 2 * pad - kw + 1
    if pad:
        xpad = xp.zeros((C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)  # (C, H+2p, W+2p)
        xpad[:, pad : pad + H, pad : pad + W] = x
    else:
        xpad = x
    w2 = w.reshape(O, C * kh * kw)  # (O, K), K = C kh kw
    out = xp.empty((O, Ho * Wo), dtype=x.dtype)  # (O, Ho*Wo)
    rows = band_rows(xp, C * kh * kw * Wo * x.dtype.itemsize, Wo, Ho)
    block = xp.empty((C, kh, kw, rows, Wo), dtype=x.dtype)  # one band's im2col, reused
    for i0 in range(0, Ho, rows):
        r = min(rows, Ho - i0)
        cols = block[:, :, :, :r] if r == rows else xp.empty((C, kh, kw, r, Wo), dtype=x.dtype)
        for u in range(kh):
            for v in range(kw):
                cols[:, u, v] = xpad[:, i0 + u : i0 + u + r, v : v + Wo]
        cols = cols.reshape(C * kh * kw, r * Wo)
        if xp is np:  # out[:, band] is a strided column block of out: BLAS writes it in place, no temporary
            np.matmul(w2, cols, out=out[:, i0 * Wo : (i0 + r) * Wo])
        else:  # CuPy's matmul is not documented to write strided outputs; bands are few there
            out[:, i0 * Wo : (i0 + r) * Wo] = w2 @ cols
    if b is not None:
        out += b[:, None]
    return out.reshape(O, Ho, Wo)


def conv2d_forward(x, w, b, pad=1):
    """2D convolution, stride 1, computed in bands of output rows.

    Same contract as :func:`scratchnst.layers.conv2d_forward`: ``x`` (C, H, W),
    ``w`` (O, C, kh, kw), ``b`` (O,); returns ``out`` (O, H + 2 pad - kh + 1,
    W + 2 pad - kw + 1) and a cache. The cache keeps the kernel and the input's
    shape, not the input: the gradient with respect to the input does not depend on it.
    """
    return conv2d_forward_nocache(x, w, b, pad), ConvCache(tuple(x.shape), w, pad)


def flipped_transposed(w):
    """``w'[c, o, u, v] = w[o, c, kh-1-u, kw-1-v]``: the kernel of the backward convolution, contiguous."""
    xp = array_module(w)
    return xp.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])


def conv2d_backward_input(dout, cache, forward=conv2d_forward_nocache):
    """Gradient of a convolution with respect to its input, as a convolution.

    Parameters
    ----------
    dout : ndarray (O, Ho, Wo)
    cache : ConvCache from :func:`conv2d_forward` (or from ``winograd``)
    forward : the convolution used to compute it (banded GEMM by default).

    Returns
    -------
    dx : ndarray (C, H, W)

    Notes
    -----
    From the reference derivation (:func:`scratchnst.layers.conv2d_backward_input`),

        dL/dxpad[c, y, z] = sum_{o, u, v} w[o, c, u, v] dout[o, y - u, z - v].

    Substituting u' = kh-1-u, v' = kw-1-v and ``w'[c, o, u', v'] = w[o, c, u, v]``,

        dL/dxpad[c, y, z] = sum_{o, u', v'} w'[c, o, u', v'] doutpad[o, y + u', z + v'],

    with ``doutpad`` = dout zero-padded by kh-1 (the terms where dout is out of
    range are exactly the absent ones): a plain convolution of dout with w' and
    padding kh-1, giving H + 2 pad rows. dx drops ``pad`` rows and columns on each
    side; padding dout by ``kh-1-pad`` instead of kh-1 gives that (C, H, W) window
    directly, without computing the rows that would be dropped.
    """
    shape, w, pad = cache
    C, H, W = shape
    _, _, kh, kw = w.shape
    wt = flipped_transposed(w)  # (C, O, kh, kw)
    if kh != kw or pad > kh - 1:  # non-square kernel or padding wider than the kernel: full, then crop
        xp = array_module(dout)
        q = (kh - 1, kw - 1)
        dpad = xp.zeros((dout.shape[0], dout.shape[1] + 2 * q[0], dout.shape[2] + 2 * q[1]), dtype=dout.dtype)
        dpad[:, q[0] : q[0] + dout.shape[1], q[1] : q[1] + dout.shape[2]] = dout
        dxpad = forward(dpad, wt, None, 0)  # (C, H + 2 pad, W + 2 pad)
        return dxpad[:, pad : pad + H, pad : pad + W]
    return forward(dout, wt, None, kh - 1 - pad)  # (C, H, W)


# --------------------------------------------------------------------------- ReLU


def relu_forward_inplace(x):
    """ReLU that overwrites its input: ``x <- max(x, 0)``. Returns ``(x, mask)``.

    Only for arrays nobody else holds (a convolution's fresh output). The cache is
    the mask ``x > 0`` (bool, a quarter of the float32 activation), which is all
    the backward pass needs: see :func:`scratchnst.layers.relu_backward`.
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
    """2x2 max pooling, stride 2, floored, as :func:`scratchnst.layers.max_pool_forward`.

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
    index = xp.full(out.shape, 3, dtype=np.uint8)
    for k in (2, 1, 0):
        index[corners[k] == out] = k
    return out, PoolCache(tuple(x.shape), index)


def max_pool_backward(dout, cache):
    """Gradient of 2x2 max pooling: ``dout`` routed to the first maximum of each window.

    See :func:`scratchnst.layers.max_pool_backward` for the derivation; rows and
    columns dropped by the floor get 0.
    """
    xp = array_module(dout)
    shape, index = cache
    _, Ho, Wo = dout.shape
    dx = xp.zeros(shape, dtype=dout.dtype)
    for k, (di, dj) in enumerate(_CORNERS):
        dx[:, di : 2 * Ho : 2, dj : 2 * Wo : 2] = dout * (index == k)
    return dx
