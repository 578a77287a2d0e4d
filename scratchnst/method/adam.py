"""Adam (Kingma and Ba 2015) on the generated image, for NumPy or CuPy arrays.

:class:`Adam` is the update rule; :class:`AdamLoop` wraps it in the optimiser
protocol that :func:`scratchnst.method.optimize.minimize` drives (``start``,
``step``, ``state_dict``, ``load_state_dict``).
"""

from scratchnst.backend import array_module, to_float
from scratchnst.errors import ScratchNSTError


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
