"""Winograd convolution for 3x3 kernels: the same output with fewer multiplications.

Lavin and Gray (2016), "Fast Algorithms for Convolutional Neural Networks"
(arXiv:1509.09308). The idea in one dimension first. Two outputs of a 3-tap
correlation, ``y_i = sum_u g_u d_{i+u}`` for i = 0, 1, read four inputs and cost
2 x 3 = 6 multiplications done directly. Winograd's minimal filtering algorithm
F(2, 3) computes them with 4:

    y = A^T [ (G g) * (B^T d) ]        (* elementwise, over 4 "Winograd points")

    B^T = [[1,  0, -1,  0],     G = [[1,    0,    0  ],     A^T = [[1, 1,  1,  0],
           [0,  1,  1,  0],          [1/2,  1/2,  1/2],            [0, 1, -1, -1]]
           [0, -1,  1,  0],          [1/2, -1/2,  1/2],
           [0,  1,  0, -1]]          [0,    0,    1  ]]

It is polynomial multiplication in disguise (Toom-Cook): the correlation is the
product of a degree-1 and a degree-2 polynomial, a degree-3 polynomial fixed by its
values at four points (here 0, 1, -1 and infinity). ``G g`` evaluates the kernel's
polynomial at them, ``B^T d`` the data's, the elementwise product multiplies the
two pointwise, and ``A^T`` interpolates back. G g depends on the kernel only, so
it is computed once; B^T and A^T hold only 0 and +-1, so they cost additions,
not multiplications.

Nesting the 1D algorithm with itself gives the 2D one, F(m x m, 3 x 3): an
``m x m`` block of outputs from an ``a x a`` tile of input, ``a = m + 2``,

    Y = A^T [ (G g G^T) * (B^T d B) ] A                              (Lavin, eq. 8)

with a^2 multiplications instead of 9 m^2: 16 instead of 36 for F(2x2, 3x3)
(2.25x fewer), 36 instead of 144 for F(4x4, 3x3) (4x fewer). In a convolution
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
exact). That made Winograd 10-25% faster per layer at 2 threads than the
separable additions did.

The price is rounding. The points beyond 0, +-1 and infinity (F(4x4) uses +-2
too) put larger and fractional entries in the matrices (1/6, 1/24, 8), and the
float32 error grows with them. This module implements both; ``DEFAULT_M``'s
comment gives the measured errors and speeds, and why F(4x4) is the default.

The gradient with respect to the input of a 3x3 convolution with padding ``p`` is
a 3x3 convolution of ``dout`` with the kernel transposed over (O, C) and flipped,
padding ``2 - p`` (derived in :func:`scratchnst.fastconv.conv2d_backward_input`),
so :func:`conv2d_backward_input` runs the same Winograd routine with the
transformed flipped kernel. Anything else (other kernel sizes, and layers too
thin for the transforms to pay, ``MIN_CHANNELS``: VGG19's conv1_1) goes
to :mod:`scratchnst.fastconv`'s banded GEMM.

The GEMMs run on BLAS's threads; the two copies that remain (gathering the tile
entries, interleaving the output tiles) are split over channels between Python
threads (:func:`transform_threads`), since NumPy copies on the calling thread only.

Every function uses ``xp = array_module(x)``: the same lines run on NumPy and CuPy.
Tests: ``tests/test_winograd.py`` (against the reference convolution, finite
differences, the whole VGG19 in float32 against float64).
"""

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from . import fastconv
from .backend import array_module
from .fastconv import ConvCache


class Transform(NamedTuple):
    """The matrices of F(m x m, 3 x 3): ``Y = AT [ (G g G^T) * (BT d BT^T) ] AT^T``."""

    m: int  # outputs per tile side
    BT: np.ndarray  # (a, a) data transform, a = m + 2
    G: np.ndarray  # (a, 3) kernel transform
    AT: np.ndarray  # (m, a) inverse (output) transform


