"""L-BFGS and Adam on problems with known minima, against scipy, and checkpoint/resume."""

import io
import math

import numpy as np
import pytest

from scratchnst.backend import to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.method.adam import Adam
from scratchnst.method.lbfgs import LBFGS
from scratchnst.method.line_search import strong_wolfe
from scratchnst.method.optimize import minimize

# The xp fixture (numpy, and cupy where a GPU is present) is in conftest.py.


def rosenbrock(x):
    """Extended Rosenbrock sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2, minimum 0 at ones."""
    r = x[1:] - x[:-1] ** 2
    f = (100 * r * r + (1 - x[:-1]) ** 2).sum()
    g = x * 0
    g[1:] += 200 * r
    g[:-1] += -400 * x[:-1] * r - 2 * (1 - x[:-1])
    return f, g


def quadratic(n, seed=1):
    """f = 1/2 x'Ax - b'x with a random SPD A; returns (fun, minimiser)."""
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, n))
    A = Q @ Q.T + 0.1 * n * np.eye(n)  # condition number ~ 20-40
    b = rng.standard_normal(n)
    return (lambda x: (0.5 * x @ A @ x - b @ x, A @ x - b)), np.linalg.solve(A, b)


class Counted:
    def __init__(self, fun):
        self.fun, self.calls = fun, 0

    def __call__(self, x):
        self.calls += 1
        return self.fun(x)


# ----------------------------------------------------------------------- L-BFGS


@pytest.mark.parametrize("n", [5, 20])
def test_quadratic_in_n_iterations(n):
    """With a (near) exact line search and history >= n, L-BFGS is conjugate gradients: n steps."""
    fun, x_star = quadratic(n)
    res = minimize(fun, np.zeros(n), max_iter=10 * n, history_size=n, c2=1e-3, tol_grad=1e-9)
    err = np.abs(res.x - x_star).max() / np.abs(x_star).max()
    print(f"\n  quadratic n={n}, exact-ish line search: {res.n_iter} iterations, "
          f"{res.n_evals} evaluations, error {err:.1e} ({res.message})")
    assert res.n_iter <= n + 1, res
    assert err < 1e-7
    # with the default, inexact (c2 = 0.9) line search it takes longer, but converges
    res = minimize(fun, np.zeros(n), max_iter=10 * n, history_size=n, tol_grad=1e-7)
    err = np.abs(res.x - x_star).max() / np.abs(x_star).max()
    print(f"  quadratic n={n}, default line search: {res.n_iter} iterations, error {err:.1e}")
    assert res.converged and err < 1e-5 and res.n_iter <= 4 * n


@pytest.mark.parametrize("n, x0", [
    (2, [-1.2, 1.0]),
    (10, np.resize([-1.2, 1.0], 10)),
    (100, np.random.default_rng(0).uniform(-2, 2, 100)),
])
def test_rosenbrock_against_scipy(n, x0):
    """Reaches the minimum at ones; iteration count within 1.5x of scipy's L-BFGS-B (+5)."""
    x0 = np.asarray(x0, dtype=np.float64)
    fun = Counted(rosenbrock)
    res = minimize(fun, x0, max_iter=5000, history_size=10, tol_grad=1e-8)
    err = np.abs(res.x - 1).max()
    assert fun.calls == res.n_evals
    try:
        from scipy.optimize import minimize as sp_minimize
    except ImportError:
        sp = None
    else:
        sp = sp_minimize(rosenbrock, x0, jac=True, method="L-BFGS-B",
                         options={"maxcor": 10, "gtol": 1e-8, "ftol": 0, "maxiter": 5000})
    msg = f"rosenbrock n={n}: ours {res.n_iter} iterations / {res.n_evals} evaluations, error {err:.1e}"
    if sp is not None:
        msg += f"; scipy L-BFGS-B {sp.nit} / {sp.nfev}, error {np.abs(sp.x - 1).max():.1e}"
    print("\n  " + msg)
    assert res.converged and err < 1e-6, msg
    if sp is None:
        pytest.skip("scipy not importable: no iteration-count comparison")
    assert res.n_iter <= 1.5 * sp.nit + 5, msg


def test_rosenbrock_on_backend(xp):
    """The same code on the array module of x (CuPy when there is a GPU)."""
    x0 = xp.asarray(np.resize([-1.2, 1.0], 10))
    res = minimize(rosenbrock, x0, max_iter=500, tol_grad=1e-8)
    assert type(res.x) is type(x0)
    assert np.abs(to_numpy(res.x) - 1).max() < 1e-6


def test_float32():
    """float32 (the stylisation dtype) converges to its own precision and keeps its dtype."""
    x0 = np.resize(np.float32([-1.2, 1.0]), 10)
    res = minimize(rosenbrock, x0, max_iter=500, tol_grad=1e-3)
    assert res.x.dtype == np.float32
    assert np.abs(res.x - 1).max() < 1e-2, res


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e9, 1e15])
def test_curvature_pairs_kept_at_any_scale(scale):
    """Style losses are ~1e13 with gradients ~1e9: the test that keeps a curvature
    pair must not depend on the scale of f. Scaling f must not change the path."""
    fun, x_star = quadratic(20)
    def scaled(x):  # in float32, the stylisation dtype, whose eps is 1.2e-7
        f, g = fun(x)
        return np.float32(scale * f), (scale * g).astype(np.float32)

    opt = LBFGS(history_size=5, tol_grad=0)
    opt.start(scaled, np.zeros(20, np.float32))
    for _ in range(8):
        opt.step(scaled)
    assert len(opt.s) == 5, f"only {len(opt.s)} pairs kept at scale {scale:g}"
    res = minimize(scaled, np.zeros(20, np.float32), max_iter=200, tol_grad=1e-4 * scale)
    assert np.abs(res.x - x_star).max() < 1e-3, (scale, res.n_iter)


