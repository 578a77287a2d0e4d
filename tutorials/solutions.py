"""Answers to the "write it yourself" exercises of tutorials 02 to 05.

Try them first. Each function meets the contract in ``tutorials/exercises.py``, whose
``check_exercise(name, fn)`` the notebooks call and ``tests/test_exercises.py`` runs on
these. The package's own versions, for comparison: ``scratchnst.network.layers.relu_backward``,
``scratchnst.method.costs.content_cost``, ``gram_backward`` and ``style_layer_cost``,
``scratchnst.method.lbfgs.LBFGS.direction``.
"""

import numpy as np


def relu_backward(dout, x):
    """dL/dx of ``relu(x) = max(x, 0)``: ``dout * [x > 0]``, 0 at the kink x = 0 (tutorial 02, section 6)."""
    return dout * (x > 0)


def content_cost(a, p, k):
    """``J = k sum((a - p)^2)`` and ``dJ/da = 2 k (a - p)`` (tutorial 03, section 1)."""
    diff = a - p
    return k * np.sum(diff * diff), 2 * k * diff


def gram_backward(dG, F):
    """dL/dF through ``G = F F^T``: ``(dG + dG^T) F`` (tutorial 04, section 3).

    ``G_ij = sum_q F_iq F_jq``, so ``dG_ij/dF_pq = [i = p] F_jq + [j = p] F_iq`` and
    ``dL/dF_pq = sum_j dG_pj F_jq + sum_i dG_ip F_iq``.
    """
    return (dG + dG.T) @ F  # (N, N) x (N, M) -> (N, M)


def style_layer_cost(a, A, k):
    """``J = k sum((G - A)^2)`` with ``G = F F^T``, ``F = a.reshape(N, h w)``, and ``dJ/da`` shaped like a.

    ``dJ/dG = 2 k (G - A)``, symmetric, so through the Gram ``dJ/dF = 2 dG F = 4 k (G - A) F``.
    """
    N = a.shape[0]
    F = a.reshape(N, -1)  # (N, M)
    R = F @ F.T - A  # (N, N)
    return k * np.sum(R * R), (4 * k * (R @ F)).reshape(a.shape)


def two_loop(g, s, y):
    """The L-BFGS direction ``-H g`` by the two-loop recursion (Nocedal and Wright, algorithm 7.4).

    ``s`` and ``y`` list the pairs oldest first; ``H_0 = gamma I`` with
    ``gamma = s'y / y'y`` of the newest pair.
    """
    if not s:
        return -g
    rho = [1.0 / (yi @ si) for si, yi in zip(s, y)]
    q = g.copy()
    alpha = [0.0] * len(s)
    for i in reversed(range(len(s))):  # newest to oldest
        alpha[i] = rho[i] * (s[i] @ q)
        q = q - alpha[i] * y[i]
    r = (s[-1] @ y[-1]) / (y[-1] @ y[-1]) * q  # H_0 q
    for i in range(len(s)):  # oldest to newest
        beta = rho[i] * (y[i] @ r)
        r = r + (alpha[i] - beta) * s[i]
    return -r
