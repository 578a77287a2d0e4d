"""The input gradient of a Winograd convolution as its exact adjoint, with the forward kernel's U.

The forward pass (:func:`scratchnst.network.fast.winograd.winograd_conv3x3`) is a
chain of linear maps of the padded input, for every band of tiles:

    D = gather(xpad)        a x a tiles, overlapping by 2       (a^2, C, n)
    V = BB D                BB = kron(B^T, B^T)                  (a^2, C, n)
    M[k] = U[k] V[k]                                            (a^2, O, n)
    Y = AA M                AA = kron(A^T, A^T)                  (m^2, O, n)
    out = interleave(Y)     m x m tiles, side by side

so its gradient with respect to the input is the same chain transposed, in reverse:

    dY = tiles(dout)        m x m tiles of dout (the inverse of interleave: a copy)
    dM = AA^T dY                                                (a^2, O, n)
    dV[k] = U[k]^T dM[k]                                        (a^2, C, n)
    dD = BB^T dV                                                (a^2, C, n)
    dx += scatter(dD)       each tile added back where it was gathered (overlap-add),
                            less the padding: padded row y is row y - pad of dx

It needs only the forward kernel's U, transposed per point k, where the flipped-kernel
convolution it replaces needed a second transformed kernel, U of the flipped kernel,
as large as the first: the kernel cache halves (at 512 px, 206 MB of VGG19's 412 MB;
benchmarks/README.md, "Kernel cache memory"). The multiplications are the same in
number. It is exact in exact arithmetic, like the flipped convolution, so the two
agree to rounding (``tests/test_winograd.py``).

Bands run on our threads (:mod:`scratchnst.network.fast.threads`). Two neighbouring
bands add into two shared rows of ``dx`` (tiles overlap by 2), so the even bands
run first, then the odd ones: no two bands that touch run at once.
"""

from scratchnst.backend import array_module
from scratchnst.network.fast.bands import balanced_rows, band_rows
from scratchnst.network.fast.gemm import matmul_into
from scratchnst.network.fast.threads import split_over_threads, transform_threads


def _tiles_of(dout, dY):
    """``dY[i, j, o, t, s] = dout[o, t, i, s, j]``: dout (O, r, m, nW, m) as m x m tiles, one copy."""
    dY[...] = dout.transpose(2, 4, 0, 1, 3)  # (o, t, i, s, j) -> (i, j, o, t, s)


