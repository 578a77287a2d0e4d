"""The style transfer objective: one forward and one backward pass per evaluation.

    obj = Objective(net, content, styles)          # targets computed once, here
    loss, grad = obj.value_and_grad(x)             # x (3, H, W) -> float, (3, H, W)
    obj.terms                                      # {"content", "style", "tv", "total"}

The loss is Gatys et al. (2016) eq. 7 plus an optional smoothness prior,

    L(x) = alpha * sum_c k_c sum((F_c(x) - P_c)^2)                       content
         + beta  * sum_l w_l k_l sum((G_l(x) - A_l)^2)                   style
         + tv_weight * tv(x)

with the constants k of a preset in :data:`scratchnst.method.presets.PRESETS`. Its gradient
is the network's backward pass fed with each layer's cost gradient
(:mod:`scratchnst.method.costs`) at once: the backward adds them as it passes each
layer, so one backward serves every layer (the chain rule is linear in the
upstream gradients).

With ``tile=N`` the same loss and gradient come from tiles of at most N x N pixels
(plus a halo) in two passes, so that memory no longer grows with the image's
activations (:mod:`scratchnst.method.tiled`).
"""

from scratchnst.backend import backend_name, to_backend, to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.method import tiled
from scratchnst.method.balance import split_auto
from scratchnst.method.costs import content_cost, gram, style_layer_cost, tv_cost
from scratchnst.method.presets import check_weight, get_preset
from scratchnst.network.architecture import activation_shapes, check_layers, deepest
from scratchnst.network.fast.threads import blas_held
from scratchnst.network.preprocessing import check_input_image

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _check_layers(layers, what):
    layers = check_layers(layers, what)
    if not layers:
        raise ScratchNSTError(f"{what} is empty; give at least one layer name")
    if len(set(layers)) != len(layers):
        raise ScratchNSTError(f"{what} lists a layer twice: {', '.join(layers)}")
    return layers


def _check_image(img, what, net):
    img = net.xp.asarray(check_input_image(img, what), dtype=net.dtype)
    if not bool(net.xp.isfinite(img).all()):
        raise ScratchNSTError(f"{what} contains NaN or infinite values")
    return img


def _check_weights(values, n, what):
    values = list(values)
    if len(values) != n:
        raise ScratchNSTError(f"{what} has {len(values)} entries for {n} {'item' if n == 1 else 'items'}")
    return [check_weight(v, f"each of {what}") for v in values]


