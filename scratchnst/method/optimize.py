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

from typing import NamedTuple

from scratchnst.errors import ScratchNSTError
from scratchnst.method.adam import AdamLoop
from scratchnst.method.lbfgs import LBFGS


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
