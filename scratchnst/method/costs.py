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

The constant k is where published implementations differ:
:mod:`scratchnst.method.presets` lists four of them.
"""

from scratchnst.backend import array_module
from scratchnst.errors import ScratchNSTError
from scratchnst.network.fast.gemm import gram_threads, matmul_threads

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
    return gram_threads(F)  # F @ F.T: (N, M) x (M, N) -> (N, N), on the CPU split over our threads


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
    return matmul_threads(dG + dG.T, F)  # (dG + dG^T) @ F: (N, N) x (N, M) -> (N, M), split likewise


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