class Objective:
    """Content + style (+ TV) loss of an image, and its gradient.

    Parameters
    ----------
    net : object with ``forward(image, layers) -> {name: (C, h, w)}``,
        ``backward({name: dL/d act}) -> (3, H, W)``, ``xp`` and ``dtype``
        (:func:`scratchnst.load_vgg19`).
    content : ndarray (3, H, W)
        Content image in the network's input space; the generated image must have
        this shape.
    styles : ndarray (3, h, w) or list of them
        Style images; their sizes may differ from the content's and each other's.
    content_layers, style_layers : sequences of layer names
    style_layer_weights : sequence of floats (one per style layer) or None
        w_l; None takes the preset's (1/L for ``gatys`` and ``course``, 1 for the others).
    style_blend : sequence of floats (one per style image) or None
        Blend weights, normalised to sum 1 (None: equal). The target Gram of a layer
        is their weighted average of the style images' Grams (per position).
    alpha, beta : float or None
        Content and style weights. The defaults (1, 1e3) are the paper's ratio, kept
        here for the tests and tutorials that reproduce it; None takes the preset's,
        as :func:`scratchnst.stylize` does (``gatys``: 1 and 5e7, chosen for the
        normalised network; ``jcjohnson``: 5 and 100).
    tv_weight : float
        Weight of :func:`scratchnst.method.costs.tv_cost` on the image, 0 to disable.
    normalization : str
        A key of :data:`scratchnst.method.presets.PRESETS`.
    tile : int or None
        None: one forward and one backward pass over the whole image. N: the same
        loss and gradient (to rounding) from tiles of at most N x N owned pixels (N
        rounded up to a multiple of the deepest layer's stride, 16 at relu5_1), each
        passed forward twice and backward once with a halo
        (:mod:`scratchnst.method.tiled`): memory is that of one tile, for any image
        size. The style images' Grams and the content targets are computed tile by
        tile too. It needs a VGG19-shaped ``net`` (the pools where VGG19 has them).

    Attributes
    ----------
    terms : dict
        Of the last evaluation, as Python floats: ``content``, ``style`` and ``tv``
        *unweighted* (before alpha, beta and tv_weight; each preset's k and w_l are
        included, so ``style`` is the sum of ``layers["style"]``), and ``total``,
        the loss returned. ``terms["layers"]`` holds the per-layer values
        ``{"content": {name: ...}, "style": {name: ...}}``.
    n_evals : int
        Number of evaluations (each is one forward pass, plus a backward for
        :meth:`value_and_grad`; tiled, one forward pass of every tile, plus a second
        forward and a backward for :meth:`value_and_grad`).
    plan : :class:`scratchnst.method.tiled.Plan` or None
        The tiles of the generated image (None: untiled).
    P, P_tiles : the content targets: ``P`` {name: (C, h, w)} untiled (else None);
        ``P_tiles`` [{name: owned block}], one dict per tile of ``plan``, tiled (else None).

    Notes
    -----
    Style targets: for style image s with activations F_s (N_l, M_s) at layer l,
    the per-position Gram is ``gram(F_s) / M_s``; the blended target is
    ``sum_s b_s gram(F_s) / M_s``, multiplied by the generated image's M_l so it
    is in the units of ``gram(F(x))``. With a single style image of the content's
    size this is just the style image's Gram, as in Gatys et al.
    """

    def __init__(self, net, content, styles, *, content_layers=("relu4_2",),
                 style_layers=STYLE_LAYERS, style_layer_weights=None, style_blend=None,
                 alpha=1.0, beta=1e3, tv_weight=0.0, normalization="gatys", tile=None):
        self.net = net
        self.preset = get_preset(normalization)
        self.content_layers = _check_layers(content_layers, "content_layers")
        self.style_layers = _check_layers(style_layers, "style_layers")
        self.alpha = check_weight(self.preset.alpha if alpha is None else alpha, "alpha")
        self.beta = check_weight(self.preset.beta if beta is None else beta, "beta")
        self.tv_weight = check_weight(tv_weight, "tv_weight")

        style_layer_weights, finish_weights = split_auto(style_layer_weights)  # "auto": balance.py
        L = len(self.style_layers)
        if style_layer_weights is None:
            style_layer_weights = [self.preset.layer_weight(L)] * L
        self.style_layer_weights = dict(
            zip(self.style_layers, _check_weights(style_layer_weights, L, "style_layer_weights"))
        )

        content = _check_image(content, "content image", net)
        if not isinstance(styles, (list, tuple)):
            styles = [styles]
        if not styles:
            raise ScratchNSTError("styles is empty; give at least one style image")
        styles = [_check_image(s, f"style image {i}", net) for i, s in enumerate(styles)]
        blend = [1.0] * len(styles) if style_blend is None else style_blend
        blend = _check_weights(blend, len(styles), "style_blend")
        if sum(blend) <= 0:
            raise ScratchNSTError("style_blend weights sum to 0; give at least one positive weight")
        self.style_blend = [b / sum(blend) for b in blend]
        self.shape = tuple(content.shape)
        self.layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))

        # Targets, once: content activations P_c, and blended per-position Grams.
        xp = net.xp
        self.plan = None if tile is None else tiled.make_plan(self.shape[1:], self.layers, tile)
        if self.plan is None:
            acts = net.forward(content, self.layers)
            self.P = {n: acts[n].copy() for n in self.content_layers}  # copies: the net may reuse buffers
            self.P_tiles = None
            shapes = {n: acts[n].shape for n in self.layers}
        else:
            self.P = None
            self.P_tiles = tiled.content_targets(net, content, self.plan, self.content_layers)
            shapes = activation_shapes(*self.shape[1:], deepest(self.layers))
        self.k_content = {}
        for n in self.content_layers:
            C, h, w = shapes[n]
            self.k_content[n] = self.preset.content_k(C, h * w)
        gen_M = {n: shapes[n][1] * shapes[n][2] for n in self.style_layers}
        per_position = {n: 0 for n in self.style_layers}
        for b, style in zip(self.style_blend, styles):
            for n, (G, M) in self._style_grams(style, tile).items():
                per_position[n] = per_position[n] + (b / M) * G
        self.A, self.k_style = {}, {}
        for n in self.style_layers:
            C = shapes[n][0]
            M = gen_M[n]
            self.A[n] = xp.asarray(per_position[n] * M, dtype=net.dtype)  # (C, C), units of gram(F(x))
            self.k_style[n] = self.style_layer_weights[n] * self.preset.style_k(C, M)
        self.terms = {}
        self.n_evals = 0
        finish_weights(self, content)  # "auto" equalises the style terms at the content image

    def _style_grams(self, style, tile):
        """{name: (gram(F_s) (C, C), M_s)} of one style image, over the whole image or tile by tile."""
        if tile is not None:
            return tiled.grams(self.net, style, self.style_layers, tile)
        s_acts = self.net.forward(style, self.style_layers)
        out = {}
        for n in self.style_layers:
            C, h, w = s_acts[n].shape
            if h * w == 0:
                raise ScratchNSTError(f"style image {tuple(style.shape)} is too small to reach {n}")
            out[n] = (gram(s_acts[n].reshape(C, h * w)), h * w)
        return out

    # ------------------------------------------------------------------ evaluation
    def _check_x(self, x):
        shape = getattr(x, "shape", None)
        dtype = getattr(x, "dtype", None)
        if shape is None or tuple(shape) != self.shape or dtype is None or dtype.kind != "f":
            raise ScratchNSTError(
                f"generated image must be a float array of the content image's shape {self.shape}, "
                f"got {dtype} {shape}"
            )
        return self.net.xp.asarray(x, dtype=self.net.dtype)

    def _evaluate(self, x, grad):
        with blas_held(self.net.xp):  # our threads split the passes; BLAS on one (threads.blas_held)
            return self._evaluate_held(x, grad)

    def _evaluate_held(self, x, grad):
        x_net = self._check_x(x)
        if self.plan is None:
            layer_terms, dx = self._untiled(x_net, grad)
        else:
            layer_terms, dx = tiled.evaluate(self, x_net, grad)  # both passes, no host transfer
        self.n_evals += 1
        content, style = 0, 0
        for J in layer_terms["content"].values():
            content = content + J
        for J in layer_terms["style"].values():
            style = style + J
        tv, dtv = (None, None) if self.tv_weight == 0 else tv_cost(x_net, grad)  # always on the whole image

        # The one synchronisation: every scalar term crosses to the host in one transfer.
        named = [("content", None, content), ("style", None, style)] + (
            [("tv", None, tv)] if tv is not None else []
        ) + [(kind, n, J) for kind, terms in layer_terms.items() for n, J in terms.items()]
        values = to_numpy(self.net.xp.stack([self.net.xp.asarray(v, dtype=self.net.dtype) for _, _, v in named]))
        host = {(kind, n): float(v) for (kind, n, _), v in zip(named, values)}
        content, style, tv = host["content", None], host["style", None], host.get(("tv", None), 0.0)
        total = self.alpha * content + self.beta * style + self.tv_weight * tv
        self.terms = {
            "content": content, "style": style, "tv": tv, "total": total,
            "layers": {kind: {n: host[kind, n] for n in terms} for kind, terms in layer_terms.items()},
        }
        if not grad:
            return total, None
        if dtv is not None:
            dx = dx + self.tv_weight * dtv
        return total, to_backend(dx, backend_name(x), dtype=x.dtype)

    def _untiled(self, x_net, grad):
        """Per-layer terms (0-d arrays) and the content and style gradient: one forward, one backward."""
        acts = self.net.forward(x_net, self.layers)
        grads = {}
        layer_terms = {"content": {}, "style": {}}
        for n in self.content_layers:
            J, da = content_cost(acts[n], self.P[n], self.k_content[n], grad)
            layer_terms["content"][n] = J
            if grad:
                grads[n] = self.alpha * da
        for n in self.style_layers:
            J, da = style_layer_cost(acts[n], self.A[n], self.k_style[n], grad)
            layer_terms["style"][n] = J
            if grad:
                # a layer may be both a content and a style layer: gradients add
                grads[n] = grads[n] + self.beta * da if n in grads else self.beta * da
        dx = self.net.backward(grads) if grad else None  # (3, H, W), queued before the host waits
        return layer_terms, dx

    def value_and_grad(self, x):
        """Loss (Python float) and its gradient (shaped, typed and placed like ``x``).

        One forward pass to every content and style layer, then one backward pass
        fed with all their cost gradients. A non-finite loss (a float32 overflow
        on a very long trial step) is returned as it is, so that a line search
        can shorten the step instead of stopping.
        """
        return self._evaluate(x, grad=True)

    def value(self, x):
        """Loss only (one forward pass, no backward): for line searches and monitoring."""
        return self._evaluate(x, grad=False)[0]

    __call__ = value_and_grad
