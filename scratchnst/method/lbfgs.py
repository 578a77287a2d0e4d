"""L-BFGS (Nocedal 1980; Liu and Nocedal 1989) on the generated image, in array ops.

The two-loop recursion turns the last ``history_size`` steps and gradient changes
into a quasi-Newton direction; :func:`scratchnst.method.line_search.strong_wolfe`
picks the step along it. Arrays stay on their device; scalars cross to the host
only where a decision needs them.
"""

import math

import numpy as np

from scratchnst.backend import array_module, to_float, to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.method.line_search import strong_wolfe
from scratchnst.network.fast.threads import blas_held


def dot(a, b):
    """<a, b> over all entries, as a 0-d array on a's device (no synchronisation)."""
    return a.ravel() @ b.ravel()  # (n,) x (n,) -> ()


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

    Host reads (each a GPU synchronisation): an iteration makes
    ``SYNCS_PER_ITERATION`` of its own (g'd, the new pair's three dot products in one
    transfer, max|g|; the very first iteration one more, for |g|) and
    ``SYNCS_PER_EVALUATION`` per line-search trial (its slope g'd), besides the
    objective's own. Neither grows with the image or the number of layers.
    """

    SYNCS_PER_ITERATION = 3
    SYNCS_PER_EVALUATION = 1

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
            a[i] = self.rho[i] * dot(self.s[i], q)
            q -= a[i] * self.y[i]
        gamma = dot(self.s[-1], self.y[-1]) / dot(self.y[-1], self.y[-1])
        r = gamma * q  # H_0 q
        for i in range(len(self.s)):  # oldest to newest
            b = self.rho[i] * dot(self.y[i], r)
            r += (a[i] - b) * self.s[i]
        return -r

    def step(self, fun):
        """One iteration: direction, line search, history update. Returns the loss."""
        if self.converged:
            return self.f
        with blas_held(array_module(self.x)):  # its dot products on one BLAS thread (threads.blas_held)
            return self._step(fun)

    def _step(self, fun):
        for _attempt in range(2):  # the quasi-Newton direction, then -g
            d = self.direction()
            gtd = to_float(dot(self.g, d))
            if not gtd < 0:  # rounding in the history, or a zero gradient
                self._clear_history()
                continue
            if self.s:
                t = 1.0
            else:
                t = self.first_step / math.sqrt(to_float(dot(self.g, self.g)))

            def phi(t, d=d):
                f, g = fun(self.x + t * d)
                return to_float(f), g, to_float(dot(g, d))

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
        xp = array_module(s)
        sy, ss, yy = (float(v) for v in to_numpy(xp.stack([dot(s, y), dot(s, s), dot(y, y)])))  # one transfer
        # Keep the pair only if s'y is clearly positive relative to |s| |y| (the cosine
        # of the angle between them above machine epsilon). The test must be scale-free:
        # comparing s'y with eps * y'y mixes units (x*g against g*g) and, with style
        # transfer's gradients of ~1e9 and steps of ~1e-9, rejected every pair.
        norm_sy = math.sqrt(ss * yy)
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
        to the host. ``rho`` stays a list of Python floats, as the iteration keeps it:
        1 / s'y is decided on the host, and a list of floats is stored exactly (and
        ``cupy.stack`` would refuse it).
        """
        xp = array_module(self.x)
        stack = (lambda v: xp.stack(v)) if self.s else (lambda v: xp.zeros((0,) + self.x.shape, self.x.dtype))
        return {
            "x": self.x, "f": self.f, "g": self.g,
            "s": stack(self.s), "y": stack(self.y),
            "rho": list(self.rho),
            "n_iter": self.n_iter, "n_evals": self.n_evals,
            "converged": self.converged, "message": self.message,
        }

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict` (arrays already on the wanted device)."""
        self.x, self.f, self.g = state["x"], float(state["f"]), state["g"]
        self.s = [si.copy() for si in state["s"]]
        self.y = [yi.copy() for yi in state["y"]]
        self.rho = [float(ri) for ri in state["rho"]]  # a list, or an array from an older checkpoint
        if not len(self.s) == len(self.y) == len(self.rho) <= self.history_size:
            raise ScratchNSTError(
                f"L-BFGS state has {len(self.s)} s, {len(self.y)} y, {len(self.rho)} rho "
                f"for history_size {self.history_size}"
            )
        self.n_iter, self.n_evals = int(state["n_iter"]), int(state["n_evals"])
        self.converged, self.message = bool(state["converged"]), str(state["message"])
