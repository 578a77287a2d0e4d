"""The constants in front of the costs, as published implementations choose them.

Gatys et al. (2016) put 1/2 in front of the content cost and 1/(4 N_l^2 M_l^2) in
front of each layer's style cost; the course's programming assignment, Johnson's
neural-style and the PyTorch tutorial each chose differently. :data:`PRESETS` lists
four of them (``gatys``, ``course``, ``jcjohnson``, ``pytorch-tutorial``) as
functions of (N_l, M_l); :func:`explain` prints the effective constant each one
puts in front of every layer's sum of squares, so they can be compared.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from scratchnst.backend import to_float
from scratchnst.errors import ScratchNSTError

# ------------------------------------------------------------- normalisation presets


@dataclass(frozen=True)
class Normalization:
    """One published choice of the constants in front of the costs.

    Attributes
    ----------
    name : str
    content_k : callable (N_l, M_l) -> float
        k of :func:`content_cost` for a content layer.
    style_k : callable (N_l, M_l) -> float
        k of :func:`style_layer_cost` (on unnormalised Grams ``F F^T``), before the
        layer weight w_l.
    layer_weight : callable (number of style layers) -> float
        Default w_l.
    alpha, beta : float
        Default content and style weights.
    formula : str
        The costs as the source writes them.
    beta_other_network : float or None
        The default beta on the other network (``--no-normalized`` for ``gatys``: the
        paper's 1e3, as before the normalised network), None for the same beta.
    normalized : bool
        The network the constants were chosen for: True for Gatys et al.'s VGG19
        normalised so every channel's mean activation is 1 (``load_vgg19(normalized=True)``,
        ``weights/README.md``), False for the weights as trained. alpha and beta only
        mean what the source meant on that network.
    """

    name: str
    content_k: Callable[[int, int], float]
    style_k: Callable[[int, int], float]
    layer_weight: Callable[[int], float]
    alpha: float
    beta: float
    formula: str
    normalized: bool = False
    beta_other_network: float | None = None  # default beta on the network ``normalized`` does not name


# All four compare Grams of images of the same size, where they agree on what
# "the target Gram" is. When a style image has another size, scratchnst compares
# Grams per position (G / M_l) for every preset: the target is
# A = G_style * M_gen / M_style (see objective.py). That is exactly what
# jcjohnson's and the tutorial's G / (N M) normalisation does, and what the raw-Gram
# formulas of Gatys and the course mean when the sizes agree.
PRESETS = {
    "gatys": Normalization(
        name="gatys",
        content_k=lambda N, M: 0.5,
        style_k=lambda N, M: 1.0 / (4.0 * N**2 * M**2),
        layer_weight=lambda L: 1.0 / L,
        alpha=1.0,
        # The paper's alpha/beta = 1e-3 leaves the photo almost untouched on our normalised
        # network (its content term grows with the pixel count, its style term does not):
        # 5e7 was chosen by looking at 128 to 512 px (benchmarks/README.md, "Gatys' normalised network").
        beta=5e7,
        formula="Gatys et al. 2016 eq. 1, 4, 5: 1/2 sum((F-P)^2); "
        "sum_l w_l/(4 N_l^2 M_l^2) sum((G_l-A_l)^2), w_l = 1/L; alpha = 1, beta = 5e7 "
        "(the paper's 1e-3 ratio barely stylises here); normalised VGG19",
        normalized=True,  # "We normalized the network by scaling the weights such that the mean activation ..."
        beta_other_network=1e3,  # the paper's ratio on the weights as trained (relu4_1 then dominates the style)
    ),
    "course": Normalization(
        name="course",
        content_k=lambda N, M: 1.0 / (4.0 * N * M),
        style_k=lambda N, M: 1.0 / (4.0 * N**2 * M**2),
        layer_weight=lambda L: 0.2,
        alpha=10.0,
        beta=40.0,
        formula="Deep Learning Specialization (course 4, week 4): "
        "1/(4 n_H n_W n_C) sum((a_C-a_G)^2); "
        "sum_l 0.2/(4 n_C^2 (n_H n_W)^2) sum((G_S-G_G)^2); alpha=10, beta=40",
    ),
    "jcjohnson": Normalization(
        name="jcjohnson",
        # MSECriterion averages over the N M entries of the content activation.
        content_k=lambda N, M: 1.0 / (N * M),
        # G / (N M) compared with MSECriterion over N^2 entries:
        # 1/N^2 sum((G - A)^2 / (N M)^2).
        style_k=lambda N, M: 1.0 / (N**2 * (N * M) ** 2),
        layer_weight=lambda L: 1.0,
        alpha=5.0,
        beta=1e2,
        formula="jcjohnson/neural-style: content_weight * MSE(F, P); "
        "style_weight * sum_l MSE(G_l/(C H W), A_l/(C H W)); 5 and 100",
    ),
    "pytorch-tutorial": Normalization(
        name="pytorch-tutorial",
        content_k=lambda N, M: 1.0 / (N * M),  # F.mse_loss, batch 1
        style_k=lambda N, M: 1.0 / (N**2 * (N * M) ** 2),  # gram / (a b c d), mse_loss
        layer_weight=lambda L: 1.0,
        alpha=1.0,
        beta=1e6,
        formula="PyTorch neural style tutorial: content_weight * mse_loss(F, P); "
        "style_weight * sum_l mse_loss(G_l/(a b c d), A_l/(a b c d)); 1 and 1e6",
    ),
}


def get_preset(name):
    """The :class:`Normalization` called ``name``, or a one-line error listing the choices."""
    if isinstance(name, Normalization):
        return name
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ScratchNSTError(
            f"unknown normalization {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None


def explain(preset, layer_shapes, *, content_layers=("relu4_2",),
            style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
            style_layer_weights=None, alpha=None, beta=None, show=True):
    """The constant each preset puts in front of every layer's raw sum of squares.

    The total loss is ``sum_c K_c sum((F_c - P_c)^2) + sum_l K_l sum((G_l - A_l)^2)``
    with ``K_c = alpha * content_k`` and ``K_l = beta * w_l * style_k`` on
    unnormalised Grams; these K are what actually differ between presets.

    Parameters
    ----------
    preset : str or Normalization
    layer_shapes : dict name -> (C, h, w)
        Activation shapes, e.g. ``{n: a.shape for n, a in net.forward(x, names).items()}``.
    content_layers, style_layers : sequences of names
    style_layer_weights : sequence of floats or None (the preset's default)
    alpha, beta : float or None (the preset's default)
    show : bool
        Print a table.

    Returns
    -------
    dict ``{"content": {name: K_c}, "style": {name: K_l}}`` of Python floats.
    """
    p = get_preset(preset)
    alpha = p.alpha if alpha is None else alpha
    beta = p.beta if beta is None else beta
    L = len(style_layers)
    weights = [p.layer_weight(L)] * L if style_layer_weights is None else list(style_layer_weights)
    out = {"content": {}, "style": {}}
    for name in content_layers:
        C, h, w = layer_shapes[name]
        out["content"][name] = alpha * p.content_k(C, h * w)
    for name, w_l in zip(style_layers, weights):
        C, h, w = layer_shapes[name]
        out["style"][name] = beta * w_l * p.style_k(C, h * w)
    if show:
        print(f"{p.name}: {p.formula}")
        print(f"  alpha = {alpha:g}, beta = {beta:g}")
        for kind in ("content", "style"):
            for name, K in out[kind].items():
                C, h, w = layer_shapes[name]
                what = "sum((F-P)^2)" if kind == "content" else "sum((G-A)^2)"
                print(f"  {kind:7s} {name:8s} ({C:4d}, {h:4d}, {w:4d})  {K:.4e} * {what}")
    return out


def check_weight(value, what):
    """A finite, non-negative float, or a one-line :class:`ScratchNSTError`."""
    try:
        value = to_float(value)
    except (TypeError, ValueError):
        raise ScratchNSTError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ScratchNSTError(f"{what} must be finite and >= 0, got {value!r}")
    return value
