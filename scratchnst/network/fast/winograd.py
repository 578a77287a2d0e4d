"""Winograd convolution for 3x3 kernels: the same output with fewer multiplications.

Lavin and Gray (2016), "Fast Algorithms for Convolutional Neural Networks"
(arXiv:1509.09308). The transforms, and why they work, are in
:mod:`scratchnst.network.fast.winograd_transforms`. In a convolution
layer the output sums over input channels, ``out[o] = sum_c conv(d[c], g[o, c])``,
and the transforms are linear, so that sum can be taken at the Winograd points,
before the single inverse transform. It then becomes a matrix product, one per
point k = (xi, nu):

    U[k, o, c] = (G g[o, c] G^T)[xi, nu]     (a^2, O, C)  the kernel, transformed once
    V[k, c, p] = (B^T d[c, p] B)[xi, nu]     (a^2, C, P)  tile p of channel c, P tiles
    M[k]       = U[k] @ V[k]                 (a^2, O, P)  # koc,kcp->kop: a^2 GEMMs
    Y[o, p]    = A^T M[:, o, p] A                         M[:, o, p] as an a x a matrix

so the 9 O C H W multiply-adds of the direct convolution become
a^2 / m^2 x O C H W in the GEMMs (4 O C H W for m = 2, 2.25 O C H W for m = 4),
plus transforms that cost O(C + O) per pixel, not O(C O). For VGG19's wide
layers the GEMMs dominate and the saving is nearly the full factor; for its
64-channel layers at full resolution the transforms, which are passes over
memory, eat most of it (F(2x2) loses there, F(4x4) still wins: ``MIN_CHANNELS``).

On a CPU with NumPy, the transforms' cost is memory traffic, not arithmetic.
Written as additions of whole strided views (rows, then columns: the textbook
separable form), the input transform alone was some 18 passes over the input's
size, each a single-threaded NumPy ufunc. Here both transforms are small matrix
products instead, ``kron(B^T, B^T)`` (a^2 x a^2) applied to the a^2 entries of
every tile at once, and ``kron(A^T, A^T)`` (m^2 x a^2) to M: one pass each, run by
BLAS on all its threads, and the same additions (the products by 0 and +-1 are
exact; benchmarks/README.md, "Transforms as matrix products").

The price is rounding. The points beyond 0, +-1 and infinity (F(4x4) uses +-2
too) put larger and fractional entries in the matrices (1/6, 1/24, 8), and the
float32 error grows with them. This module implements both; F(4x4) is the
default (``DEFAULT_M``; benchmarks/README.md, "Winograd: F(4x4) or F(2x2)").

The gradient with respect to the input of a 3x3 convolution with padding ``p`` is
a 3x3 convolution of ``dout`` with the kernel transposed over (O, C) and flipped,
padding ``2 - p`` (derived in :func:`scratchnst.network.fast.gemm.conv2d_backward_input`),
so :func:`conv2d_backward_input` runs the same Winograd routine with the
transformed flipped kernel. Anything else (other kernel sizes, and layers too
thin for the transforms to pay, ``MIN_CHANNELS``: VGG19's conv1_1) goes
to :mod:`scratchnst.network.fast.gemm`'s banded GEMM.

The bands are split between our threads (:func:`transform_threads`), each running
its bands' copies and GEMMs start to end with BLAS held at one thread: the package's
one thread policy (:mod:`scratchnst.network.fast.threads`, why: fair under load).

Every function uses ``xp = array_module(x)``: the same lines run on NumPy and CuPy.
Tests: ``tests/test_winograd.py`` (against the reference convolution, finite
differences, the whole VGG19 in float32 against float64).
"""

import numpy as np

from scratchnst.backend import array_module
from scratchnst.network import layers as reference
from scratchnst.network.fast import gemm
from scratchnst.network.fast.bands import balanced_rows, band_rows
from scratchnst.network.fast.gemm import ConvCache, matmul_into
from scratchnst.network.fast.threads import split_over_threads, transform_threads
from scratchnst.network.fast.winograd_adjoint import winograd_conv3x3_adjoint
from scratchnst.network.fast.winograd_transforms import KERNELS, TRANSFORMS

