"""Optimisers for the generated image: Adam and L-BFGS, for NumPy or CuPy arrays.

    res = minimize(obj.value_and_grad, x0, method="lbfgs", max_iter=500)
    res.x, res.f, res.n_iter, res.n_evals

Everything is array arithmetic on the module of ``x`` (``xp = array_module(x)``);
scalars cross to the host (``float``, a GPU synchronisation) only where a decision
needs them: the line search's tests and the stopping rules.

**Checkpoints.** Each optimiser is a small state machine: ``start(fun, x0)``
evaluates the first point, ``step(fun)`` does one iteration, ``state_dict()``
returns everything the next iteration depends on (the iterate, its loss and
gradient, the curvature history, counters) as arrays and Python numbers, and
``load_state_dict`` puts it back. Nothing else is kept, so a run stopped after k
iterations and resumed from its state continues exactly as the uninterrupted
run would (bit for bit on NumPy: same operations on the same numbers).

**Image range.** The optimisers treat x as unconstrained. Nothing is clamped
inside an iteration: a clamp inside the line search would make phi(t) = L(x + t d)
non-smooth and make the stored step s differ from the step actually taken,
corrupting the curvature pairs. Values slightly outside the pixel range are
valid network inputs and the costs themselves keep x near natural image
statistics; the caller clips only when it writes an image (``net.deprocess``).
Where a hard range matters, use a smooth penalty in the objective or a change of
variable (e.g. ``x = m + r * tanh(u)``) so the problem stays smooth.
"""

import math
from typing import NamedTuple

import numpy as np

from .backend import array_module, to_float
from .errors import ScratchNSTError


def _dot(a, b):
    """<a, b> over all entries, as a 0-d array on a's device (no synchronisation)."""
    return a.ravel() @ b.ravel()  # (n,) x (n,) -> ()


# ------------------------------------------------------------------------- Adam


class Adam:
    """Adam (Kingma and Ba 2015) on one array.

    Parameters
    ----------
    lr : float
        Step size, in the units of x (pixel values for an image in VGG input space:
        1 to 10 is typical for style transfer).
    betas : (float, float)
        Decay rates of the first and second moment estimates.
    eps : float
        Added to sqrt(v) so that coordinates with tiny gradients take bounded steps.

    Notes
    -----
    With g_t the gradient at step t:

        m_t = b1 m_{t-1} + (1 - b1) g_t            v_t = b2 v_{t-1} + (1 - b2) g_t^2
        x_t = x_{t-1} - lr * (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps)

    The divisions by 1 - b^t undo the bias of the zero-initialised moments.
    """

    def __init__(self, lr=1.0, betas=(0.9, 0.999), eps=1e-8):
        if not (lr > 0 and 0 <= betas[0] < 1 and 0 <= betas[1] < 1 and eps >= 0):
            raise ScratchNSTError(f"Adam needs lr > 0, 0 <= betas < 1, eps >= 0; got {lr}, {betas}, {eps}")
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.m = self.v = None
        self.t = 0

    def step(self, x, grad):
        """One update; returns the new x (x itself is not modified)."""
        xp = array_module(x)
        b1, b2 = self.betas
        if self.m is None:
            self.m, self.v = xp.zeros_like(x), xp.zeros_like(x)
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return x - self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)

    def state_dict(self):
        """``{"m", "v"}`` arrays (None before the first step) and the step count ``t``."""
        return {"m": self.m, "v": self.v, "t": self.t}

    def load_state_dict(self, state):
        self.m, self.v, self.t = state["m"], state["v"], int(state["t"])