def test_strong_wolfe_conditions():
    """The accepted step satisfies both conditions, from too short and too long first trials."""
    x = np.array([-1.2, 1.0])
    f0, g0 = rosenbrock(x)
    d = -g0
    gtd0 = float(g0 @ d)

    def phi(t):
        f, g = rosenbrock(x + t * d)
        return float(f), g, float(g @ d)

    for t0 in (1e-8, 1e-3, 1.0, 1e3):
        point, n, ok = strong_wolfe(phi, float(f0), gtd0, t0, c1=1e-4, c2=0.9)
        print(f"\n  first trial {t0:g}: step {point.t:.3e} after {n} evaluations")
        assert ok
        assert point.f <= f0 + 1e-4 * point.t * gtd0
        assert abs(point.gtd) <= 0.9 * abs(gtd0)


def test_line_search_backs_off_from_overflow():
    """A trial step whose loss is inf (e.g. float32 overflow) counts as too long, not as an error."""
    def fun(x):
        if np.abs(x).max() > 3:
            return math.inf, np.full_like(x, np.nan)
        return rosenbrock(x)

    res = minimize(fun, np.array([-1.2, 1.0]), max_iter=500, tol_grad=1e-8, first_step=1e6)
    assert res.converged and np.abs(res.x - 1).max() < 1e-6, res


def test_lbfgs_checkpoint_resume_is_bit_identical(tmp_path):
    """Stop after 15 iterations, save to .npz, resume in a fresh optimiser: same trajectory."""
    x0 = np.random.default_rng(3).uniform(-2, 2, 30)
    full = minimize(rosenbrock, x0, max_iter=40, history_size=5)

    saved = {}

    def checkpoint(opt):
        if opt.n_iter == 15:
            saved.update(opt.state_dict())
            return True  # stop, as if the job had been killed

    first = minimize(rosenbrock, x0, max_iter=40, history_size=5, callback=checkpoint)
    assert first.n_iter == 15
    buf = io.BytesIO()
    np.savez(buf, **saved)  # through a real checkpoint file format
    buf.seek(0)
    state = dict(np.load(buf))
    resumed = minimize(rosenbrock, None, max_iter=40, history_size=5, state=state)
    print(f"\n  full run {full.n_iter} iterations / {full.n_evals} evaluations; "
          f"resumed {resumed.n_iter} / {resumed.n_evals}; max |dx| {np.abs(full.x - resumed.x).max()}")
    assert resumed.n_iter == full.n_iter and resumed.n_evals == full.n_evals
    assert np.array_equal(resumed.x, full.x) and resumed.f == full.f
    assert np.array_equal(resumed.optimizer.g, full.optimizer.g)


def test_history_size_is_respected():
    opt = LBFGS(history_size=3, tol_grad=0)
    opt.start(rosenbrock, np.resize([-1.2, 1.0], 8))
    for _ in range(12):
        opt.step(rosenbrock)
        assert len(opt.s) <= 3
    assert opt.state_dict()["s"].shape[0] == 3
    with pytest.raises(ScratchNSTError, match="history_size"):
        LBFGS(history_size=2).load_state_dict(opt.state_dict())


def test_bad_options():
    with pytest.raises(ScratchNSTError):
        LBFGS(history_size=0)
    with pytest.raises(ScratchNSTError):
        LBFGS(c1=0.5, c2=0.1)
    with pytest.raises(ScratchNSTError, match="unknown method"):
        minimize(rosenbrock, np.zeros(2), method="sgd")
    with pytest.raises(ScratchNSTError, match="x0"):
        minimize(rosenbrock, None)


# ------------------------------------------------------------------------- Adam


def test_adam_decreases_a_quadratic(xp):
    fun, x_star = quadratic(10)
    A_fun = lambda x: tuple(map(xp.asarray, fun(to_numpy(x))))  # noqa: E731
    x = xp.zeros(10)
    adam = Adam(lr=0.05)
    losses = []
    for _ in range(500):
        f, g = A_fun(x)
        losses.append(float(f))
        x = adam.step(x, g)
    print(f"\n  Adam: loss {losses[0]:.4f} -> {losses[-1]:.6f}, "
          f"min {float(fun(x_star)[0]):.6f}, |x - x*| {np.abs(to_numpy(x) - x_star).max():.1e}")
    assert losses[-1] < losses[0]
    assert losses[-1] - float(fun(x_star)[0]) < 1e-4
    assert max(losses[400:]) < 1e-3 * (losses[0] - losses[-1]) + losses[-1]  # settled there


def test_adam_state_resume_is_bit_identical():
    fun, _ = quadratic(10)
    full = minimize(fun, np.zeros(10), method="adam", max_iter=60, lr=0.1)
    saved = {}

    def stop(opt):
        if opt.n_iter == 25:
            saved.update({k: (v.copy() if hasattr(v, "copy") else v) for k, v in opt.state_dict().items()})
            return True

    minimize(fun, np.zeros(10), method="adam", max_iter=60, lr=0.1, callback=stop)
    resumed = minimize(fun, None, method="adam", max_iter=60, lr=0.1, state=saved)
    assert resumed.n_iter == 60 and resumed.n_evals == full.n_evals == 61
    assert np.array_equal(resumed.x, full.x)
