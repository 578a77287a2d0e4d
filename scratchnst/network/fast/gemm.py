"""The convolution as banded im2col GEMMs: the reference's arithmetic in bounded memory.

The reference (:func:`scratchnst.network.layers.conv2d_forward`) is written to be
read; this one is written to be run, and is tested against it
(``tests/test_fastconv.py``): same results to float32 rounding, same
finite-difference checks. What changes, and why:

* **Row bands** (:func:`conv2d_forward`). The reference builds the whole im2col
  matrix, ``kh*kw = 9`` copies of the input: 2.4 GB for conv1_2 of a 1024 px
  image, and as much again for its gradient. Here the output is computed a band of
  rows at a time (:mod:`.bands`); each band's im2col block is filled and
  multiplied straight into the output. Same GEMM (K = 9 C), same arithmetic.
* **Gradient as a convolution** (:func:`conv2d_backward_input`). The gradient with
  respect to the input of a stride-1 convolution is itself a convolution, of
  ``dout`` with the kernel transposed (``c <-> o``) and flipped (``u, v -> k-1-u,
  k-1-v``). So the backward pass reuses the banded forward instead of building a
  9x ``dcols`` matrix and scattering it back with nine slice-adds.
* **Float32 throughout.** Outputs are allocated in the input's dtype; nothing promotes.

Every function uses ``xp = array_module(x)``, so it runs on NumPy and CuPy alike.
"""

from typing import NamedTuple

import numpy as np

from scratchnst.backend import array_module
from scratchnst.network.fast.bands import balanced_rows, band_rows
from scratchnst.network.fast.threads import split_over_threads, transform_threads

# --------------------------------------------------------------------------- conv


class ConvCache(NamedTuple):
    shape: tuple  # (C, H, W) of the input; the input itself is not needed by backward_input
    w: object  # (O, C, kh, kw) kernel
    pad: int


def conv2d_forward_nocache(x, w, b, pad):
    """The banded convolution itself: ``out`` (O, Ho, Wo), as :func:`scratchnst.network.layers.conv2d_forward`.

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
    threads = transform_threads(xp)  # each of our threads takes whole bands, with a block of its own
    rows = band_rows(xp, threads * C * kh * kw * Wo * x.dtype.itemsize, Wo, Ho)
    rows = balanced_rows(rows, Ho, threads)
    starts = range(0, Ho, rows)

    def run_bands(lo, hi):
        block = xp.empty((C, kh, kw, rows, Wo), dtype=x.dtype)  # one band's im2col, reused
        for i0 in starts[lo:hi]:
            r = min(rows, Ho - i0)
            cols = block[:, :, :, :r]
            for u in range(kh):
                for v in range(kw):
                    cols[:, u, v] = xpad[:, i0 + u : i0 + u + r, v : v + Wo]
            cols = cols.reshape(C * kh * kw, r * Wo)  # a copy when r < rows: the last band
            if xp is np:  # out[:, band] is a strided column block of out: BLAS writes it in place, no temporary
                np.matmul(w2, cols, out=out[:, i0 * Wo : (i0 + r) * Wo])
            else:  # CuPy's matmul is not documented to write strided outputs; bands are few there
                out[:, i0 * Wo : (i0 + r) * Wo] = w2 @ cols

    split_over_threads(threads, len(starts), run_bands)
    if b is not None:
        out += b[:, None]
    return out.reshape(O, Ho, Wo)


def conv2d_forward(x, w, b, pad=1):
    """2D convolution, stride 1, computed in bands of output rows.

    Same contract as :func:`scratchnst.network.layers.conv2d_forward`: ``x`` (C, H, W),
    ``w`` (O, C, kh, kw), ``b`` (O,); returns ``out`` (O, H + 2 pad - kh + 1,
    W + 2 pad - kw + 1) and a cache. The cache keeps the kernel and the input's
    shape, not the input: the gradient with respect to the input does not depend on it.
    """
    return conv2d_forward_nocache(x, w, b, pad), ConvCache(tuple(x.shape), w, pad)


# Below this many multiply-adds a product runs on the calling thread: handing it to
# another costs tens of microseconds.
MIN_SPLIT_MACS = 1 << 22


def matmul_threads(A, B):
    """``A @ B`` for 2-D arrays, split over our threads on the CPU (:mod:`.threads`; plain on CuPy).

    BLAS runs on one thread inside an evaluation (``threads.blas_held``), so a product
    outside the convolutions, such as the style cost's gradient ``(dG + dG^T) F``,
    gets the cores this way: each thread computes a block of columns of the result
    when B is wide (every thread then reads only its part of B, the large F), else a
    block of rows.
    """
    xp = array_module(A)
    threads = transform_threads(xp)
    (n, k), m = A.shape, B.shape[1]
    if threads == 1 or n * k * m < MIN_SPLIT_MACS:
        return A @ B
    out = xp.empty((n, m), dtype=xp.result_type(A, B))
    if m >= 16 * n:  # out[:, cols] is a strided block of out: BLAS writes it in place
        split_over_threads(threads, m, lambda lo, hi: np.matmul(A, B[:, lo:hi], out=out[:, lo:hi]))
    else:
        split_over_threads(threads, n, lambda lo, hi: np.matmul(A[lo:hi], B, out=out[lo:hi]))
    return out


def gram_threads(F):
    """``F F^T`` for F (N, M), split over our threads on the CPU: each thread the Gram of a block
    of positions (columns), then their sum, ``F F^T = sum_b F_b F_b^T``. Plain on CuPy.

    The sum runs in another order than one product's, so the result may differ from
    ``F @ F.T`` in the last bits (float rounding), never more.
    """
    xp = array_module(F)
    threads = transform_threads(xp)
    N, M = F.shape
    if threads == 1 or N * N * M < MIN_SPLIT_MACS or M < 2 * threads:
        return F @ F.T
    parts = [None] * threads

    def block(lo, hi):
        for t in range(lo, hi):
            Fb = F[:, t * M // threads : (t + 1) * M // threads]  # (N, M_b)
            parts[t] = Fb @ Fb.T  # BLAS's syrk: F_b F_b^T, one triangle computed
    split_over_threads(threads, threads, block)
    return sum(parts[1:], parts[0])


def matmul_into(xp, A, B, out):
    """``out[...] = A @ B``: in place on NumPy; CuPy's matmul is not documented to take ``out=``."""
    if xp is np:
        np.matmul(A, B, out=out)
    else:
        out[...] = xp.matmul(A, B)
    return out


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
    From the reference derivation (:func:`scratchnst.network.layers.conv2d_backward_input`),

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