# F(4x4, 3x3) by default (conv="winograd"), F(2x2, 3x3) on request (conv="winograd2"):
# F(4x4) is the faster, and its larger float32 error stays inside the 1e-4 floor
# (benchmarks/README.md, "Winograd: F(4x4) or F(2x2)").
DEFAULT_M = 4
# Below this many channels on either side the transforms (passes over memory,
# O(C + O) per pixel) cost more than the multiplications they save (O(C O))
# (benchmarks/README.md, "Which layers use Winograd"). All of VGG19 but conv1_1 for F(4x4).
MIN_CHANNELS = {2: 128, 4: 64}


def _gather_tiles(lo, hi, T, xpad, D):
    """``D[u, v, c, t, s] = xpad[c, m t + u, m s + v]``, channels ``lo:hi``: entry (u, v) of every tile, contiguous."""
    m, a = T.m, T.m + 2
    r, nW = D.shape[3], D.shape[4]
    for u in range(a):
        for v in range(a):
            D[u, v, lo:hi] = xpad[lo:hi, u : u + m * (r - 1) + 1 : m, v : v + m * (nW - 1) + 1 : m]


def _interleave(lo, hi, Y, out):
    """Output channels ``lo:hi``: ``Y[i, j, o, t, s]`` is pixel (m t + i, m s + j) of ``out`` (O, r, m, nW, m)."""
    out[lo:hi] = Y[:, :, lo:hi].transpose(2, 3, 0, 4, 1)  # (m, m, o, r, nW) -> (o, r, m, nW, m)


