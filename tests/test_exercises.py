"""The tutorials' "write it yourself" exercises: every check accepts its answer and rejects wrong ones.

The notebooks call ``check_exercise(name, fn)`` from ``tutorials/exercises.py`` on the
reader's code; here the same function runs on ``tutorials/solutions.py`` (must pass), on a
stub (must say "not implemented yet"), and on a deliberately wrong answer for each
exercise (must fail), so that a check which cannot fail is itself caught.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
sys.path.insert(0, str(TUTORIALS))
exercises = pytest.importorskip("exercises")
solutions = pytest.importorskip("solutions")

NAMES = sorted(exercises.CHECKS)


def _stub(*args):
    raise NotImplementedError


WRONG = {
    # passes the gradient everywhere: the mask forgotten
    "relu_backward": lambda dout, x: dout,
    # forgot the 2 from differentiating the square
    "content_cost": lambda a, p, k: (k * np.sum((a - p) ** 2), k * (a - p)),
    # right only when dG is symmetric
    "gram_backward": lambda dG, F: 2 * dG @ F,
    # the gradient without the 2 from the Gram's two factors of F
    "style_layer_cost": lambda a, A, k: (
        k * np.sum((a.reshape(a.shape[0], -1) @ a.reshape(a.shape[0], -1).T - A) ** 2),
        (2 * k * ((a.reshape(a.shape[0], -1) @ a.reshape(a.shape[0], -1).T - A) @ a.reshape(a.shape[0], -1)))
        .reshape(a.shape),
    ),
    # steepest descent scaled by gamma: no loops at all
    "two_loop": lambda g, s, y: -g if not s else -(s[-1] @ y[-1]) / (y[-1] @ y[-1]) * g,
}


def _two_loop_wrong_order(g, s, y):
    """The two loops run in the wrong directions (oldest to newest first)."""
    if not s:
        return -g
    rho = [1.0 / (yi @ si) for si, yi in zip(s, y)]
    q, alpha = g.copy(), [0.0] * len(s)
    for i in range(len(s)):
        alpha[i] = rho[i] * (s[i] @ q)
        q = q - alpha[i] * y[i]
    r = (s[-1] @ y[-1]) / (y[-1] @ y[-1]) * q
    for i in reversed(range(len(s))):
        r = r + (alpha[i] - rho[i] * (y[i] @ r)) * s[i]
    return -r


def _style_wrong_value(a, A, k):
    """The right gradient, but the value forgets k."""
    J, da = solutions.style_layer_cost(a, A, k)
    return J / k, da


def test_every_exercise_has_a_solution_and_a_wrong_answer():
    assert NAMES == sorted(WRONG)
    assert all(callable(getattr(solutions, n)) for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes(name, capsys):
    assert exercises.check_exercise(name, getattr(solutions, name)) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_stub_is_not_implemented_yet(name, capsys):
    assert exercises.check_exercise(name, _stub) is None
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_wrong_answer_fails(name, capsys):
    assert exercises.check_exercise(name, WRONG[name]) is False
    assert "WRONG" in capsys.readouterr().out


@pytest.mark.parametrize("name, wrong", [("two_loop", _two_loop_wrong_order),
                                         ("style_layer_cost", _style_wrong_value)])
def test_subtler_wrong_answers_fail(name, wrong):
    assert exercises.check_exercise(name, wrong, verbose=False) is False


def test_two_loop_reference_is_the_package_direction():
    """The dense BFGS reference agrees with scratchnst's own L-BFGS direction (so the check checks the real thing)."""
    from scratchnst.method.lbfgs import LBFGS

    rng = np.random.default_rng(0)
    n = 10
    Q = rng.standard_normal((n, n))
    H = Q @ Q.T + n * np.eye(n)
    s = [rng.standard_normal(n) for _ in range(3)]
    y = [H @ si for si in s]
    opt = LBFGS(history_size=5)
    opt.g = rng.standard_normal(n)
    opt.s, opt.y, opt.rho = list(s), list(y), [1.0 / (yi @ si) for si, yi in zip(s, y)]
    assert exercises.gradcheck.rel_error(opt.direction(), exercises.bfgs_direction(opt.g, s, y)) < 1e-10
