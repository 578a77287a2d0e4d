"""The strong Wolfe line search that L-BFGS uses (Nocedal and Wright, algorithms 3.5 and 3.6).

It works on phi(t) = L(x + t d) along a descent direction d, through Python floats
only: :class:`scratchnst.method.lbfgs.LBFGS` hands it phi and reads back the
accepted point.
"""

import math
from typing import NamedTuple


def cubic_min(t1, f1, g1, t2, f2, g2, lo, hi):
    """Minimiser of the cubic through (t1, f1, slope g1) and (t2, f2, slope g2), kept in [lo, hi].

    Nocedal and Wright (2006) eq. 3.59. Falls back to the midpoint of [lo, hi]
    when the cubic has no minimiser or a value is not finite (an overflowed trial).
    """
    if all(map(math.isfinite, (f1, g1, f2, g2))) and t1 != t2:
        d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
        disc = d1 * d1 - g1 * g2
        if disc >= 0:
            d2 = math.copysign(math.sqrt(disc), t2 - t1)
            denom = g2 - g1 + 2 * d2
            if denom != 0:
                t = t2 - (t2 - t1) * (g2 + d2 - d1) / denom
                if math.isfinite(t):
                    return min(max(t, lo), hi)
    return 0.5 * (lo + hi)


_cubic_min = cubic_min  # the name it had when it was private


class _Point(NamedTuple):
    t: float  # step length
    f: float  # phi(t) = L(x + t d)
    g: object  # gradient array at x + t d (None at t = 0: the caller has it)
    gtd: float  # phi'(t) = <g, d>


def strong_wolfe(phi, f0, gtd0, t, c1=1e-4, c2=0.9, max_evals=25):
    """A step length t satisfying the strong Wolfe conditions along a descent direction.

    Parameters
    ----------
    phi : callable t -> (f, g, gtd)
        Loss, gradient and directional derivative ``<g, d>`` at ``x + t d``.
    f0, gtd0 : float
        ``phi(0)`` and ``phi'(0) < 0``.
    t : float
        First trial step.
    c1, c2 : float
        Sufficient decrease ``phi(t) <= f0 + c1 t gtd0`` and curvature
        ``|phi'(t)| <= c2 |gtd0|``; 1e-4 and 0.9 are the usual quasi-Newton choices.
    max_evals : int

    Returns
    -------
    point : _Point
        The accepted point; when the evaluations run out, the lowest point found
        that satisfies sufficient decrease, or t = 0 (no progress) if there is none.
    n_evals : int
    ok : bool
        Whether both conditions hold at ``point``.

    Notes
    -----
    Nocedal and Wright (2006), algorithms 3.5 (bracketing) and 3.6 (zoom), with
    cubic interpolation for every new trial, as in scipy, minFunc and PyTorch.
    Bracketing extrapolates with the cubic through the last two points, kept
    within [t + 0.01 (t - t_prev), 10 t]; zoom keeps each trial at least 10% of the
    interval away from its ends so that the interval shrinks geometrically. A
    non-finite loss (a step so long that it overflowed) counts as too long.
    Strong (rather than plain Armijo backtracking) matters for L-BFGS: the
    curvature condition guarantees s'y > 0 for the new pair, and accepting
    long steps lets the first iteration find the problem's scale.
    """
    lo, hi, n, ok = _bracket(phi, f0, gtd0, t, c1, c2, max_evals)
    if hi is None:  # accepted while bracketing (ok), or the evaluations ran out
        return lo, n, ok
    return _zoom(phi, f0, gtd0, lo, hi, c1, c2, max_evals, n)


def _bracket(phi, f0, gtd0, t, c1, c2, max_evals):
    """Algorithm 3.5: grow t until an interval must hold an acceptable step.

    Returns ``(lo, hi, n_evals, ok)``: an interval [lo, hi] for :func:`_zoom` (``lo``
    has the lower loss, ``ok`` False); or ``hi`` None and ``lo`` the answer, either a
    trial that satisfies both conditions (``ok`` True) or, when the evaluations ran
    out while the loss was still decreasing, the last trial (``ok`` False).
    """
    prev = _Point(0.0, f0, None, gtd0)
    n = 0
    while n < max_evals:
        f, g, gtd = phi(t)
        n += 1
        cur = _Point(t, f, g, gtd)
        if not math.isfinite(f) or f > f0 + c1 * t * gtd0 or (n > 1 and f >= prev.f):
            return prev, cur, n, False
        if abs(gtd) <= -c2 * gtd0:
            return cur, None, n, True
        if gtd >= 0:
            return cur, prev, n, False
        t_next = cubic_min(prev.t, prev.f, prev.gtd, t, f, gtd, t + 0.01 * (t - prev.t), 10 * t)
        prev, t = cur, t_next
    return prev, None, n, False  # still extrapolating: the last point decreased the loss


def _zoom(phi, f0, gtd0, lo, hi, c1, c2, max_evals, n):
    """Algorithm 3.6: shrink [lo, hi] around an acceptable step; returns ``(point, n_evals, ok)``."""
    while n < max_evals:
        a, b = sorted((lo.t, hi.t))
        width = b - a
        if width <= 1e-12 * max(b, 1e-300):  # the interval has collapsed to rounding
            break
        t = cubic_min(lo.t, lo.f, lo.gtd, hi.t, hi.f, hi.gtd, a + 0.1 * width, b - 0.1 * width)
        f, g, gtd = phi(t)
        n += 1
        cur = _Point(t, f, g, gtd)
        if not math.isfinite(f) or f > f0 + c1 * t * gtd0 or f >= lo.f:
            hi = cur
        else:
            if abs(gtd) <= -c2 * gtd0:
                return cur, n, True
            if gtd * (hi.t - lo.t) >= 0:
                hi = lo
            lo = cur
    return lo, n, False