# Points 0, 1, -1, infinity (Lavin and Gray, section 4.1).
F2 = Transform(
    m=2,
    BT=np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),
    G=np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64),
    AT=np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),
)

# Points 0, 1, -1, 2, -2, infinity (Lavin and Gray, section 4.2).
F4 = Transform(
    m=4,
    BT=np.array(
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        dtype=np.float64,
    ),
    G=np.array(
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        dtype=np.float64,
    ),
    AT=np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float64),
)

TRANSFORMS = {2: F2, 4: F4}
# F(4x4, 3x3) by default (conv="winograd"), F(2x2, 3x3) on request
# (conv="winograd2"). Measured in float32 against the float64 reference on real
# VGG19 activations (chelsea.jpg, 223 px, each conv fed its float64 input and
# gradient): F(2x2) is at most 8e-7 relative, like the direct GEMM (6e-7); F(4x4),
# with its 1/6, 1/24 and 8, at most 1.3e-5 (in the backward pass), 15x more but
# still 8x inside the 1e-4 floor. Through the whole network (131 x 97, relu1_1 ...
# relu5_1) the activations differ by 4e-6 with F(4x4), 7e-7 with F(2x2). F(4x4)
# is clearly the faster: at 512 px with 2 threads, in one run, 0.88x PyTorch's
# time against 1.15x for F(2x2) and 1.34x for the GEMM (F(2x2) measured 1.26x in
# another run, on the edge of the 1.25x floor), for 1.2x PyTorch's peak memory
# (benchmarks/README.md). So F(4x4), with its error measured and bounded.
# One caveat, read before comparing gradients: float32 and float64 runs of VGG19
# may route a ReLU or a max-pool window differently where two values are within
# rounding of each other, and then their input gradients differ by 1e-3 to 1e-2
# whatever the convolution (the GEMM: 2 of 4 random 131 x 97 images; F(4x4): 1 of
# the same 4, with 4e-5 on a second). Larger rounding makes such flips likelier.
DEFAULT_M = 4
# Below this many channels on either side, the transforms (passes over memory,
# O(C + O) per pixel) cost more than the multiplications they save (O(C O)), and
# the banded GEMM is as fast or faster. Measured per layer, forward, side by side
# at 2 threads (seconds, GEMM / F(2x2) / F(4x4)): 64 -> 64 channels at 512 px
# 0.20 / 0.22 / 0.16; 64 -> 128 at 256 px 0.085 / 0.088 / 0.067; 128 -> 128 at
# 256 px 0.17 / 0.17 / 0.11; 256 -> 256 at 128 px 0.13 / 0.10 / 0.06. So F(4x4)
# pays from 64 channels (all of VGG19 but conv1_1: 3 channels), F(2x2) from 128.
MIN_CHANNELS = {2: 128, 4: 64}


# --------------------------------------------------------------------------- transforms


def kernel_transform(w, T=F2):
    """``U = G g G^T`` for every (o, c): the kernel at the a x a Winograd points.

    Parameters
    ----------
    w : ndarray (O, C, 3, 3)
    T : Transform

    Returns
    -------
    U : ndarray (a*a, O, C), contiguous, in w's dtype: ``U[xi*a + nu]`` is the
        (O, C) matrix that the point (xi, nu) multiplies with the data.

    Computed in float64 and rounded once, so the kernel contributes one float32
    rounding, not the rounding of each partial sum with 1/6 or 1/24.
    """
    xp = array_module(w)
    G = xp.asarray(T.G)
    a = G.shape[0]
    U = xp.einsum("iu,ocuv,jv->ijoc", G, w.astype(np.float64), G)  # (a, a, O, C)
    return xp.ascontiguousarray(U.reshape(a * a, *w.shape[:2]).astype(w.dtype))


