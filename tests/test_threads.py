"""The CPU thread policy (scratchnst/network/fast/threads.py): who decides the count, and no nesting over BLAS.

Whether it is fair under load is measured, not tested: ``benchmarks/bench_cpu.py --concurrent 2``.
"""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from scratchnst.network.fast import threads, winograd
from scratchnst.network.fast.winograd_transforms import KERNELS


def blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def clean_env(monkeypatch):
    for var in (threads.ENV_THREADS, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    previous = threads.set_num_threads(None)
    yield monkeypatch
    threads.set_num_threads(previous)


def test_the_count_follows_the_flag_then_our_variable_then_omp_then_affinity(clean_env):
    import os

    assert threads.num_threads() == len(os.sched_getaffinity(0))
    clean_env.setenv("OPENBLAS_NUM_THREADS", "5")
    assert threads.num_threads() == 5
    clean_env.setenv("OMP_NUM_THREADS", "3")
    assert threads.num_threads() == 3
    clean_env.setenv(threads.ENV_THREADS, "7")
    assert threads.num_threads() == 7
    threads.set_num_threads(2)
    assert threads.num_threads() == 2
    clean_env.setenv(threads.ENV_THREADS, "0")  # not a count: the next one decides
    threads.set_num_threads(None)
    assert threads.num_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_count_is_refused(bad, clean_env):
    with pytest.raises(ValueError, match="positive integer"):
        threads.set_num_threads(bad)


def test_blas_runs_on_one_thread_inside_our_threads_and_gets_its_own_back(clean_env):
    before = blas_threads()
    if not before:
        pytest.skip("threadpoolctl finds no BLAS here")
    threads.set_num_threads(2)
    seen = {}

    def work(lo, hi):
        np.ones((64, 64)) @ np.ones((64, 64))  # BLAS, from each of our threads
        seen[threading.get_ident()] = blas_threads()

    threads.split_over_threads(2, 2, work)
    assert len(seen) == 2  # two threads ran
    assert all(n == [1] * len(before) for n in seen.values()), seen
    assert blas_threads() == before  # restored


def test_a_worker_error_reaches_the_caller_and_blas_is_restored(clean_env):
    before = blas_threads()

    def work(lo, hi):
        if lo > 0:
            raise RuntimeError("worker failed")

    with pytest.raises(RuntimeError, match="worker failed"):
        threads.split_over_threads(2, 4, work)
    assert blas_threads() == before


def test_every_index_is_done_once(clean_env):
    done = np.zeros(11, int)

    def work(lo, hi):
        done[lo:hi] += 1

    threads.split_over_threads(3, 11, work)
    assert (done == 1).all()


def test_winograd_over_threads_equals_one_thread(clean_env):
    """The bands split over threads give the same convolution as one thread doing them all."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 37, 29))
    w = rng.standard_normal((64, 64, 3, 3))
    T = winograd.TRANSFORMS[4]
    out = {}
    for n in (1, 3):
        threads.set_num_threads(n)
        out[n] = winograd.winograd_conv3x3(x, KERNELS.get(w, T), T)
    assert threads.transform_threads(np) == 3
    np.testing.assert_allclose(out[3], out[1], rtol=0, atol=1e-12 * np.abs(out[1]).max())


def test_winograd_gradient_over_threads_equals_one_thread(clean_env, monkeypatch):
    """The adjoint's bands add into shared rows: split over threads (even bands, then odd), the sum is the same."""
    from scratchnst.network.fast import bands

    monkeypatch.setitem(bands.BAND_BYTES, "numpy", 1)  # one tile row a band: many bands, many shared rows
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 41, 30))
    w = rng.standard_normal((64, 64, 3, 3))
    out, cache = winograd.conv2d_forward(x, w, None)
    dout = rng.standard_normal(out.shape)
    dx = {}
    for n in (1, 3):
        threads.set_num_threads(n)
        dx[n] = winograd.conv2d_backward_input(dout, cache)
    np.testing.assert_allclose(dx[3], dx[1], rtol=0, atol=1e-12 * np.abs(dx[1]).max())


