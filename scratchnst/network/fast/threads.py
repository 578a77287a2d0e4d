"""The package's one thread policy on the CPU: our threads split the work, BLAS runs on one.

A convolution's work is many independent GEMMs and copies (Winograd's bands of
tile rows). There are two ways to put two cores on it: let BLAS split each
GEMM over its own threads, or give each of our threads whole bands and let
BLAS run single-threaded inside them. Alone on a machine both are about as
fast. Under load they are not: OpenBLAS's threads busy-wait between GEMMs, so
two processes each running BLAS on every core spin against each other and
against our copy threads, and both slow down many times over (two concurrent
iterations took 15x the time of one, where a fair share is 2x). Our threads wait
for work blocked on a lock, taking no CPU, so with them only the machine's cores
are shared, never wasted (benchmarks/README.md, "Threads under load").

So, on NumPy: :func:`num_threads` threads split the bands (:func:`split_over_threads`),
and :func:`blas_limited` holds BLAS at one thread while they run, never nesting
our threads over BLAS's. Where the BLAS cannot be controlled (threadpoolctl
finds no library it knows), BLAS keeps its threads and ours drop to one, which
is nesting-free too. On CuPy the GPU is the parallelism: one thread.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

ENV_THREADS = "SCRATCHNST_NUM_THREADS"
_override = None  # set_num_threads(n): an explicit choice (the CLI's --threads), above every variable


def set_num_threads(n):
    """Use ``n`` threads from now on (None: back to the environment's choice); returns the previous override."""
    global _override
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    previous, _override = _override, n
    return previous


def num_threads():
    """Threads for the NumPy fast path.

    In order: :func:`set_num_threads` (``--threads``), ``SCRATCHNST_NUM_THREADS``,
    ``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` (a user's usual way of asking a
    numerical program for fewer threads), else the CPUs this process may run on
    (its affinity mask: a container's or ``taskset``'s limit, not the machine's count).
    """
    if _override is not None:
        return _override
    for var in (ENV_THREADS, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def transform_threads(xp):
    """Threads to split a convolution's bands over: :func:`num_threads` on NumPy if BLAS can be held at one, else 1."""
    if xp is not np:
        return 1
    n = num_threads()
    return n if n == 1 or _blas_controller() is not None else 1


_controller = []  # [threadpoolctl's controller of the BLAS libraries, or None], found once


def _blas_controller(refresh=False):
    """threadpoolctl's controller of the loaded BLAS libraries (None if it finds none), cached;
    ``refresh`` looks again (0.3 ms), for a library loaded since (another package's BLAS)."""
    if refresh and getattr(_held, "depth", 0) == 0:
        _controller.clear()
    if not _controller:
        try:
            from threadpoolctl import ThreadpoolController

            blas = ThreadpoolController().select(user_api="blas")
            _controller.append(blas if blas.lib_controllers else None)
        except Exception:  # no threadpoolctl, or a platform it cannot inspect: BLAS keeps its threads
            _controller.append(None)
    return _controller[0]


_held = threading.local()  # how deeply this thread is inside blas_limited


@contextmanager
def blas_limited(threads):
    """Hold BLAS at one thread while ``threads`` > 1 of ours run (re-entrant; a no-op for one thread).

    Setting OpenBLAS's thread count costs about a microsecond, so it is done
    around each parallel region, and restored after: code outside scratchnst's
    passes keeps BLAS's own threads.
    """
    blas = _blas_controller() if threads > 1 else None
    depth = getattr(_held, "depth", 0)
    if blas is None or depth:
        yield
        return
    saved = [lib.num_threads for lib in blas.lib_controllers]
    _held.depth = 1
    for lib in blas.lib_controllers:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in zip(blas.lib_controllers, saved):
            lib.set_num_threads(n)
        _held.depth = 0


def blas_held(xp):
    """:func:`blas_limited` for a whole evaluation or optimiser step on ``xp`` (a no-op on CuPy or one thread).

    The passes between the convolutions (the costs' Gram products, L-BFGS's dot
    products) are small BLAS calls. Left to BLAS's own threads, each wakes them, and
    OpenBLAS's threads then busy-wait for a while after, taking a core from our
    threads' next pass; the Grams are split over our threads instead
    (:func:`scratchnst.network.fast.gemm.gram_threads`). ``benchmarks/bench_blas_held.py``
    measures the difference (benchmarks/README.md, "Threads under load").
    """
    if xp is np:
        _blas_controller(refresh=True)  # once an evaluation: a BLAS loaded since is held too
    return blas_limited(transform_threads(xp))


_pools = {}  # threads -> ThreadPoolExecutor, created on first use and reused (starting threads is not free)


def split_over_threads(threads, n, fn, *args):
    """``fn(lo, hi, *args)`` on ``threads`` contiguous slices of ``range(n)``, in parallel, BLAS held at one thread."""
    threads = max(1, min(threads, n))
    if threads == 1:
        fn(0, n, *args)
        return
    bounds = [(k * n // threads, (k + 1) * n // threads) for k in range(threads)]
    pool = _pools.get(threads)
    if pool is None:
        pool = _pools[threads] = ThreadPoolExecutor(threads - 1, thread_name_prefix="scratchnst")
    err = np.geterr()  # NumPy's error handling is per thread: the workers take the caller's

    def in_worker(lo, hi):
        with np.errstate(**err):
            fn(lo, hi, *args)

    with blas_limited(threads):
        futures = [pool.submit(in_worker, lo, hi) for lo, hi in bounds[1:]]
        try:
            fn(*bounds[0], *args)  # the calling thread takes the first slice
        finally:
            for f in futures:
                f.result()  # waits for every worker, and re-raises a worker's exception here