def winograd_conv3x3(x, U, T, pad=1):
    """3x3 convolution of ``x`` with a transformed kernel ``U``, stride 1, no bias.

    Parameters
    ----------
    x : ndarray (C, H, W)
    U : ndarray (a*a, O, C) from :func:`kernel_transform`
    T : the Transform U was made with
    pad : zeros on every side, 0 <= pad <= 2

    Returns
    -------
    out : ndarray (O, Ho, Wo), Ho = H + 2 pad - 2, Wo = W + 2 pad - 2, contiguous.

    Notes
    -----
    The output is cut into nH x nW tiles of m x m (Ho and Wo rounded up to a
    multiple of m; the extra rows and columns see zeros and are cropped). Tile
    (t, s) reads input rows ``m t .. m t + a - 1`` and columns ``m s .. m s + a - 1``
    of the padded image: consecutive tiles overlap by 2 (= 3 - 1). Entry (u, v) of
    every tile at once is the strided view ``xpad[:, u::m, v::m]`` (cut to nH x nW),
    so, for a band of tile rows, with no Python loop over tiles:

        D[u, v]   = xpad[:, u + m t, v + m s]            (a, a, C, tiles)  a^2 copies
        V         = kron(B^T, B^T) @ D                   (a^2, C, tiles)   # kl,lcp->kcp
        M[k]      = U[k] @ V[k]                          (a^2, O, tiles)   # koc,kcp->kop
        Y         = kron(A^T, A^T) @ M                   (m^2, O, tiles)   # ik,kop->iop
        out[o, m t + i, m s + j] = Y[(i, j), o, (t, s)]                    one interleaving copy

    ``kron(B^T, B^T)[(xi, nu), (u, v)] = B^T[xi, u] B^T[nu, v]``, so the first
    product is ``sum_{u, v} B^T[xi, u] d[u, v] B^T[nu, v] = (B^T d B)[xi, nu]``, and
    likewise for A^T.

    The tile rows are processed in bands, so that the buffers (D, V, M: (a/m)^2 =
    4x the input or output for m = 2, 2.25x for m = 4) take at most about
    ``BAND_BYTES`` (:mod:`scratchnst.network.fast.bands`) whatever the image size: each band is three GEMM
    calls plus the batched one.
    """
    xp = array_module(x)
    C, H, W = x.shape
    a2, O, Cu = U.shape
    m, a = T.m, T.m + 2
    if Cu != C or a2 != a * a:
        raise ValueError(f"winograd: input has {C} channels, transformed kernel {U.shape} expects {Cu}")
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    nH, nW = -(-Ho // m), -(-Wo // m)  # tiles down and across

    # The zero-padded input, large enough to cover every tile: (C, m nH + 2, m nW + 2).
    xpad = xp.zeros((C, m * nH + 2, m * nW + 2), dtype=x.dtype)
    xpad[:, pad : pad + H, pad : pad + W] = x
    # (O, nH, m, nW, m) is (O, m nH, m nW): out[o, t, i, s, j] is pixel (m t + i, m s + j).
    out = xp.empty((O, nH, m, nW, m), dtype=x.dtype)
    # D and V hold a^2 C floats per tile, M a^2 O, Y m^2 O; a band is some rows of tiles.
    tile_floats = 2 * a * a * C + a * a * O + m * m * O
    # Each of our threads takes whole bands with buffers of its own (threads.py: BLAS
    # runs on one thread inside them), so the budget is shared and each thread gets a band.
    threads = transform_threads(xp)
    rows = band_rows(xp, threads * tile_floats * nW * x.dtype.itemsize, m * m * nW, nH)
    rows = balanced_rows(rows, nH, threads)  # as many equal bands for every thread
    starts = range(0, nH, rows)

    def run_bands(lo, hi):  # bands starts[lo:hi], one after another on this thread
        band = _Band(xp, T, C, O, rows * nW, x.dtype)
        for t0 in starts[lo:hi]:
            r = min(rows, nH - t0)
            band.run(xpad[:, m * t0 : m * (t0 + r) + 2], U, out[:, t0 : t0 + r])

    split_over_threads(threads, len(starts), run_bands)
    out = out.reshape(O, m * nH, m * nW)
    if m * nH != Ho or m * nW != Wo:
        out = xp.ascontiguousarray(out[:, :Ho, :Wo])
    return out


_TILE_TRANSFORMS = {}  # (xp, m, dtype) -> (BB, AA): made and, on a GPU, uploaded once, not on every call


def _tile_transforms(xp, T, dtype):
    """The transforms as matrices over a tile's flattened entries (the module docstring):

        V[xi, nu] = sum_uv BT[xi, u] BT[nu, v] d[u, v]   ->  BB = kron(BT, BT)  (a^2, a^2)
        Y[i, j]   = sum AT[i, xi] AT[j, nu] M[xi, nu]    ->  AA = kron(AT, AT)  (m^2, a^2)
    """
    key = (xp, T.m, np.dtype(dtype).str)
    if key not in _TILE_TRANSFORMS:
        BB, AA = np.kron(T.BT, T.BT), np.kron(T.AT, T.AT)
        _TILE_TRANSFORMS[key] = (xp.asarray(BB, dtype=dtype), xp.asarray(AA, dtype=dtype))
    return _TILE_TRANSFORMS[key]


class _Band:
    """The working buffers of one band of tile rows, reused for every band of a layer.

    Each buffer is flat and sized for a full band of ``tiles`` tiles; a shorter
    last band views a contiguous prefix of it, so no band allocates.
    """

    def __init__(self, xp, T, C, O, tiles, dtype):
        m, a = T.m, T.m + 2
        self.xp, self.T = xp, T
        self.D = xp.empty(a * a * C * tiles, dtype=dtype)  # tile entries, gathered
        self.V = xp.empty(a * a * C * tiles, dtype=dtype)  # B^T d B
        self.M = xp.empty(a * a * O * tiles, dtype=dtype)  # U[k] @ V[k]
        self.Y = xp.empty(m * m * O * tiles, dtype=dtype)  # A^T M A
        self.BB, self.AA = _tile_transforms(xp, T, dtype)

    def run(self, xpad, U, out):
        """Convolve one band: ``xpad`` (C, m r + 2, m nW + 2) rows of the padded input -> ``out`` (O, r, m, nW, m)."""
        xp, T = self.xp, self.T
        m, a = T.m, T.m + 2
        C, O, r, nW = xpad.shape[0], out.shape[0], out.shape[1], out.shape[3]
        n = r * nW  # tiles in this band
        D = self.D[: a * a * C * n].reshape(a, a, C, r, nW)
        V = self.V[: a * a * C * n].reshape(a * a, C, n)
        M = self.M[: a * a * O * n].reshape(a * a, O, n)
        Y = self.Y[: m * m * O * n].reshape(m, m, O, r, nW)
        _gather_tiles(0, C, T, xpad, D)
        matmul_into(xp, self.BB, D.reshape(a * a, C * n), V.reshape(a * a, C * n))  # V = B^T d B  # kl,lcp->kcp
        matmul_into(xp, U, V, M)  # M[k] = U[k] @ V[k], k = (xi, nu)  # koc,kcp->kop
        matmul_into(xp, self.AA, M.reshape(a * a, O * n), Y.reshape(m * m, O * n))  # Y = A^T M A  # ik,kop->iop
        _interleave(0, O, Y, out)


def _keep_exact_zeros(x, out, pad):
    """Set to exactly 0 the outputs whose 3x3 window holds no nonzero input; returns ``out``.

    Such an output is 0 in exact arithmetic, and the direct convolution computes it
    as a sum of exact zeros. Winograd does not: the inverse transform combines
    nonzero M entries of the tile that cancel only up to rounding, and leaves
    residue of order eps times the tile's values. Code may rely on those zeros
    (the receptive field of a unit is the support of its input gradient,
    ``tests/test_visualize.py``), so they are restored here: a pixel mask of where
    any channel is nonzero, dilated by the 3x3 window. It costs one reduction over
    the input, and on NumPy nothing more when every pixel has a nonzero channel
    (dense activations and gradients, the usual case). On a GPU that test would
    make the host wait for the device, once per convolution; applying the mask
    always is cheaper there than the wait.
    """
    xp = array_module(x)
    nonzero = x.any(axis=0)  # (H, W)
    if xp is np and nonzero.all():
        return out
    H, W = nonzero.shape
    Ho, Wo = out.shape[1:]
    padded = xp.zeros((H + 2 * pad, W + 2 * pad), dtype=bool)
    padded[pad : pad + H, pad : pad + W] = nonzero
    window = xp.zeros((Ho, Wo), dtype=bool)
    for u in range(3):
        for v in range(3):
            window |= padded[u : u + Ho, v : v + Wo]
    out *= window  # (O, Ho, Wo) * (Ho, Wo)
    return out


def _use_winograd(w, pad, m):
    O, C, kh, kw = w.shape
    return kh == kw == 3 and 0 <= pad <= 2 and min(O, C) >= MIN_CHANNELS[m]


def conv2d_forward_nocache(x, w, b, pad=1, m=None):
    """``out`` (O, Ho, Wo) as :func:`scratchnst.network.layers.conv2d_forward`, by Winograd where it applies.

    ``b`` may be None. 3x3 kernels with 0 <= pad <= 2 and at least ``MIN_CHANNELS``
    channels on both sides use F(m x m, 3 x 3) (``m`` defaults to ``DEFAULT_M``),
    with U from the kernel cache; everything else uses the banded GEMM of
    :func:`scratchnst.network.fast.gemm.conv2d_forward_nocache`.
    """
    if x.shape[0] != w.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[0]} channels, kernel expects {w.shape[1]}")
    m = m or DEFAULT_M
    if not _use_winograd(w, pad, m):
        return gemm.conv2d_forward_nocache(x, w, b, pad)
    T = TRANSFORMS[m]
    out = _keep_exact_zeros(x, winograd_conv3x3(x, KERNELS.get(w, T), T, pad), pad)
    if b is not None:
        out += b[:, None, None]
    return out