class KernelCache:
    """Transformed kernels, remembered by the identity of the kernel array.

    A network calls ``conv(x, w, b, pad)`` with the same ``w`` object on every
    pass, and ``U`` is a pure function of ``w``: transforming it again on every
    call would cost a GEMM-sized einsum per layer and pass. So the first call
    computes U (and, for the gradient, U of the flipped kernel) and keeps it until
    ``w`` is garbage-collected (a weak reference evicts it). Results never depend
    on this cache, with one caveat: a kernel modified *in place* keeps its old U.
    Style transfer never changes the weights; if you do, call :meth:`clear`.

    Memory: U is (a/3)^2 times its kernel (4x for F(4x4)), kept twice (forward and
    flipped): about 0.4 GB for VGG19 to relu5_1 in float32 with F(4x4), 0.18 GB
    with F(2x2). Most of Winograd's extra peak RSS over the GEMM is this.
    """

    def __init__(self):
        self._entries = {}  # (id(w), flip, m) -> (weakref to w, U)

    def get(self, w, T, flip=False):
        key = (id(w), flip, T.m)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is w:
            return entry[1]
        U = kernel_transform(fastconv.flipped_transposed(w) if flip else w, T)
        try:
            ref = weakref.ref(w, lambda r, key=key: self._forget(key, r))
        except TypeError:  # an array type without weak references: recompute every call
            return U
        self._entries[key] = (ref, U)
        return U

    def _forget(self, key, ref):
        if key in self._entries and self._entries[key][0] is ref:
            del self._entries[key]

    def clear(self):
        self._entries.clear()

    def __len__(self):
        return len(self._entries)


KERNELS = KernelCache()


# --------------------------------------------------------------------------- the convolution


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


def transform_threads(xp):
    """Threads for the transforms: ``SCRATCHNST_NUM_THREADS``, else OpenBLAS's or OpenMP's setting, else all CPUs.

    The GEMMs run on BLAS's threads; NumPy's copies run on the calling thread only
    (they release the GIL, so Python threads do run them in parallel). With 2
    BLAS threads and everything else on one, Winograd was no faster than the
    banded GEMM at 512 px: the memory passes, not the products, were the time.
    On CuPy the GPU is the parallelism: 1.
    """
    if xp is not np:
        return 1
    for var in ("SCRATCHNST_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").strip().isdigit():
            return max(1, int(os.environ[var]))
    return os.cpu_count() or 1


_pools = {}  # threads -> ThreadPoolExecutor, created on first use and reused (starting threads is not free)


