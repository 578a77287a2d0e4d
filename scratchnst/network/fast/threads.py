"""How many threads the fast convolutions' memory passes use, and how work is split between them.

The GEMMs run on BLAS's own threads. NumPy's copies (Winograd's tile gathers and
output interleaving) run on the calling thread only, but they release the GIL, so
Python threads do run them in parallel.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def transform_threads(xp):
    """Threads for the transforms: ``SCRATCHNST_NUM_THREADS``, else OpenBLAS's or OpenMP's setting, else all CPUs.

    The GEMMs run on BLAS's threads; NumPy's copies run on the calling thread only
    (they release the GIL, so Python threads do run them in parallel). Left on one
    thread, the copies, not the products, take the time (benchmarks/README.md,
    "Threads for the transforms"). On CuPy the GPU is the parallelism: 1.
    """
    if xp is not np:
        return 1
    for var in ("SCRATCHNST_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").strip().isdigit():
            return max(1, int(os.environ[var]))
    return os.cpu_count() or 1


_pools = {}  # threads -> ThreadPoolExecutor, created on first use and reused (starting threads is not free)


def split_over_threads(threads, n, fn, *args):
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