class AdamLoop:
    """Adam driven like :class:`LBFGS`: ``start``, ``step(fun)``, ``state_dict``.

    Each iteration evaluates ``fun(x)`` once, so ``n_evals = n_iter + 1``.
    """

    def __init__(self, lr=1.0, betas=(0.9, 0.999), eps=1e-8):
        self.adam = Adam(lr, betas, eps)
        self.x = self.f = self.g = None
        self.n_iter = self.n_evals = 0
        self.converged, self.message = False, ""

    def start(self, fun, x0):
        self.x = x0.copy()
        f, self.g = fun(self.x)
        self.f = to_float(f)
        self.n_evals += 1
        return self.f

    def step(self, fun):
        self.x = self.adam.step(self.x, self.g)
        f, self.g = fun(self.x)
        self.f = to_float(f)
        self.n_iter += 1
        self.n_evals += 1
        return self.f

    def state_dict(self):
        adam = self.adam.state_dict()
        return {"x": self.x, "f": self.f, "g": self.g, "m": adam["m"], "v": adam["v"], "t": adam["t"],
                "n_iter": self.n_iter, "n_evals": self.n_evals}

    def load_state_dict(self, state):
        self.x, self.f, self.g = state["x"], float(state["f"]), state["g"]
        self.adam.load_state_dict(state)
        self.n_iter, self.n_evals = int(state["n_iter"]), int(state["n_evals"])


# ------------------------------------------------------------ strong Wolfe line search


def _cubic_min(t1, f1, g1, t2, f2, g2, lo, hi):
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
    prev = _Point(0.0, f0, None, gtd0)
    n = 0
    lo = hi = None
    while n < max_evals:
        f, g, gtd = phi(t)
        n += 1
        cur = _Point(t, f, g, gtd)
        if not math.isfinite(f) or f > f0 + c1 * t * gtd0 or (n > 1 and f >= prev.f):
            lo, hi = prev, cur
            break
        if abs(gtd) <= -c2 * gtd0:
            return cur, n, True
        if gtd >= 0:
            lo, hi = cur, prev
            break
        t_next = _cubic_min(prev.t, prev.f, prev.gtd, t, f, gtd, t + 0.01 * (t - prev.t), 10 * t)
        prev, t = cur, t_next
    else:
        return prev, n, False  # still extrapolating: the last point decreased the loss

    while n < max_evals:
        a, b = sorted((lo.t, hi.t))
        width = b - a
        if width <= 1e-12 * max(b, 1e-300):  # the interval has collapsed to rounding
            break
        t = _cubic_min(lo.t, lo.f, lo.gtd, hi.t, hi.f, hi.gtd, a + 0.1 * width, b - 0.1 * width)
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


# ------------------------------------------------------------------------- L-BFGS