def _split(threads, n, fn, *args):
    """``fn(lo, hi, *args)`` on ``threads`` contiguous slices of ``range(n)``, in parallel."""
    threads = max(1, min(threads, n))
    if threads == 1:
        fn(0, n, *args)
        return
    bounds = [(k * n // threads, (k + 1) * n // threads) for k in range(threads)]
    pool = _pools.get(threads)
    if pool is None:
        pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="winograd")
    futures = [pool.submit(fn, lo, hi, *args) for lo, hi in bounds[1:]]
    fn(*bounds[0], *args)  # the calling thread takes the first slice
    for f in futures:
        f.result()  # re-raises a worker's exception here


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
    ``fastconv.BAND_BYTES`` whatever the image size: each band is three GEMM
    calls plus the batched one.
    """
    xp = array_module(x)
    C, H, W = x.shape
    a2, O, Cu = U.shape
    m, a = T.m, T.m + 2
    if Cu != C or a2 != a * a:
        raise ValueError(f"winograd: input has {C} channels, transformed kernel {U.shape} expects {Cu}")
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    nH, nW = -(-Ho // m), -(-Wo // m)

    # The zero-padded input, large enough to cover every tile: (C, m nH + 2, m nW + 2).
    xpad = xp.zeros((C, m * nH + 2, m * nW + 2), dtype=x.dtype)
    xpad[:, pad : pad + H, pad : pad + W] = x
    # (O, nH, m, nW, m) is (O, m nH, m nW): out[o, t, i, s, j] is pixel (m t + i, m s + j).
    out = xp.empty((O, nH, m, nW, m), dtype=x.dtype)

    # Tile rows per band: D, V (a^2 C), M (a^2 O) and Y (m^2 O) per tile.
    floats_per_tile = 2 * a * a * C + a * a * O + m * m * O
    budget = fastconv.BAND_BYTES["numpy" if xp is np else "cupy"]
    min_rows = -(-fastconv.MIN_BAND_PIXELS // max(m * m * nW, 1))
    rows = int(min(max(budget // max(floats_per_tile * nW * x.dtype.itemsize, 1), min_rows, 1), nH))
    # Flat buffers, reused by every band; a short last band uses a contiguous prefix.
    bufs = {
        k: xp.empty(n * rows * nW, dtype=x.dtype)
        for k, n in (("D", a * a * C), ("V", a * a * C), ("M", a * a * O), ("Y", m * m * O))
    }
    BB = xp.asarray(np.kron(T.BT, T.BT), dtype=x.dtype)  # (a^2, a^2): V[xi, nu] = sum_uv BT[xi, u] BT[nu, v] d[u, v]
    AA = xp.asarray(np.kron(T.AT, T.AT), dtype=x.dtype)  # (m^2, a^2): Y[i, j] = sum AT[i, xi] AT[j, nu] M[xi, nu]
    threads = transform_threads(xp)
    for t0 in range(0, nH, rows):
        r = min(rows, nH - t0)
        n = r * nW  # tiles in this band
        D = bufs["D"][: a * a * C * n].reshape(a, a, C, r, nW)
        V = bufs["V"][: a * a * C * n].reshape(a * a, C, n)
        M = bufs["M"][: a * a * O * n].reshape(a * a, O, n)
        Y = bufs["Y"][: m * m * O * n].reshape(m, m, O, r, nW)
        _split(threads, C, _gather_tiles, T, xpad[:, m * t0 : m * (t0 + r) + 2], D)
        _matmul_into(xp, BB, D.reshape(a * a, C * n), V.reshape(a * a, C * n))  # V = B^T d B
        _matmul_into(xp, U, V, M)  # M[k] = U[k] @ V[k], k = (xi, nu)  # koc,kcp->kop
        _matmul_into(xp, AA, M.reshape(a * a, O * n), Y.reshape(m * m, O * n))  # Y = A^T M A
        _split(threads, O, _interleave, Y, out[:, t0 : t0 + r])
    out = out.reshape(O, m * nH, m * nW)
    if m * nH != Ho or m * nW != Wo:
        out = xp.ascontiguousarray(out[:, :Ho, :Wo])
    return out


def _matmul_into(xp, A, B, out):
    """``out[...] = A @ B``: in place on NumPy; CuPy's matmul is not documented to take ``out=``."""
    if xp is np:
        np.matmul(A, B, out=out)
    else:
        out[...] = xp.matmul(A, B)
    return out


def _keep_exact_zeros(x, out, pad):
    """Set to exactly 0 the outputs whose 3x3 window holds no nonzero input; returns ``out``.

    Such an output is 0 in exact arithmetic, and the direct convolution computes it
    as a sum of exact zeros. Winograd does not: the inverse transform combines
    nonzero M entries of the tile that cancel only up to rounding, and leaves
    residue of order eps times the tile's values. Code may rely on those zeros
    (the receptive field of a unit is the support of its input gradient,
    ``tests/test_visualize.py``), so they are restored here: a pixel mask of where
    any channel is nonzero, dilated by the 3x3 window. It costs one reduction over
    the input, and nothing more when every pixel has a nonzero channel (dense
    activations and gradients, the usual case).
    """
    xp = array_module(x)
    nonzero = x.any(axis=0)  # (H, W)
    if bool(nonzero.all()):
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
    """Convolution ``out`` (O, Ho, Wo) as :func:`scratchnst.layers.conv2d_forward`, by Winograd where it applies.

    ``b`` may be None. 3x3 kernels with 0 <= pad <= 2 and at least ``MIN_CHANNELS``
    channels on both sides use F(m x m, 3 x 3) (``m`` defaults to ``DEFAULT_M``),
    with U from the kernel cache; everything else uses the banded GEMM of
    :func:`scratchnst.fastconv.conv2d_forward_nocache`.
    """
    if x.shape[0] != w.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[0]} channels, kernel expects {w.shape[1]}")
    m = m or DEFAULT_M
    if not _use_winograd(w, pad, m):
        return fastconv.conv2d_forward_nocache(x, w, b, pad)
    T = TRANSFORMS[m]
    out = _keep_exact_zeros(x, winograd_conv3x3(x, KERNELS.get(w, T), T, pad), pad)
    if b is not None:
        out += b[:, None, None]
    return out


