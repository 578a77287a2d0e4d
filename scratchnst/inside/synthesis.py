"""Images synthesised by gradient steps on the input: what a unit wants, what a layer keeps.

Two questions about a trained VGG19, both answered by optimising an image rather
than a network (the gradient comes from :meth:`scratchnst.VGG19.backward`):

* :func:`maximize_unit` -- *activation maximisation* (Erhan et al. 2009; Simonyan,
  Vedaldi and Zisserman 2014): gradient ascent on the input to make one channel
  fire. Plain ascent gives high-frequency noise the network happens to like, so
  it is regularised as in Yosinski et al. 2015 ("Understanding neural networks
  through deep visualization"): random jitter, periodic Gaussian blur, L2 decay
  towards the mean pixel, optional total variation, and clipping to pixel bounds.
* :func:`reconstruct` -- start from noise and match one layer of a real image:
  its activations (content reconstruction, Mahendran and Vedaldi 2015) or its Gram
  matrix (texture synthesis, Gatys, Ecker and Bethge 2015). This is Figure 1 of
  Gatys et al. 2016: low layers keep the exact pixels, high layers keep the
  objects and their arrangement but not the pixels; Grams keep textures only.

Figures of these live in :mod:`scratchnst.inside.figures`.
"""

import math

import numpy as np

from scratchnst.backend import array_module, to_float, to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.method.costs import content_cost, gram, style_layer_cost, tv_cost
from scratchnst.method.optimize import minimize
from scratchnst.network.architecture import channels


def layer_channels(layer):
    """Number of channels of a VGG19 layer (``relu3_1`` -> 256, ``pool5`` -> 512)."""
    return channels(layer)


def check_unit(layer, unit):
    """Raise a one-line error unless ``unit`` is a channel index of ``layer``."""
    n = layer_channels(layer)
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < n:
        raise ScratchNSTError(f"unit {unit!r} is out of range for {layer}, which has channels 0..{n - 1}")
    return int(unit)


def gaussian_blur(x, sigma):
    """Separable Gaussian blur of each channel, with reflected borders.

    Parameters
    ----------
    x : ndarray (C, H, W)
    sigma : float
        Standard deviation in pixels; the kernel is cut at 3 sigma.

    Returns
    -------
    ndarray (C, H, W), a new array.
    """
    if sigma <= 0:
        return x.copy()
    xp = array_module(x)
    H, W = x.shape[1:]
    # Reflect padding needs r < H and r < W; only tiny images lose the kernel's tails.
    r = max(1, min(math.ceil(3 * sigma), H - 1, W - 1))
    t = np.arange(-r, r + 1)
    k = np.exp(-(t * t) / (2.0 * sigma * sigma))
    k = (k / k.sum()).tolist()  # Python floats: scalars that multiply arrays on either backend
    # A sum of shifted slices, not a convolution routine: the same lines run on CuPy.
    p = xp.pad(x, ((0, 0), (r, r), (0, 0)), mode="reflect")  # (C, H + 2r, W)
    x = sum(k[i] * p[:, i : i + H, :] for i in range(2 * r + 1))
    p = xp.pad(x, ((0, 0), (0, 0), (r, r)), mode="reflect")  # (C, H, W + 2r)
    return sum(k[i] * p[:, :, i : i + W] for i in range(2 * r + 1))


def _pixel_units(net):
    """(lo, hi, per_pixel), each (3, 1, 1) on the net's backend, in input-space channel order.

    ``per_pixel`` converts a length in pixel values (0..255) into input units, so
    step sizes and noise mean the same thing for Caffe (BGR, 0..255) and
    torchvision (RGB, standardised) weights.
    """
    xp, prep = net.xp, net.prep
    lo, hi = prep.pixel_bounds()
    per_pixel = prep.scale / 255.0 / np.asarray(prep.std)
    as_col = lambda v: xp.asarray(np.asarray(v, dtype=np.float64)[:, None, None], dtype=net.dtype)  # noqa: E731
    return as_col(lo), as_col(hi), as_col(per_pixel)


