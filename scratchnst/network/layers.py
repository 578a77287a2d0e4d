"""The layers of VGG19, forward and backward, derived by hand.

Each op is a pair of free functions, as in the cs231n assignments:

    out, cache = op_forward(x, ...)
    dx = op_backward(dout, cache)

``dout`` is dL/d out for some scalar loss L, and the backward returns dL/dx, the
vector-Jacobian product. Images and activations are single images shaped
``(C, H, W)``: style transfer optimises one picture, so there is no batch axis.
Every function is written against ``xp = array_module(x)``, so the same lines run
on NumPy and on CuPy. Forward passes never modify their inputs.

The tutorial ``tutorials/02_layers_by_hand.ipynb`` derives each gradient below and
checks it with finite differences (``scratchnst.network.gradcheck``).
"""

from typing import NamedTuple

from scratchnst.backend import array_module

# --------------------------------------------------------------------------- conv


class ConvCache(NamedTuple):
    x: object  # (C, H, W) input, kept by reference (not copied)
    w: object  # (O, C, kh, kw) kernel
    pad: int


def im2col(xpad, kh, kw, Ho, Wo):
    """Stack the kh*kw shifted windows of a padded image.

    Parameters
    ----------
    xpad : ndarray (C, Hp, Wp), the image with its zero padding already added
    kh, kw : int, the kernel's height and width
    Ho, Wo : int, the output size, ``Hp - kh + 1`` and ``Wp - kw + 1`` at stride 1

    Returns cols (C, kh, kw, Ho, Wo) with ``cols[c, u, v, i, j] = xpad[c, i+u, j+v]``,
    so that a convolution becomes one matrix product over the (c, u, v) axis:
    ``w.reshape(O, C * kh * kw) @ cols.reshape(C * kh * kw, Ho * Wo)``
    (tutorial 02, section 3, draws this matrix).
    Built with a loop over the kh*kw kernel offsets, each a plain slice copy: the
    loop is short (9 for a 3x3 kernel) and every copy is a large contiguous block.
    """
    xp = array_module(xpad)
    C = xpad.shape[0]
    cols = xp.empty((C, kh, kw, Ho, Wo), dtype=xpad.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = xpad[:, u : u + Ho, v : v + Wo]
    return cols


_im2col = im2col  # the name it had when it was private


def conv2d_forward(x, w, b, pad=1):
    """2D convolution (cross-correlation, as in PyTorch and Caffe), stride 1.

    Parameters
    ----------
    x : ndarray (C, H, W)
    w : ndarray (O, C, kh, kw)
    b : ndarray (O,)
    pad : int
        Zeros added on every side.

    Returns
    -------
    out : ndarray (O, Ho, Wo), with Ho = H + 2 pad - kh + 1 and Wo = W + 2 pad - kw + 1,

        out[o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * xpad[c, i + u, j + v]

    cache : ConvCache
    """
    xp = array_module(x)
    C, H, W = x.shape
    O, Cw, kh, kw = w.shape
    if Cw != C:
        raise ValueError(f"conv2d: input has {C} channels, kernel expects {Cw}")
    Ho, Wo = H + 2 * pad - kh + 1, W + 2 * pad - kw + 1
    xpad = xp.pad(x, ((0, 0), (pad, pad), (pad, pad)))  # (C, H+2p, W+2p)
    cols = im2col(xpad, kh, kw, Ho, Wo).reshape(C * kh * kw, Ho * Wo)
    # ocuv,cuvp->op : every output pixel p is one dot product with the kernel
    out = w.reshape(O, C * kh * kw) @ cols + b[:, None]  # (O, Ho*Wo)
    return out.reshape(O, Ho, Wo), ConvCache(x, w, pad)


def conv2d_backward_input(dout, cache):
    """Gradient of a convolution with respect to its input.

    Parameters
    ----------
    dout : ndarray (O, Ho, Wo)
        dL/d out.
    cache : ConvCache from :func:`conv2d_forward`.

    Returns
    -------
    dx : ndarray (C, H, W)

    Notes
    -----
    ``xpad[c, i+u, j+v]`` appears in ``out[o, i, j]`` with coefficient
    ``w[o, c, u, v]``, for every output pixel (i, j) and offset (u, v) that reach it.
    The chain rule sums over all of them:

        dL/dxpad[c, y, z] = sum_{o, u, v} w[o, c, u, v] * dout[o, y - u, z - v]

    (terms with (y - u, z - v) outside the output are absent). We compute it in two
    steps: ``dcols = w^T dout``, the gradient of every im2col entry
    (``dcols[c, u, v, i, j] = sum_o w[o, c, u, v] dout[o, i, j]``), then "col2im":
    each entry is added back to the pixel it was copied from (:func:`col2im`).
    """
    x, w, pad = cache
    C = x.shape[0]
    O, _, kh, kw = w.shape
    _, Ho, Wo = dout.shape
    # cuvo,op->cuvp
    dcols = (w.reshape(O, C * kh * kw).T @ dout.reshape(O, Ho * Wo)).reshape(C, kh, kw, Ho, Wo)
    return col2im(dcols, x.shape, pad)


def col2im(dcols, shape, pad):
    """Add every im2col entry's gradient back to the input pixel it was copied from.

    Parameters
    ----------
    dcols : ndarray (C, kh, kw, Ho, Wo), the gradient of ``cols`` of :func:`im2col`
    shape : (C, H, W) of the unpadded input
    pad : the padding the forward pass added

    Returns
    -------
    dx : ndarray (C, H, W), a view into the padded gradient (the padding cut off:
        the padded zeros are constants, not inputs).

    ``cols[c, u, v, i, j] = xpad[c, i+u, j+v]``, so each entry's gradient goes to
    ``dxpad[c, i+u, j+v]``: a loop of slice-adds over the kh*kw offsets. A
    fancy-indexed ``+=`` would drop repeated indices on NumPy and is undefined on CuPy.
    """
    xp = array_module(dcols)
    C, H, W = shape
    _, kh, kw, Ho, Wo = dcols.shape
    dxpad = xp.zeros((C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    for u in range(kh):
        for v in range(kw):
            dxpad[:, u : u + Ho, v : v + Wo] += dcols[:, u, v]
    return dxpad[:, pad : pad + H, pad : pad + W]


def conv2d_backward_weights(dout, cache):
    """Gradients of a convolution with respect to its kernel and bias.

    Returns
    -------
    dw : ndarray (O, C, kh, kw)
    db : ndarray (O,)

    Notes
    -----
    ``out[o, i, j]`` depends on ``w[o, c, u, v]`` through ``xpad[c, i+u, j+v]`` and
    on ``b[o]`` with coefficient 1, so

        dL/dw[o, c, u, v] = sum_{i, j} dout[o, i, j] * xpad[c, i + u, j + v]
        dL/db[o]          = sum_{i, j} dout[o, i, j]

    i.e. ``dw = dout cols^T`` with the same im2col matrix as the forward pass (rebuilt
    here rather than cached, because style transfer never needs weight gradients and
    the cols matrix is kh*kw times the size of the input).
    """
    xp = array_module(dout)
    x, w, pad = cache
    C = x.shape[0]
    O, _, kh, kw = w.shape
    _, Ho, Wo = dout.shape
    xpad = xp.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    cols = im2col(xpad, kh, kw, Ho, Wo).reshape(C * kh * kw, Ho * Wo)
    d2 = dout.reshape(O, Ho * Wo)
    dw = (d2 @ cols.T).reshape(w.shape)  # op,pq->oq with q = (c, u, v)
    db = d2.sum(axis=1)
    return dw, db


def conv2d_backward(dout, cache):
    """All three gradients of a convolution: ``(dx, dw, db)``.

    See :func:`conv2d_backward_input` and :func:`conv2d_backward_weights`.
    """
    dw, db = conv2d_backward_weights(dout, cache)
    return conv2d_backward_input(dout, cache), dw, db


# --------------------------------------------------------------------------- ReLU


def relu_forward(x):
    """ReLU: ``out = max(x, 0)`` elementwise. Returns ``(out, cache)``; cache is ``out``."""
    xp = array_module(x)
    out = xp.maximum(x, 0)
    return out, out


def relu_backward(dout, cache):
    """Gradient of ReLU with respect to its input.

    Notes
    -----
    d max(x, 0)/dx is 1 where x > 0 and 0 where x < 0, so ``dx = dout * [x > 0]``.
    At x = 0 the function has a kink; we take the derivative there to be 0, as
    PyTorch does. ``out > 0`` exactly where ``x > 0``, so the forward output serves
    as the cache and the input need not be kept.
    """
    out = cache
    return dout * (out > 0)


# --------------------------------------------------------------------------- pooling


class PoolCache(NamedTuple):
    shape: tuple  # (C, H, W) of the input
    size: int
    argmax: object  # (C, Ho, Wo) index 0..size*size-1 of the max in each window, or None


def _windows(x, size):
    """View the input as non-overlapping windows: (C, Ho, Wo, size*size).

    Odd sizes are floored, as in PyTorch and Caffe's VGG: the last row or column
    that does not fill a window is dropped (6x5 -> 3x2 for size 2). Within a
    window, entries are in row-major order: (0,0), (0,1), (1,0), (1,1).
    """
    C, H, W = x.shape
    Ho, Wo = H // size, W // size
    x = x[:, : Ho * size, : Wo * size]
    x = x.reshape(C, Ho, size, Wo, size).transpose(0, 1, 3, 2, 4)  # (C, Ho, Wo, s, s)
    return x.reshape(C, Ho, Wo, size * size)


def _unwindows(dwin, shape, size):
    """Inverse of :func:`_windows` for gradients: (C, Ho, Wo, s*s) -> (C, H, W),
    with zeros in the rows and columns the floor dropped."""
    xp = array_module(dwin)
    C, H, W = shape
    _, Ho, Wo, _ = dwin.shape
    d = dwin.reshape(C, Ho, Wo, size, size).transpose(0, 1, 3, 2, 4)
    d = d.reshape(C, Ho * size, Wo * size)
    if (Ho * size, Wo * size) == (H, W):
        return d
    dx = xp.zeros(shape, dtype=dwin.dtype)
    dx[:, : Ho * size, : Wo * size] = d
    return dx


def max_pool_forward(x, size=2):
    """Max pooling over non-overlapping size x size windows (stride = size).

    Returns ``out`` (C, H // size, W // size), ``out[c, i, j] = max`` of the
    window at rows size*i.., columns size*j.., and a :class:`PoolCache`.
    """
    win = _windows(x, size)  # (C, Ho, Wo, s*s)
    # argmax returns the FIRST maximal entry in row-major window order: the tie rule.
    argmax = win.argmax(axis=-1)
    out = win.max(axis=-1)
    return out, PoolCache(x.shape, size, argmax)


def max_pool_backward(dout, cache):
    """Gradient of max pooling with respect to its input.

    Notes
    -----
    Within a window, out = x[k*] where k* is the position of the maximum; so
    d out / d x[k] = 1 for k = k* and 0 otherwise. Each ``dout[c, i, j]`` is
    routed to the one input that was the maximum of its window; every other
    input gets 0, and so do the rows and columns dropped by the floor. When
    several entries tie for the maximum, the function is not differentiable there;
    we route the gradient to the first in row-major order (``argmax``), as PyTorch
    does.
    """
    xp = array_module(dout)
    shape, size, argmax = cache
    onehot = argmax[..., None] == xp.arange(size * size)  # (C, Ho, Wo, s*s), bool
    dwin = onehot * dout[..., None]
    return _unwindows(dwin.astype(dout.dtype, copy=False), shape, size)


def avg_pool_forward(x, size=2):
    """Average pooling over non-overlapping size x size windows (stride = size).

    Gatys et al. report slightly better results replacing VGG's max pooling by
    average pooling. Returns ``out`` (C, H // size, W // size) and a :class:`PoolCache`.
    """
    out = _windows(x, size).mean(axis=-1)
    return out, PoolCache(x.shape, size, None)


def avg_pool_backward(dout, cache):
    """Gradient of average pooling with respect to its input.

    Notes
    -----
    out = (1 / s^2) * sum of the s^2 window entries, so each entry of a window
    receives ``dout / s^2``; inputs dropped by the floor receive 0.
    """
    xp = array_module(dout)
    shape, size, _ = cache
    dwin = xp.broadcast_to((dout / (size * size))[..., None], dout.shape + (size * size,))
    return _unwindows(dwin, shape, size)