def conv2d_forward(x, w, b, pad=1, m=None):
    """2D convolution, stride 1, by Winograd F(m x m, 3 x 3) where it applies (m = ``DEFAULT_M``: 4).

    Same contract as :func:`scratchnst.layers.conv2d_forward`: ``x`` (C, H, W),
    ``w`` (O, C, kh, kw), ``b`` (O,); returns ``out`` (O, H + 2 pad - kh + 1,
    W + 2 pad - kw + 1) and a :class:`scratchnst.fastconv.ConvCache` (the input's
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
    :func:`scratchnst.fastconv.conv2d_backward_input` for the derivation), a 3x3
    convolution like the forward one; its transformed kernel
    ``U' = G w' G^T`` (a^2, C, O) is cached next to the forward U.

    A layer with few input channels (``9 C <= O``: VGG19's conv1_1, 3 of 64) takes
    the reference's route instead, :func:`_backward_input_col2im`.
    """
    shape, w, pad = cache
    if 9 * w.shape[1] <= w.shape[0]:  # few input channels (conv1_1: 3 of 64)
        return _backward_input_col2im(dout, w, pad, shape)
    m = m or DEFAULT_M
    if not _use_winograd(w, pad, m):
        return fastconv.conv2d_backward_input(dout, cache)
    T = TRANSFORMS[m]
    return _keep_exact_zeros(dout, winograd_conv3x3(dout, KERNELS.get(w, T, flip=True), T, 2 - pad), 2 - pad)


def conv2d_forward_f2(x, w, b, pad=1):
    """:func:`conv2d_forward` with F(2x2, 3x3): 2.25x fewer multiplications, the GEMM's float32 accuracy."""
    return conv2d_forward(x, w, b, pad, m=2)


def conv2d_backward_input_f2(dout, cache):
    """:func:`conv2d_backward_input` with F(2x2, 3x3), the partner of :func:`conv2d_forward_f2`."""
    return conv2d_backward_input(dout, cache, m=2)


def _backward_input_col2im(dout, w, pad, shape):
    """``dx`` (C, H, W) as :func:`scratchnst.layers.conv2d_backward_input` computes it: ``w^T dout``, then col2im.

    For a layer with few input channels this is the cheap way round. The flipped
    convolution would run on dout's O channels (an im2col or Winograd transform of
    O channels, 600 MB of im2col for conv1_1's gradient at 512 px) to produce C = 3;
    here the GEMM makes ``dcols`` (9 C, P), no larger than dout when 9 C <= O, and
    the col2im is kh kw slice-adds of C-channel images. Measured at 512 px, 2
    threads: 0.34 s by the flipped banded GEMM, a few hundredths this way.
    """
    xp = array_module(dout)
    C, H, W = shape
    O, _, kh, kw = w.shape
    _, Ho, Wo = dout.shape
    # cuvo,op->cuvp : the gradient of every im2col entry
    dcols = (w.reshape(O, C * kh * kw).T @ dout.reshape(O, Ho * Wo)).reshape(C, kh, kw, Ho, Wo)
    dxpad = xp.zeros((C, H + 2 * pad, W + 2 * pad), dtype=dout.dtype)
    for u in range(kh):  # slice-adds, not a fancy-indexed +=, which drops repeated indices
        for v in range(kw):
            dxpad[:, u : u + Ho, v : v + Wo] += dcols[:, u, v]
    return xp.ascontiguousarray(dxpad[:, pad : pad + H, pad : pad + W])