class LBFGS:
    """Limited-memory BFGS with a strong Wolfe line search.

    Parameters
    ----------
    history_size : int
        Curvature pairs (s, y) kept. Default 10: Nocedal and Wright report 3 to 20
        enough in practice, scipy's L-BFGS-B uses 10, and each pair costs two
        image-sized arrays (a 1024 x 1024 image in float32: 24 MiB per pair, so
        PyTorch's and neural-style's 100 would be 2.4 GiB on the GPU). Raise it
        when memory allows; the two-loop costs O(history_size * n), small next to
        one VGG pass.
    c1, c2, max_ls : float, float, int
        Wolfe constants and the evaluation budget of one line search.
    tol_grad : float
        Stop when ``max|g| <= tol_grad`` (scipy's ``gtol``).
    tol_change : float
        Stop when ``(f_prev - f) / max(|f_prev|, |f|, 1) <= tol_change``
        (scipy's ``ftol``); 0 disables it (style transfer runs a fixed number of
        iterations).
    first_step : float
        Length of the first trial step of the first iteration, ``t = first_step / |g|``
        (scipy's choice with 1). Later iterations try t = 1: with the gamma scaling
        the quasi-Newton step has the right scale.

    Attributes
    ----------
    x, f, g : the current iterate, its loss (float) and gradient
    n_iter, n_evals : iterations done and loss evaluations made (line search included)
    converged : bool, message : str

    Notes
    -----
    Direction: ``d = -H g`` by the two-loop recursion (Nocedal and Wright
    algorithm 7.4) over the stored pairs ``s_i = x_{i+1} - x_i``,
    ``y_i = g_{i+1} - g_i``, ``rho_i = 1 / s_i'y_i``, starting from
    ``H_0 = gamma I`` with ``gamma = s'y / y'y`` of the newest pair: the inverse
    curvature along the last step, which makes t = 1 a well-scaled first trial.

    A pair is stored only when ``s'y > eps * |s| |y|`` (eps: the dtype's machine
    epsilon; a cosine test, so it does not depend on the scale of x or f). BFGS keeps
    H positive definite only if every s'y > 0; the strong Wolfe step guarantees
    it in exact arithmetic, so this only drops pairs spoiled by rounding or by a
    failed line search, whose rho = 1/s'y would be huge or negative.

    If the direction is not a descent direction or its line search makes no
    progress, the history is cleared and the step retried along -g; the run stops
    (``converged``, with a message) only if that fails too.
    """

    def __init__(self, history_size=10, *, c1=1e-4, c2=0.9, max_ls=25, tol_grad=1e-5,
                 tol_change=0.0, first_step=1.0):
        if int(history_size) < 1:
            raise ScratchNSTError(f"history_size must be >= 1, got {history_size}")
        if not 0 < c1 < c2 < 1:
            raise ScratchNSTError(f"line search needs 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
        self.history_size = int(history_size)
        self.c1, self.c2, self.max_ls = float(c1), float(c2), int(max_ls)
        self.tol_grad, self.tol_change, self.first_step = float(tol_grad), float(tol_change), float(first_step)
        self.x = self.f = self.g = None
        self.s, self.y, self.rho = [], [], []
        self.n_iter = self.n_evals = 0
        self.converged, self.message = False, ""

    # ---------------------------------------------------------------- iteration
    def start(self, fun, x0):
        """Evaluate ``fun`` at x0 (one evaluation); returns the loss."""
        self.x = x0.copy()
        f, self.g = fun(self.x)
        self.f = to_float(f)
        self.n_evals += 1
        self._check_grad()
        return self.f

    def _check_grad(self):
        gmax = to_float(array_module(self.g).abs(self.g).max())
        if not math.isfinite(self.f) or not math.isfinite(gmax):
            raise ScratchNSTError(f"loss or gradient not finite at the current point (loss {self.f})")
        if gmax <= self.tol_grad:
            self.converged, self.message = True, f"gradient max|g| = {gmax:.3g} <= tol_grad"

    def direction(self):
        """``-H g`` by the two-loop recursion (Nocedal and Wright, algorithm 7.4)."""
        q = self.g.copy()
        if not self.s:
            return -q
        a = [None] * len(self.s)
        for i in reversed(range(len(self.s))):  # newest to oldest
            a[i] = self.rho[i] * _dot(self.s[i], q)
            q -= a[i] * self.y[i]
        gamma = _dot(self.s[-1], self.y[-1]) / _dot(self.y[-1], self.y[-1])
        r = gamma * q  # H_0 q
        for i in range(len(self.s)):  # oldest to newest
            b = self.rho[i] * _dot(self.y[i], r)
            r += (a[i] - b) * self.s[i]
        return -r

    def step(self, fun):
        """One iteration: direction, line search, history update. Returns the loss."""
        if self.converged:
            return self.f
        for _attempt in range(2):  # the quasi-Newton direction, then -g
            d = self.direction()
            gtd = to_float(_dot(self.g, d))
            if not gtd < 0:  # rounding in the history, or a zero gradient
                self._clear_history()
                continue
            if self.s:
                t = 1.0
            else:
                t = self.first_step / math.sqrt(to_float(_dot(self.g, self.g)))

            def phi(t, d=d):
                f, g = fun(self.x + t * d)
                return to_float(f), g, to_float(_dot(g, d))

            point, n, _ = strong_wolfe(phi, self.f, gtd, t, self.c1, self.c2, self.max_ls)
            self.n_evals += n
            if point.t > 0 and point.f < self.f:
                break
            if not self.s:  # already steepest descent
                self.converged, self.message = True, "line search made no progress along -g"
                return self.f
            self._clear_history()
        else:
            self.converged, self.message = True, "no descent direction"
            return self.f

        s = point.t * d
        y = point.g - self.g
        sy = to_float(_dot(s, y))
        # Keep the pair only if s'y is clearly positive relative to |s| |y| (the cosine
        # of the angle between them above machine epsilon). The test must be scale-free:
        # comparing s'y with eps * y'y mixes units (x*g against g*g) and, with style
        # transfer's gradients of ~1e9 and steps of ~1e-9, rejected every pair.
        norm_sy = math.sqrt(to_float(_dot(s, s)) * to_float(_dot(y, y)))
        if sy > np.finfo(self.x.dtype).eps * norm_sy:
            if len(self.s) == self.history_size:
                del self.s[0], self.y[0], self.rho[0]
            self.s.append(s)
            self.y.append(y)
            self.rho.append(1.0 / sy)
        f_prev = self.f
        self.x = self.x + s
        self.f, self.g = point.f, point.g
        self.n_iter += 1
        self._check_grad()
        if not self.converged and self.tol_change > 0:
            rel = (f_prev - self.f) / max(abs(f_prev), abs(self.f), 1.0)
            if rel <= self.tol_change:
                self.converged, self.message = True, f"relative reduction {rel:.3g} <= tol_change"
        return self.f

    def _clear_history(self):
        self.s, self.y, self.rho = [], [], []

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self):
        """Everything the next iteration depends on: arrays and Python numbers only.

        ``s`` and ``y`` are stacked to ``(k, *x.shape)`` (k <= history_size, maybe
        0) so that the dict can go straight into ``np.savez`` after moving arrays
        to the host.
        """
        xp = array_module(self.x)
        stack = (lambda v: xp.stack(v)) if self.s else (lambda v: xp.zeros((0,) + self.x.shape, self.x.dtype))
        return {
            "x": self.x, "f": self.f, "g": self.g,
            "s": stack(self.s), "y": stack(self.y),
            "rho": xp.stack(self.rho) if self.rho else xp.zeros(0, self.x.dtype),
            "n_iter": self.n_iter, "n_evals": self.n_evals,
            "converged": self.converged, "message": self.message,
        }

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` (arrays already on the wanted device)."""
        self.x, self.f, self.g = state["x"], float(state["f"]), state["g"]
        self.s = [si.copy() for si in state["s"]]
        self.y = [yi.copy() for yi in state["y"]]
        self.rho = [ri.copy() for ri in state["rho"]]
        if not len(self.s) == len(self.y) == len(self.rho) <= self.history_size:
            raise ScratchNSTError(
                f"L-BFGS state has {len(self.s)} s, {len(self.y)} y, {len(self.rho)} rho "
                f"for history_size {self.history_size}"
            )
        self.n_iter, self.n_evals = int(state["n_iter"]), int(state["n_evals"])
        self.converged, self.message = bool(state["converged"]), str(state["message"])


# ------------------------------------------------------------------------- driver


class Result(NamedTuple):
    x: object
    f: float
    n_iter: int
    n_evals: int
    converged: bool
    message: str
    optimizer: object  # for state_dict() after the run


METHODS = {"lbfgs": LBFGS, "adam": AdamLoop}


def minimize(fun, x0=None, *, method="lbfgs", max_iter=100, callback=None, state=None, **options):
    """Minimise ``fun`` from x0 (or from a saved ``state``).

    Parameters
    ----------
    fun : callable x -> (loss, grad)
        E.g. :meth:`scratchnst.Objective.value_and_grad`.
    x0 : ndarray or None
        Start; ignored when ``state`` is given.
    method : "lbfgs" or "adam"
    max_iter : int
        Total iterations, counting those done before a resumed ``state``.
    callback : callable optimizer -> bool or None
        Called after every iteration (``opt.n_iter``, ``opt.x``, ``opt.f``,
        ``opt.state_dict()`` for checkpoints); returning True stops the run.
    state : dict or None
        A ``state_dict()`` to resume from.
    **options
        Passed to :class:`LBFGS` or :class:`Adam` (via :class:`AdamLoop`).
    """
    if method not in METHODS:
        raise ScratchNSTError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    opt = METHODS[method](**options)
    if state is not None:
        opt.load_state_dict(state)
    elif x0 is None:
        raise ScratchNSTError("minimize needs x0 or a state to resume from")
    else:
        opt.start(fun, x0)
    while opt.n_iter < max_iter and not opt.converged:
        opt.step(fun)
        if callback is not None and callback(opt) is True:
            break
    message = opt.message or ("max_iter reached" if opt.n_iter >= max_iter else "stopped by callback")
    return Result(opt.x, opt.f, opt.n_iter, opt.n_evals, opt.converged, message, opt)
