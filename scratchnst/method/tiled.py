"""Exact tiled evaluation of the objective: any image size in bounded memory.

    plan = make_plan((4096, 4096), ["relu1_1", "relu4_2", "relu5_1"], tile=768)
    plan.tiles[1]   # Tile(own=(0, 688, 688, 1376), crop=(0, 758, 608, 1446)): image pixels, half-open
    Objective(net, content, styles, tile=768)     # evaluates through this module

Why tiles give the exact loss and gradient. Every cost is a sum over positions:

    G_l = F_l F_l^T = sum_t F_l,t F_l,t^T            F_l,t: (N_l, M_l,t), the positions tile t owns
    J_c = k_c sum_p (F_c,p - P_c,p)^2 = sum_t J_c,t  (Gatys et al. eq. 1 and 3)

so with each position of each layer owned by exactly one tile, pass 1 sums per-tile
Grams and content terms into the whole image's. Once G_l is known, the cost gradient
at a position needs only that position's activation:

    dJ/dF_l,p = 4 k_l (G_l - A_l) F_l,p  (style)     2 k_c (F_c,p - P_c,p)  (content)

and dJ/dx = sum_t sum_{p in t} (dJ/dF_p) (dF_p/dx): pass 2 feeds each tile's backward
pass these at its owned positions (zero in its halo) and adds the tile's image
gradient into the whole one. Both passes read a tile's owned positions from a forward
pass over a crop, the tile plus a halo, that computes them exactly as the whole image
does:

* Reach. A unit of a layer sees its own stride block of s input pixels plus ``r`` more
  on either side, r = the sum of the strides at which the convolutions before it run
  (each 3x3 conv adds one position per side; a 2x2 pool adds nothing outside its block):
  r = 70 at relu5_1 (s = 16), 38 at relu4_2 (s = 8): the receptive field 2 r + s of
  :mod:`scratchnst.inside.receptive_fields`. A crop reaching r past the owned pixels
  holds every input of every owned unit; units nearer its edges see the crop's zero
  padding instead of the image and are wrong, but no owned unit depends on them.
* Alignment. Crops start at multiples of S, the stride of the deepest layer used, so
  every 2x2 pool window of the crop is one of the image's (max pooling picks the same
  element from the same inputs), and owned position i of a layer of stride s is crop
  position i - start / s. The halo before a tile is r rounded up to S; after it, r:
  the rows a crop's pools floor away at its end lie beyond every owned unit's reach.
* Edges. At the image's border a crop stops at the border, where the image's own zero
  padding and the pools' flooring (h = floor(H / s)) are exactly the crop's.

Tiles split each axis into as few pieces of at most ``tile`` pixels as it can, each a
multiple of S (the last takes the rest), so every position of a layer of stride s <= S
falls in exactly one tile: tile [y0, y1) owns rows y0 // s .. y1 // s - 1.

Cost: pass 2 repeats pass 1's forward passes (but the last tile's, still in the
network), and the halos add ``(n - 1) (halo before + after)`` pixels to each axis cut in n.
Memory: one crop's passes, plus the image, its gradient and the content targets.
No host transfer: the Grams stay on the device between the passes, so an evaluation
still reads its scalars back once (in :class:`~scratchnst.method.objective.Objective`).

Rounding: exact in real arithmetic, tiled and untiled agree to rounding (1e-15 in
float64, 1e-6 in float32). The fast convolutions round a crop's values differently
in the last bit than the whole image's (other bands, other Winograd tiles), so where
max pooling meets an exact tie (a flat area of the image) the tiled pass may pick the
other maximum: an equally valid subgradient, not the same one (tests/test_tiled.py).
"""

import numbers
from functools import cache
from typing import NamedTuple

from scratchnst.errors import ScratchNSTError
from scratchnst.method.costs import content_cost, gram, gram_backward
from scratchnst.network.architecture import KIND, LAYERS, activation_shapes, deepest, depth

# Owned pixels per side: 4096 px in 6 x 6 tiles of 688, crops of 838 px, about 3.6 GB estimated in float32
# (scratchnst.transfer.estimate.tiled_memory_bytes) and (4846 / 4096)^2 x 3/2 = 2.1x the FLOPs per pixel.
DEFAULT_TILE = 768


# ------------------------------------------------------------------ geometry


@cache
def stride(layer):
    """Input pixels between neighbouring units of ``layer``: 2 ** (pools up to and including it)."""
    return 2 ** sum(KIND[n] == "pool" for n in LAYERS[: depth(layer) + 1])