def test_the_gradient_needs_no_second_kernel_transform():
    """The adjoint multiplies by the forward kernel's U: one cache entry per kernel, not two (half the memory)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 12, 12))
    w = rng.standard_normal((64, 64, 3, 3))
    before = len(KERNELS)
    out, cache = winograd.conv2d_forward(x, w, None)
    winograd.conv2d_backward_input(np.ones_like(out), cache)
    assert len(KERNELS) == before + 1


def test_an_evaluation_and_an_lbfgs_step_hold_blas_at_one_thread_throughout(clean_env):
    # The costs' Grams and L-BFGS's dot products run between our threads' passes; with
    # BLAS's own threads they wake OpenBLAS's busy-waiting workers (threads.blas_held).
    from scratchnst.method import costs, objective
    from scratchnst.method.lbfgs import LBFGS

    before = blas_threads()
    if not before or max(before) < 2:
        pytest.skip("needs a BLAS with more than one thread to tell held from not")
    threads.set_num_threads(2)
    seen = []
    import scratchnst

    net = scratchnst.load_vgg19(dtype="float32")
    obj = objective.Objective(net, np.full((3, 32, 32), 10.0), np.full((3, 32, 32), -5.0),
                              content_layers=("relu1_1",), style_layers=("relu1_1", "relu2_1"))

    clean_env.setattr(objective, "style_layer_cost",
                      lambda a, A, k, grad: (seen.append(blas_threads()), costs.style_layer_cost(a, A, k, grad))[1])
    x = np.random.default_rng(0).standard_normal((3, 32, 32)).astype(np.float32)
    obj.value_and_grad(x)
    assert seen and all(n == [1] * len(before) for n in seen), seen
    seen.clear()

    def fun(z):
        seen.append(blas_threads())
        return obj.value_and_grad(z)

    opt = LBFGS()
    opt.start(fun, x)
    seen.clear()  # start is not a step: from here on, the line search's calls
    opt.step(fun)
    assert len(seen) >= 2 and all(n == [1] * len(before) for n in seen), seen
    assert blas_threads() == before  # BLAS gets its threads back after each


@pytest.mark.parametrize("n, k, m", [(8, 8, 300), (40, 8, 30), (7, 500, 7)])  # by columns, by rows; a Gram
def test_products_split_over_threads_equal_one_product(clean_env, n, k, m):
    from scratchnst.network.fast import gemm

    clean_env.setattr(gemm, "MIN_SPLIT_MACS", 0)
    threads.set_num_threads(3)
    if threads.transform_threads(np) != 3:
        pytest.skip("threadpoolctl cannot hold this BLAS: our threads stay at one")
    calls = []
    clean_env.setattr(gemm, "split_over_threads",
                      lambda t, N, fn: (calls.append((t, N)), threads.split_over_threads(t, N, fn)))
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    np.testing.assert_allclose(gemm.matmul_threads(A, B), A @ B, rtol=1e-13, atol=1e-13)
    F = rng.standard_normal((n, k * m))
    G = gemm.gram_threads(F)
    np.testing.assert_allclose(G, F @ F.T, rtol=1e-13, atol=1e-12)
    np.testing.assert_array_equal(G, G.T)  # each block's syrk is symmetric, and so is their sum
    assert [t for t, _ in calls] == [3, 3]  # both went over the threads


def test_the_workers_follow_the_callers_numpy_error_handling(clean_env):
    # NumPy's errstate is per thread: without passing it on, a worker warned where the
    # caller had silenced (the command line's one-line error got a RuntimeWarning above it).
    import warnings

    x = np.array([np.inf] * 8)

    def work(lo, hi):
        x[lo:hi] * 0  # invalid: inf * 0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(invalid="ignore"):
            threads.split_over_threads(2, 8, work)  # silent in every thread
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
        threads.split_over_threads(2, 8, lambda lo, hi: work(lo, hi) if lo else None)  # only a worker's slice
