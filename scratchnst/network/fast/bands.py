"""How much of a layer the fast convolutions compute at once: bands of output rows.

Both fast convolutions (:mod:`.gemm` and :mod:`.winograd`) need a working buffer
several times the size of their input (im2col's 9 copies, Winograd's transformed
tiles). Computed for a whole 1024 px layer at once that is gigabytes, so each
works through the output a band of rows at a time, reusing one buffer of at most
``BAND_BYTES``: memory O(band) instead of O(layer), the same arithmetic.
"""

import numpy as np

# One band's working buffer: small enough to bound memory, large enough that the
# GEMM calls (one per band at least, each synchronising BLAS's threads) do not
# cost time (benchmarks/README.md, "Band size"). On a GPU a band costs kernel
# launches, not cache misses: larger.
BAND_BYTES = {"numpy": 64 << 20, "cupy": 512 << 20}
MIN_BAND_PIXELS = 512  # below this a GEMM is too thin to run at full speed


def band_rows(xp, row_bytes, row_pixels, n_rows):
    """Rows per band: as many as fit ``BAND_BYTES``, at least ``MIN_BAND_PIXELS`` pixels, at most ``n_rows``.

    Parameters
    ----------
    xp : numpy or cupy
    row_bytes : bytes of working buffer one row of the band needs
    row_pixels : output pixels one row of the band produces
    n_rows : rows in the whole output
    """
    budget = BAND_BYTES["numpy" if xp is np else "cupy"]
    rows = max(budget // max(row_bytes, 1), -(-MIN_BAND_PIXELS // max(row_pixels, 1)), 1)
    return int(min(rows, n_rows))


def balanced_rows(rows, n_rows, groups):
    """Rows per band, at most ``rows``, such that the bands come in whole multiples of ``groups``
    of about equal height: ``groups`` threads (times two parities, for the adjoint) then
    each get the same number of equal bands. With ``rows`` alone, 64 tile rows in bands of
    10 make 7 bands, 4 for one thread and 3 for the other: the second idles a third of
    the time (VGG19's conv1_2 at 384 x 256 px)."""
    bands = -(-n_rows // max(rows, 1))  # the fewest bands the budget allows
    bands = groups * -(-bands // groups)  # rounded up to a multiple of groups
    return max(1, -(-n_rows // bands))
