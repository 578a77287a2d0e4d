"""Winograd's minimal filtering: the transform matrices, and each kernel transformed once.

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
(2.25x fewer), 36 instead of 144 for F(4x4, 3x3) (4x fewer).

This module holds the matrices (Lavin and Gray, section 4) and ``U = G g G^T``
for every kernel, cached; :mod:`scratchnst.network.fast.winograd` is the
convolution that uses them.
"""

import weakref
from typing import NamedTuple

import numpy as np

from scratchnst.backend import array_module
from scratchnst.network.fast.gemm import flipped_transposed


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
    a = T.G.shape[0]
    O, C = w.shape[:2]
    # U[(i, j), (o, c)] = sum_uv G[i, u] G[j, v] w[o, c, u, v]: one GEMM with kron(G, G),
    # where the three-operand einsum looped in Python-speed order (0.1 s per large layer).
    GG = xp.asarray(np.kron(T.G, T.G))  # (a^2, 9)
    U = GG @ w.reshape(O * C, 9).astype(np.float64).T  # ij,(uv),(uv),(oc) -> (a^2, O C)
    return xp.ascontiguousarray(U.reshape(a * a, O, C).astype(w.dtype))


class KernelCache:
    """Transformed kernels, remembered by the identity of the kernel array.

    A network calls ``conv(x, w, b, pad)`` with the same ``w`` object on every
    pass, and ``U`` is a pure function of ``w``: transforming it again on every
    call would cost a GEMM-sized einsum per layer and pass. So the first call
    computes U (and, for the gradient, U of the flipped kernel) and keeps it until
    ``w`` is garbage-collected (a weak reference evicts it). Results never depend
    on this cache, with one caveat: a kernel modified *in place* keeps its old U.
    Style transfer never changes the weights; if you do, call :meth:`clear`.

    Memory: U is (a/3)^2 times its kernel (4x for F(4x4)), for every layer that uses
    Winograd: the largest part of Winograd's extra memory over the GEMM
    (benchmarks/README.md, "Kernel cache memory"). The input gradient uses the same U
    (:mod:`scratchnst.network.fast.winograd_adjoint`); ``flip=True`` (U of the flipped
    kernel) is there for code that convolves with it directly.
    """

    def __init__(self):
        self._entries = {}  # (id(w), flip, m) -> (weakref to w, U)

    def get(self, w, T, flip=False):
        key = (id(w), flip, T.m)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is w:
            return entry[1]
        U = kernel_transform(flipped_transposed(w) if flip else w, T)
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