def conv2d_forward(x, w, b, pad=1, m=None):
    """2D convolution, stride 1, by Winograd F(m x m, 3 x 3) where it applies (m = ``DEFAULT_M``: 4).

    Same contract as :func:`scratchnst.network.layers.conv2d_forward`: ``x`` (C, H, W),
    ``w`` (O, C, kh, kw), ``b`` (O,); returns ``out`` (O, H + 2 pad - kh + 1,
    W + 2 pad - kw + 1) and a :class:`scratchnst.network.fast.gemm.ConvCache` (the input's
    shape and the kernel: the input gradient does not need the input).
    """
    return conv2d_forward_nocache(x, w, b, pad, m), ConvCache(tuple(x.shape), w, pad)


def conv2d_backward_input(dout, cache, m=None):
    """Gradient of a convolution with respect to its input, by Winograd where it applies.

    Parameters
    ----------
    dout : ndarray (O, Ho, Wo)
    cache : ConvCache from :func:`conv2d_forward`

    Returns
    -------
    dx : ndarray (C, H, W)

    Notes
    -----
    For a 3x3 kernel, ``dx = conv(dout, w', pad = 2 - pad)`` with
    ``w'[c, o, u, v] = w[o, c, 2 - u, 2 - v]`` (see
    :func:`scratchnst.network.fast.gemm.conv2d_backward_input` for the derivation). It is
    computed as the exact adjoint of the forward's Winograd chain
    (:mod:`scratchnst.network.fast.winograd_adjoint`), which multiplies by the forward
    kernel's cached U transposed, so the flipped kernel needs no transform of its own.

    A layer with few input channels (``9 C <= O``: VGG19's conv1_1, 3 of 64) takes
    the reference's route instead, :func:`_backward_input_col2im`.
    """
    shape, w, pad = cache
    if 9 * w.shape[1] <= w.shape[0]:  # few input channels (conv1_1: 3 of 64)
        return _backward_input_col2im(dout, w, pad, shape)
    m = m or DEFAULT_M
    if not _use_winograd(w, pad, m):
        return gemm.conv2d_backward_input(dout, cache)
    T = TRANSFORMS[m]
    BB, AA = _tile_transforms(array_module(dout), T, dout.dtype)
    dx = winograd_conv3x3_adjoint(dout, KERNELS.get(w, T), T, BB, AA, pad, shape)
    return _keep_exact_zeros(dout, dx, 2 - pad)


