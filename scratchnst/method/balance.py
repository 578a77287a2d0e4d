"""How the style loss, and its pull on the image, split between the style layers.

    shares = style_shares(objective, x)        # {layer: LayerShare(loss, loss_share, grad_norm, grad_share, weight)}
    Objective(..., style_layer_weights="auto") # w_l chosen so every J_l is equal at the content image

Gatys' style loss is a sum over layers, ``J_style = sum_l J_l`` with
``J_l = w_l k_l sum((G_l - A_l)^2)``. How much each layer matters is not visible in
the weights w_l: the raw sums of squares of different layers differ by orders of
magnitude, and depend on the network's scale (on the bundled, unnormalised VGG19,
relu4_1 carries almost all of it at the paper's settings). Two measures say it:

- the loss share ``J_l / sum_k J_k``: what the number reported as "style" is made of;
- the gradient share ``||dJ_l/dx|| / sum_k ||dJ_k/dx||``: how hard each layer pulls
  on the image. This is what the optimiser feels. Each ``dJ_l/dx`` is one backward
  pass with only that layer's cost gradient; the layers' gradients are not
  orthogonal, so their norms do not add up to the norm of the sum, and these shares
  compare the layers' pulls with each other, not their parts of the total gradient.

``style_layer_weights="auto"`` equalises the first measure where a run starts from
the content: ``w_l = S (1 / J0_l) / sum_k (1 / J0_k)``, with ``J0_l = J_l / w_l`` the
layer's unweighted cost at the content image and S the sum of the preset's own
weights (1 for ``gatys``, whose w_l = 1/L), so that beta keeps its meaning. After it
every ``J_l`` at the content image equals ``S / sum_k (1 / J0_k)``. It is measured at
the content image (of each coarse-to-fine level), whatever ``--init`` is, so the
weights do not depend on the seed and a resumed run gets the same ones.
"""

import copy
from typing import NamedTuple

import numpy as np

from scratchnst.backend import to_numpy
from scratchnst.errors import ScratchNSTError

AUTO = "auto"


class LayerShare(NamedTuple):
    """One style layer's part of the style loss and of its gradient, at one image."""

    loss: float  # J_l: w_l and the preset's k_l included, before beta
    loss_share: float  # J_l / sum_k J_k
    grad_norm: float  # ||dJ_l/dx||, in the network's input space
    grad_share: float  # ||dJ_l/dx|| / sum_k ||dJ_k/dx||
    weight: float  # w_l


def _alone(objective, layer):
    """A shallow copy of ``objective`` whose loss is the style term of ``layer`` alone (beta 1).

    The copy shares the network and the targets; only the constants differ, so the
    original's ``terms`` and ``n_evals`` are left as they were.
    """
    one = copy.copy(objective)
    one.alpha, one.beta, one.tv_weight = 0.0, 1.0, 0.0
    one.k_style = {n: (k if n == layer else 0.0) for n, k in objective.k_style.items()}
    return one


def style_shares(objective, x):
    """Each style layer's share of the style loss and of the gradient's norm at image ``x``.

    Parameters
    ----------
    objective : :class:`scratchnst.method.objective.Objective`
    x : ndarray (3, H, W), the image in the network's input space (e.g. the content)

    Returns
    -------
    dict layer -> :class:`LayerShare`, in ``objective.style_layers``' order. One
    forward and one backward pass per style layer.
    """
    loss, norm = {}, {}
    for n in objective.style_layers:
        one = _alone(objective, n)
        _, g = one.value_and_grad(x)  # d J_l / dx, (3, H, W)
        loss[n] = one.terms["layers"]["style"][n]
        norm[n] = float(np.linalg.norm(to_numpy(g)))
    total_loss, total_norm = sum(loss.values()), sum(norm.values())
    return {n: LayerShare(loss[n], loss[n] / total_loss if total_loss else float("nan"), norm[n],
                          norm[n] / total_norm if total_norm else float("nan"), objective.style_layer_weights[n])
            for n in objective.style_layers}


def format_shares(shares):
    """One line per layer: weight, loss and its share, gradient norm and its share."""
    lines = [f"  {'layer':8s} {'w_l':>10s} {'J_l':>11s} {'of style':>8s} {'|dJ_l/dx|':>11s} {'of pull':>8s}"]
    for n, s in shares.items():
        lines.append(f"  {n:8s} {s.weight:10.4g} {s.loss:11.4e} {s.loss_share:8.1%} {s.grad_norm:11.4e} "
                     f"{s.grad_share:8.1%}")
    return "\n".join(lines)


def equalize_style_layers(objective, image):
    """Set ``objective``'s style layer weights so that every J_l is equal at ``image`` (see the module's docstring).

    Changes ``objective.style_layer_weights`` and ``objective.k_style`` in place; the sum
    of the weights stays what it was (the preset's). Returns the new weights.
    """
    probe = copy.copy(objective)
    probe.value(image)
    J = probe.terms["layers"]["style"]
    w = objective.style_layer_weights
    J0 = {n: J[n] / w[n] if w[n] > 0 else float("nan") for n in objective.style_layers}
    bad = [n for n, v in J0.items() if not (np.isfinite(v) and v > 0)]
    if bad:
        raise ScratchNSTError(f"auto style layer weights: the style cost of {bad[0]} is {J[bad[0]]:g} at the "
                              "content image, so no weight can equalise it; give the weights instead")
    S = sum(w.values())
    inverse = {n: 1.0 / J0[n] for n in objective.style_layers}
    new = {n: S * inverse[n] / sum(inverse.values()) for n in objective.style_layers}
    objective.k_style = {n: objective.k_style[n] / w[n] * new[n] for n in objective.style_layers}
    objective.style_layer_weights = new
    return new


def keep_weights(objective, image):
    """The weights given stay as they are."""
    return objective.style_layer_weights


def split_auto(style_layer_weights):
    """``(weights for the Objective to check, what to do once its targets are known)``.

    ``"auto"`` -> ``(None, equalize_style_layers)``: start from the preset's weights, then
    equalise; None or a sequence -> ``(it, keep_weights)``; any other string is a one-line error.
    """
    if isinstance(style_layer_weights, str):
        if style_layer_weights != AUTO:
            raise ScratchNSTError(f"style_layer_weights must be numbers or {AUTO!r}, got {style_layer_weights!r}")
        return None, equalize_style_layers
    return style_layer_weights, keep_weights
