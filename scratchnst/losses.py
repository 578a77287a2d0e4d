"""The costs of neural style transfer, each with its hand-derived gradient.

Gatys, Ecker and Bethge (2016), "Image Style Transfer Using Convolutional Neural
Networks", CVPR, section 2. For a layer l with N_l channels and M_l = h * w
positions, the activation a (N_l, h, w) is read as the matrix F = a.reshape(N_l, M_l):

    content:  k * sum((F - P)^2)                    P: the content image's F  (eq. 1)
    Gram:     G = F F^T                             (N_l, N_l), channel correlations (eq. 3)
    style:    k * sum((G - A)^2)                    A: the style image's Gram (eq. 4)
    TV:       sum of squared differences of neighbouring pixels (a smoothness prior)

Every cost here is a value-and-gradient function ``cost(...) -> (J, dJ)`` that runs
on NumPy or CuPy (the array module of its inputs), returns ``J`` as a 0-d array
(converting to a Python float would synchronise the GPU; the caller does it once)
and ``dJ`` shaped like the input.

The constant k is where published implementations differ. :data:`PRESETS` lists
four of them (``gatys``, ``course``, ``jcjohnson``, ``pytorch-tutorial``) as
functions of (N_l, M_l); :func:`explain` prints the effective constant each one
puts in front of every layer's sum of squares, so they can be compared.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from .backend import array_module, to_float
from .errors import ScratchNSTError

# --------------------------------------------------------------------- Gram matrix


def gram(F):
    """Gram (style) matrix ``G = F F^T`` of a feature matrix.

    Parameters
    ----------
    F : ndarray (N_l, M_l)
        Activations of one layer, one row per channel.

    Returns
    -------
    G : ndarray (N_l, N_l)
        ``G[i, j] = sum_k F[i, k] F[j, k]``: the (uncentred) correlation of channels
        i and j over all positions (Gatys et al. eq. 3).
    """
    return F @ F.T  # (N, M) x (M, N) -> (N, N)


def gram_backward(dG, F):
    """Gradient of a loss through ``G = F F^T``.

    Parameters
    ----------
    dG : ndarray (N_l, N_l)
        dL/dG.
    F : ndarray (N_l, M_l)
        The input of the forward pass.

    Returns
    -------
    dF : ndarray (N_l, M_l)
        ``dL/dF = (dG + dG^T) F``.

    Notes
    -----
    ``G_ij = sum_k F_ik F_jk``, so ``dG_ij / dF_pq = [i=p] F_jq + [j=p] F_iq`` and

        dL/dF_pq = sum_ij dG_ij (dG_ij/dF_pq) = sum_j dG_pj F_jq + sum_i dG_ip F_iq
                 = ((dG + dG^T) F)_pq.

    F appears twice in the product, hence both dG and its transpose. When dG is
    symmetric (it is for every cost here) this is ``2 dG F``; the general form
    costs the same and stays exact when rounding leaves dG slightly asymmetric.
    """
    return (dG + dG.T) @ F  # (N, N) x (N, M) -> (N, M)


# --------------------------------------------------------------------- the costs


def content_cost(a, p, k, grad=True):
    """Content cost ``J = k * sum((a - p)^2)`` and its gradient.

    Parameters
    ----------
    a : ndarray (C, h, w)
        Activations of the generated image at the content layer.
    p : ndarray (C, h, w)
        Activations of the content image at the same layer (the target).
    k : float
        Normalisation constant; ``1/2`` in Gatys et al. eq. 1, see :data:`PRESETS`.
    grad : bool
        False skips the gradient (returns ``None`` for it), for line searches.

    Returns
    -------
    J : 0-d ndarray
    da : ndarray (C, h, w) or None
        ``dJ/da = 2 k (a - p)``.

    Notes
    -----
    ``J = k sum_i (a_i - p_i)^2``, so ``dJ/da_i = 2 k (a_i - p_i)``; with
    Gatys' k = 1/2 this is his eq. 2 (before the ReLU mask, which the network's
    backward pass applies).
    """
    if a.shape != p.shape:
        raise ScratchNSTError(f"content_cost: activation {a.shape} and target {p.shape} differ")
    xp = array_module(a)
    diff = a - p  # (C, h, w)
    J = k * xp.sum(diff * diff)
    return J, (2 * k * diff if grad else None)


def style_layer_cost(a, A, k, grad=True):
    """Style cost of one layer ``J = k * sum((G - A)^2)``, ``G = gram(F)``, and its gradient.

    Parameters
    ----------
    a : ndarray (N_l, h, w)
        Activations of the generated image; ``F = a.reshape(N_l, M_l)``, M_l = h w.
    A : ndarray (N_l, N_l)
        Target Gram matrix, in the same (unnormalised) units as ``F F^T`` of an
        image of the generated image's size.
    k : float
        Normalisation constant; ``w_l / (4 N_l^2 M_l^2)`` in Gatys et al. eq. 4-5.
    grad : bool
        False skips the gradient.

    Returns
    -------
    J : 0-d ndarray
    da : ndarray (N_l, h, w) or None
        ``dJ/da = reshape((dG + dG^T) F)`` with ``dG = 2 k (G - A)``,
        i.e. ``4 k (G - A) F`` since G - A is symmetric.

    Notes
    -----
    ``dJ/dG = 2 k (G - A)``; through the Gram matrix (:func:`gram_backward`)
    ``dJ/dF = (dG + dG^T) F = 4 k (G - A) F``. With Gatys' k this is his eq. 6,
    ``1/(N_l^2 M_l^2) (F^T (G - A))^T`` times w_l.
    """
    N = a.shape[0]
    if A.shape != (N, N):
        raise ScratchNSTError(f"style_layer_cost: {N} channels but a target Gram of shape {A.shape}")
    xp = array_module(a)
    F = a.reshape(N, -1)  # (N_l, M_l)
    D = gram(F) - A  # (N_l, N_l)
    J = k * xp.sum(D * D)
    if not grad:
        return J, None
    dF = gram_backward(2 * k * D, F)  # (N_l, M_l)
    return J, dF.reshape(a.shape)


def style_cost(acts, targets, ks, grad=True):
    """Style cost over several layers ``J = sum_l k_l sum((G_l - A_l)^2)``.

    Parameters
    ----------
    acts : dict name -> ndarray (N_l, h, w)
    targets : dict name -> ndarray (N_l, N_l)
    ks : dict name -> float (the layer weight w_l already folded in)
    grad : bool

    Returns
    -------
    J : 0-d ndarray
    das : dict name -> ndarray (N_l, h, w), or None when ``grad`` is False.

    Notes
    -----
    Each layer's term depends only on that layer's activations, so the gradient
    with respect to ``acts[l]`` is that layer's :func:`style_layer_cost` gradient.
    """
    J, das = 0, {}
    for name in targets:
        J_l, das[name] = style_layer_cost(acts[name], targets[name], ks[name], grad)
        J = J + J_l
    return J, (das if grad else None)


def tv_cost(x, grad=True):
    """Total variation ``J = sum (x[c,i+1,j] - x[c,i,j])^2 + sum (x[c,i,j+1] - x[c,i,j])^2``.

    The squared ("TV^2", beta = 2) anisotropic variant: every pair of vertically
    or horizontally neighbouring pixels in every channel contributes its squared
    difference. It is smooth, so L-BFGS's line search sees no kinks, unlike the
    L1 / isotropic forms. jcjohnson's neural-style uses the same squared
    differences but crops both sums to the first (H-1) x (W-1) pixels and only
    writes the gradient, which is that of half this sum on the crop; here
    every neighbouring pair counts, so the cost is symmetric under flips.

    Parameters
    ----------
    x : ndarray (C, H, W)
    grad : bool

    Returns
    -------
    J : 0-d ndarray
    dx : ndarray (C, H, W) or None

    Notes
    -----
    With ``dh = x[:, 1:, :] - x[:, :-1, :]`` each pixel appears in up to two
    vertical differences, as the minuend of the one above it and the subtrahend
    of the one below, so ``dJ/dx[:, 1:, :] += 2 dh`` and ``dJ/dx[:, :-1, :] -= 2 dh``;
    likewise for the horizontal ``dw``.
    """
    xp = array_module(x)
    dh = x[:, 1:, :] - x[:, :-1, :]  # (C, H-1, W)
    dw = x[:, :, 1:] - x[:, :, :-1]  # (C, H, W-1)
    J = xp.sum(dh * dh) + xp.sum(dw * dw)
    if not grad:
        return J, None
    dx = xp.zeros_like(x)  # slice-adds, no fancy indexing: exact on CuPy too
    dx[:, 1:, :] += 2 * dh
    dx[:, :-1, :] -= 2 * dh
    dx[:, :, 1:] += 2 * dw
    dx[:, :, :-1] -= 2 * dw
    return J, dx


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
    """

    name: str
    content_k: Callable[[int, int], float]
    style_k: Callable[[int, int], float]
    layer_weight: Callable[[int], float]
    alpha: float
    beta: float
    formula: str


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
        beta=1e3,
        formula="Gatys et al. 2016 eq. 1, 4, 5: 1/2 sum((F-P)^2); "
        "sum_l w_l/(4 N_l^2 M_l^2) sum((G_l-A_l)^2), w_l = 1/L; alpha/beta = 1e-3",
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