def conv2d_forward_f2(x, w, b, pad=1):
    """:func:`conv2d_forward` with F(2x2, 3x3): 2.25x fewer multiplications, the GEMM's float32 accuracy."""
    return conv2d_forward(x, w, b, pad, m=2)


def conv2d_backward_input_f2(dout, cache):
    """:func:`conv2d_backward_input` with F(2x2, 3x3), the partner of :func:`conv2d_forward_f2`."""
    return conv2d_backward_input(dout, cache, m=2)


def _backward_input_col2im(dout, w, pad, shape):
    """``dx`` (C, H, W) the reference's way (``w^T dout``, then col2im), for layers with few input channels.

    For a layer with few input channels this is the cheap way round. The flipped
    convolution would run on dout's O channels (an im2col or Winograd transform of
    O channels) to produce C = 3; here the GEMM makes ``dcols`` (9 C, P), no larger
    than dout when 9 C <= O, and the col2im is kh kw slice-adds of C-channel images
    (benchmarks/README.md, "conv1_1's gradient").
    """
    C = shape[0]
    O, _, kh, kw = w.shape
    _, Ho, Wo = dout.shape
    # cuvo,op->cuvp : the gradient of every im2col entry
    dcols = gemm.matmul_threads(w.reshape(O, C * kh * kw).T, dout.reshape(O, Ho * Wo)).reshape(C, kh, kw, Ho, Wo)
    return array_module(dout).ascontiguousarray(reference.col2im(dcols, shape, pad))