def noise_image(net, shape, *, sigma=10.0, seed=0):
    """Grey (the weights' mean pixel) plus Gaussian noise of ``sigma`` pixel values, (3, H, W).

    Drawn on the host with ``default_rng(seed)``, so NumPy and CuPy start alike.
    """
    lo, hi, per_pixel = _pixel_units(net)
    z = np.random.default_rng(seed).standard_normal((3, *shape))
    x = net.xp.asarray(z, dtype=net.dtype) * (sigma * per_pixel)
    return net.xp.clip(x, lo, hi)


def maximize_unit(net, layer, unit, *, size=64, steps=80, lr=3.0, where="mean", jitter=4,
                  blur_sigma=1.0, blur_every=4, decay=0.01, tv_weight=0.0, seed=0, callback=None):
    """The input image that makes one channel fire: regularised gradient ascent.

    Parameters
    ----------
    net : :class:`scratchnst.VGG19`
    layer : str
        Any VGG19 layer. For ``reluX_Y`` the ascent runs on ``convX_Y``, the ReLU's
        input: the same maximiser (ReLU is monotone), but its gradient does not
        vanish where the unit is off, as it is over much of the starting noise.
    unit : int
        Channel index.
    size : int or (int, int)
        Image size (H, W). 64-96 px suits layers up to block 3 on a CPU.
    steps : int
    lr : float
        Step length in pixel values (0..255): each step moves the image by
        ``lr * g / mean|g|``, so the step size does not depend on how large a
        layer's gradients happen to be.
    where : "mean" or "centre"
        Maximise the channel's mean over all positions (a texture of its
        favourite pattern) or its single centre activation (one receptive field's
        worth of pattern, surrounded by what the regularisers leave: grey).
    jitter : int
        Each step shifts the image by up to this many pixels (a circular roll)
        before the forward pass, so no pattern can rely on exact pixel alignment.
    blur_sigma, blur_every : float, int
        Gaussian blur of this sigma every ``blur_every`` steps (0 disables):
        suppresses the high frequencies that ascent otherwise amplifies.
    decay : float
        Each step multiplies the image by ``1 - decay``, pulling it towards the
        mean pixel (0 in input space): an L2 prior that leaves grey what the unit
        does not care about.
    tv_weight : float
        Adds ``-tv_weight * dTV/dx`` (:func:`scratchnst.method.costs.tv_cost`) to the
        ascent direction, before normalisation.
    seed : int
    callback : callable (step, x, value) or None

    Returns
    -------
    x : ndarray (3, H, W) in input space, within pixel bounds.
    history : list of float
        The objective (on the un-jittered image, before the step) at each step.
    """
    unit = check_unit(layer, unit)
    if where not in ("mean", "centre"):
        raise ScratchNSTError(f"where must be 'mean' or 'centre', got {where!r}")
    H, W = (size, size) if np.isscalar(size) else size
    target = "conv" + layer[4:] if layer.startswith("relu") else layer
    xp = net.xp
    rng = np.random.default_rng(seed)
    lo, hi, per_pixel = _pixel_units(net)
    x = noise_image(net, (H, W), seed=seed)
    history = []
    for t in range(steps):
        shift = tuple(int(v) for v in rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
        value, d = _unit_gradient(net, x, target, unit, where, shift)
        history.append(value)
        if tv_weight:
            d = d - tv_weight * tv_cost(x)[1]
        scale = xp.abs(d).mean() + 1e-12
        x = x + (lr * per_pixel) * d / scale
        x = x * (1.0 - decay)
        if blur_every and blur_sigma > 0 and t % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
        x = xp.clip(x, lo, hi)
        if callback is not None:
            callback(t, x, history[-1])
    return x, history


def _unit_gradient(net, x, target, unit, where, shift):
    """The unit's activation on x rolled by ``shift`` (dy, dx), and its gradient with respect to x.

    Returns ``(value, d)``: a float, and d (3, H, W), the ascent direction, rolled
    back so that it lines up with the un-jittered x.
    """
    xp = net.xp
    a = net.forward(xp.roll(x, shift, axis=(1, 2)), [target])[target]  # (C, h, w)
    g = xp.zeros_like(a)  # dvalue/da
    h, w = a.shape[1:]
    if where == "mean":
        g[unit] = 1.0 / (h * w)
        value = to_float(a[unit].mean())
    else:
        g[unit, h // 2, w // 2] = 1.0
        value = to_float(a[unit, h // 2, w // 2])
    d = xp.roll(net.backward({target: g}), (-shift[0], -shift[1]), axis=(1, 2))
    return value, d


def unit_activation(net, x, layer, unit, where="mean"):
    """The channel's mean (or centre) activation at ``layer`` for image x, a float."""
    a = net.forward(x, [layer])[layer][unit]  # (h, w)
    h, w = a.shape
    return to_float(a.mean() if where == "mean" else a[h // 2, w // 2])


def reconstruct(net, image, layer, *, style=False, steps=200, method="lbfgs", lr=5.0, tv_weight=0.0,
                seed=0, callback=None):
    """An image, from noise, whose activations (or Gram matrix) at one layer match ``image``'s.

    Parameters
    ----------
    net : :class:`scratchnst.VGG19`
    image : ndarray (3, H, W) in input space
    layer : str
    style : bool
        False: content reconstruction, ``J = sum((F - P)^2) / (N_l M_l)``, the
        mean squared difference of activations (Gatys eq. 1 up to its constant).
        True: texture synthesis, ``J = sum((G - A)^2) / (4 N_l^2 M_l^2)`` with
        ``G = F F^T`` (Gatys eq. 4 for one layer).
    steps : int
        Optimiser iterations.
    method : "lbfgs" or "adam"
        :func:`scratchnst.method.optimize.minimize`. L-BFGS converges far faster on these
        smooth costs; Adam (``lr`` in pixel values) is there to compare.
    tv_weight : float
        Weight of :func:`scratchnst.method.costs.tv_cost` (per pixel), 0 for none.
    seed : int
    callback : callable optimizer -> bool or None
        Passed to :func:`~scratchnst.method.optimize.minimize`.

    Returns
    -------
    x : ndarray (3, H, W), clipped to pixel bounds.
    history : list of float
        The cost (without TV) at the start and after every iteration.

    Notes
    -----
    The optimisers treat x as unconstrained (clipping inside a line search would
    break it); x is clipped once at the end, as :mod:`scratchnst.method.optimize` advises.
    """
    net.check_layers([layer])
    target = net.forward(image, [layer])[layer]  # (N_l, h, w)
    N, M = target.shape[0], target.shape[1] * target.shape[2]
    if style:
        A = gram(target.reshape(N, M))  # (N_l, N_l)
        k = 1.0 / (4.0 * N * N * M * M)
    else:
        k = 1.0 / (N * M)
    n_px = image.size
    history = []

    def fun(x):
        a = net.forward(x, [layer])[layer]
        J, da = style_layer_cost(a, A, k) if style else content_cost(a, target, k)
        history.append(to_float(J))
        dx = net.backward({layer: da})
        if tv_weight:
            J_tv, dtv = tv_cost(x)
            J, dx = J + (tv_weight / n_px) * J_tv, dx + (tv_weight / n_px) * dtv
        return J, dx

    lo, hi, per_pixel = _pixel_units(net)
    x0 = noise_image(net, image.shape[1:], seed=seed)
    options = {"lr": lr * float(to_numpy(per_pixel).mean())} if method == "adam" else {}
    res = minimize(fun, x0, method=method, max_iter=steps, callback=callback, **options)
    return net.xp.clip(res.x, lo, hi), history
