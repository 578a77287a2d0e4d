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