def _inside(offset, m, n, size):
    """Tiles ``t`` in [lo, hi) whose entry at ``m t + offset`` falls in [0, size), and that first position."""
    lo = max(0, -(offset // m))  # the first t with m t + offset >= 0
    hi = min(n, -(-(size - offset) // m))  # past the last t with m t + offset < size
    return lo, hi, m * lo + offset


def _scatter_add(dD, dx, m, row0, pad):
    """``dx[c, m t + u - pad + row0, m s + v - pad] += dD[u, v, c, t, s]``: each a x a tile back where the
    forward gathered it, in unpadded coordinates (the entries that fell on the padding are dropped)."""
    a, r, nW = dD.shape[0], dD.shape[3], dD.shape[4]
    H, W = dx.shape[1:]
    for u in range(a):
        t_lo, t_hi, y = _inside(row0 + u - pad, m, r, H)
        for v in range(a):
            s_lo, s_hi, x = _inside(v - pad, m, nW, W)
            if t_hi > t_lo and s_hi > s_lo:
                rows = slice(y, y + m * (t_hi - t_lo - 1) + 1, m)
                cols = slice(x, x + m * (s_hi - s_lo - 1) + 1, m)
                dx[:, rows, cols] += dD[u, v, :, t_lo:t_hi, s_lo:s_hi]


class _AdjointBand:
    """Working buffers of one band (reused for every band a thread runs)."""

    def __init__(self, xp, T, C, O, tiles, dtype, BB, AA):
        m, a = T.m, T.m + 2
        self.xp, self.T, self.BB, self.AA = xp, T, BB, AA
        self.dY = xp.empty(m * m * O * tiles, dtype=dtype)
        self.dM = xp.empty(a * a * O * tiles, dtype=dtype)
        self.dV = xp.empty(a * a * C * tiles, dtype=dtype)
        self.dD = xp.empty(a * a * C * tiles, dtype=dtype)

    def run(self, dout, UT, dx, row0, pad):
        """One band: ``dout`` (O, r, m, nW, m), tile rows from padded row ``row0`` -> adds into ``dx`` (C, H, W)."""
        xp, m, a = self.xp, self.T.m, self.T.m + 2
        O, r, nW = dout.shape[0], dout.shape[1], dout.shape[3]
        C, n = UT.shape[1], r * nW
        dY = self.dY[: m * m * O * n].reshape(m, m, O, r, nW)
        dM = self.dM[: a * a * O * n].reshape(a * a, O, n)
        dV = self.dV[: a * a * C * n].reshape(a * a, C, n)
        dD = self.dD[: a * a * C * n].reshape(a * a, C * n)
        _tiles_of(dout, dY)
        matmul_into(xp, self.AA.T, dY.reshape(m * m, O * n), dM.reshape(a * a, O * n))  # ki,iop->kop
        matmul_into(xp, UT, dM, dV)  # dV[k] = U[k]^T dM[k]  # kco,kop->kcp
        matmul_into(xp, self.BB.T, dV.reshape(a * a, C * n), dD)  # lk,kcp->lcp
        _scatter_add(dD.reshape(a, a, C, r, nW), dx, m, row0, pad)


def winograd_conv3x3_adjoint(dout, U, T, BB, AA, pad, shape):
    """``dx`` (C, H, W): the gradient of :func:`winograd_conv3x3` ``(x, U, T, pad)`` for the upstream ``dout``.

    Parameters
    ----------
    dout : ndarray (O, Ho, Wo), Ho = H + 2 pad - 2
    U : ndarray (a*a, O, C), the forward kernel's transform
    T : the Transform; BB, AA : its tile transforms (``winograd._tile_transforms``)
    pad : the forward's padding; shape : (C, H, W) of the forward's input
    """
    xp = array_module(dout)
    C, H, W = shape
    O, Ho, Wo = dout.shape
    m, a = T.m, T.m + 2
    nH, nW = -(-Ho // m), -(-Wo // m)
    # dout on whole tiles (zeros past its edge, where the forward cropped): a view when
    # the tiles fit exactly, as every VGG19 layer's do at sizes that are multiples of 64.
    if Ho == m * nH and Wo == m * nW and dout.flags.c_contiguous:
        dtiles = dout.reshape(O, nH, m, nW, m)
    else:
        dtiles = xp.zeros((O, nH, m, nW, m), dtype=dout.dtype)
        dtiles.reshape(O, m * nH, m * nW)[:, :Ho, :Wo] = dout
    dx = xp.zeros((C, H, W), dtype=dout.dtype)
    UT = U.transpose(0, 2, 1)  # (a^2, C, O): a view, BLAS reads it transposed

    threads = transform_threads(xp)
    tile_floats = 2 * a * a * C + a * a * O + m * m * O
    rows = band_rows(xp, threads * tile_floats * nW * dout.dtype.itemsize, m * m * nW, nH)
    rows = balanced_rows(rows, nH, 2 * threads)  # as many equal bands a thread, even and odd
    starts = list(range(0, nH, rows))

    def run_bands(lo, hi, chosen):
        band = _AdjointBand(xp, T, C, O, rows * nW, dout.dtype, BB, AA)
        for t0 in chosen[lo:hi]:
            r = min(rows, nH - t0)
            band.run(dtiles[:, t0 : t0 + r], UT, dx, m * t0, pad)

    for parity in (0, 1):  # neighbouring bands share two rows of dx: never at the same time
        chosen = starts[parity::2]
        split_over_threads(threads, len(chosen), run_bands, chosen)
    return dx