@cache
def reach(layer):
    """Input pixels a unit of ``layer`` sees past its own stride block, on each side.

    Each 3x3 convolution widens the window by one of its input's units on either side,
    that is by its input's stride in pixels; a 2x2 pool adds nothing outside its own
    block. So the receptive field is ``2 reach + stride`` (156 = 2 * 70 + 16 at relu5_1).
    """
    return sum(stride(n) for n in LAYERS[: depth(layer) + 1] if KIND[n] == "conv")


class Tile(NamedTuple):
    """One tile, in image pixels, half-open: ``own`` (y0, y1, x0, x1) and ``crop`` (a, b, c, d) around it."""

    own: tuple
    crop: tuple


class Plan(NamedTuple):
    """How an image of ``shape`` (H, W) is cut: owned sides ``size`` (rows, cols), multiples of ``stride``."""

    shape: tuple
    stride: int  # S, of the deepest layer used
    halo: tuple  # (before, after) a tile: reach rounded up to S, and reach
    size: tuple
    tiles: tuple  # of Tile, row by row


def check_tile(tile, S):
    """``tile`` rounded up to a multiple of S; a one-line error unless it is a positive whole number."""
    if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 1:
        raise ScratchNSTError(f"tile must be a positive whole number of pixels (or None: untiled), got {tile!r}")
    return S * -(-int(tile) // S)


def _axis(n, tile, S, before, after):
    """[(own start, own end, crop start, crop end)] along an axis of n pixels."""
    q = S * -(-n // (-(-n // tile) * S))  # as many tiles as ``tile`` needs, as even as S allows: q <= tile
    return [(o, min(o + q, n), max(o - before, 0), min(o + q + after, n)) for o in range(0, n, q)], q


def _geometry(shape, layers, tile):
    """S, (halo before, after) and ``tile`` rounded up to S, for a pass to ``layers`` over ``shape`` (H, W)."""
    d = deepest(layers)
    if 0 in activation_shapes(*shape, d)[d]:  # what the network's forward pass would say, before any
        raise ScratchNSTError(f"image {tuple(shape)} is too small to reach {d}; use a larger image or shallower layers")
    S, r = stride(d), reach(d)
    return S, (S * -(-r // S), r), check_tile(tile, S)


def make_plan(shape, layers, tile):
    """The tiles of an image of ``shape`` (H, W) for a pass to ``layers``, owned sides at most ``tile``."""
    S, halo, tile = _geometry(shape, layers, tile)
    rows, qy = _axis(shape[0], tile, S, *halo)
    cols, qx = _axis(shape[1], tile, S, *halo)
    tiles = tuple(Tile((y0, y1, x0, x1), (a, b, c, d)) for y0, y1, a, b in rows for x0, x1, c, d in cols)
    return Plan(tuple(shape), S, halo, (qy, qx), tiles)


def largest_crop(shape, layers, tile):
    """(rows, cols) of the largest crop of :func:`make_plan`'s, without listing its tiles."""
    S, halo, tile = _geometry(shape, layers, tile)
    return tuple(max(e - s for *_, s, e in _axis(n, tile, S, *halo)[0]) for n in shape)


def owned(tile, layer):
    """(rows, cols) slices of ``tile``'s owned units in its crop's activation at ``layer``."""
    s = stride(layer)
    y0, y1, x0, x1 = tile.own
    a, _, c, _ = tile.crop  # multiples of S, so of s
    return slice(y0 // s - a // s, y1 // s - a // s), slice(x0 // s - c // s, x1 // s - c // s)


def crop(image, tile):
    """The view ``image[:, a:b, c:d]`` (3, b - a, d - c) a tile's forward pass reads."""
    a, b, c, d = tile.crop
    return image[:, a:b, c:d]


def _owned_F(acts, tile, layer):
    """The owned activations of one layer as Gatys' F: (N_l, owned positions), a copy."""
    rows, cols = owned(tile, layer)
    a = acts[layer][:, rows, cols]  # (N_l, oh, ow) view
    return a.reshape(a.shape[0], -1)


# ------------------------------------------------------------------ targets


def content_targets(net, content, plan, layers):
    """P for each tile of ``plan``: [{layer: owned block (C, oh, ow)}], never the whole activation at once."""
    blocks = []
    for t in plan.tiles:
        acts = net.forward(crop(content, t), layers)
        blocks.append({n: acts[n][(slice(None), *owned(t, n))].copy() for n in layers})
    return blocks


def grams(net, image, layers, tile):
    """{layer: (gram(F) (N_l, N_l), M_l)} of a whole image, summed over its tiles."""
    plan = make_plan(image.shape[1:], layers, tile)
    G = dict.fromkeys(layers, 0)
    for t in plan.tiles:
        acts = net.forward(crop(image, t), layers)
        for n in layers:
            G[n] = G[n] + gram(_owned_F(acts, t, n))  # (N, m) x (m, N) -> (N, N)
    shapes = activation_shapes(*image.shape[1:], deepest(layers))
    return {n: (G[n], shapes[n][1] * shapes[n][2]) for n in layers}


# ------------------------------------------------------------------ the two passes


def evaluate(obj, x, grad=True):
    """Per-layer cost terms and dJ/dx of an :class:`~scratchnst.method.objective.Objective` built with a tile.

    Parameters
    ----------
    obj : Objective with ``plan``, ``P_tiles`` (:func:`content_targets`), ``A``, ``k_content``,
        ``k_style``, ``alpha``, ``beta``, ``content_layers``, ``style_layers``, ``layers``, ``net``.
    x : ndarray (3, H, W) on the network's backend and dtype.
    grad : bool
        False runs pass 1 only.

    Returns
    -------
    terms : {"content": {name: J}, "style": {name: J}}, 0-d arrays (no host transfer here)
    dx : ndarray (3, H, W) or None
        ``alpha dJ_content/dx + beta dJ_style/dx``.
    """
    xp = obj.net.xp
    content, G, last = _first_pass(obj, x)
    style, dG = {}, {}
    for n in obj.style_layers:  # style_layer_cost's J and dJ/dG, from the whole image's Gram
        D = G[n] - obj.A[n]  # (N_l, N_l)
        style[n] = obj.k_style[n] * xp.sum(D * D)
        dG[n] = 2 * obj.k_style[n] * D
    terms = {"content": content, "style": style}
    return terms, (_second_pass(obj, x, dG, last) if grad else None)


def _first_pass(obj, x):
    """Content terms and Grams summed over the tiles' owned units; the last tile's activations."""
    content = dict.fromkeys(obj.content_layers, 0)
    G = dict.fromkeys(obj.style_layers, 0)
    acts = None
    for t, P in zip(obj.plan.tiles, obj.P_tiles):
        acts = obj.net.forward(crop(x, t), obj.layers)
        for n in obj.content_layers:
            a = acts[n][(slice(None), *owned(t, n))]  # (C, oh, ow) view
            content[n] = content[n] + content_cost(a, P[n], obj.k_content[n], grad=False)[0]
        for n in obj.style_layers:
            G[n] = G[n] + gram(_owned_F(acts, t, n))  # (N, m) x (m, N) -> (N, N)
    return content, G, acts


def _second_pass(obj, x, dG, last_acts):
    """dJ/dx: each tile's backward pass fed with the cost gradients at its owned units.

    Tiles run in reverse, so the first is the one pass 1 ended on: the network still
    holds its caches, and its forward pass is not repeated.
    """
    net = obj.net
    dx = net.xp.zeros_like(x)  # (3, H, W)
    for i in reversed(range(len(obj.plan.tiles))):
        t = obj.plan.tiles[i]
        acts = last_acts if i == len(obj.plan.tiles) - 1 else net.forward(crop(x, t), obj.layers)
        grads = {n: _upstream(obj, acts[n], t, n, obj.P_tiles[i], dG) for n in obj.layers}
        a, b, c, d = t.crop
        dx[:, a:b, c:d] += net.backward(grads)  # halos overlap: the tiles' gradients add there
    return dx


def _upstream(obj, a, tile, layer, P, dG):
    """dJ/da over a tile's crop at one layer (C, h, w): the cost gradient at owned units, 0 in the halo."""
    rows, cols = owned(tile, layer)
    F = a[:, rows, cols]  # (C, oh, ow) view
    g = obj.net.xp.zeros(a.shape, dtype=a.dtype)
    if layer in dG:
        dF = gram_backward(dG[layer], F.reshape(F.shape[0], -1))  # (N, N) x (N, m) -> (N, m)
        g[:, rows, cols] = obj.beta * dF.reshape(F.shape)
    if layer in P:  # a layer may be both a content and a style layer: gradients add
        g[:, rows, cols] += obj.alpha * content_cost(F, P[layer], obj.k_content[layer])[1]
    return g
