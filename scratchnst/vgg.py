"""VGG19 (Simonyan and Zisserman 2014) as a chain of the ops in :mod:`scratchnst.layers`.

Only the convolutional part ("features") is here: the 16 3x3 convolutions, each
followed by a ReLU, and five 2x2 pools. Style transfer reads activations from it
and never needs the classifier.

    net = load_vgg19()                        # bundled weights, float32, NumPy
    acts = net.forward(x, ["relu4_2"])        # x (3, H, W) -> {"relu4_2": (512, H/8, W/8)}
    dx = net.backward({"relu4_2": dL_da})     # -> dL/dx, (3, H, W)

The forward pass stops at the deepest requested layer and keeps each op's cache;
the backward pass walks those caches in reverse, adding in the gradient given for
each activation as it passes that layer.
"""

from . import fastconv, winograd
from .backend import get_xp
from .errors import ScratchNSTError
from .layers import (
    avg_pool_backward,
    avg_pool_forward,
    conv2d_backward_input,
    conv2d_forward,
    max_pool_backward,
    max_pool_forward,
    relu_backward,
    relu_forward,
)
from .weights import CONV_LAYERS, load_weights


def _layer_names():
    """conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ... pool5, in network order."""
    names = []
    for conv in CONV_LAYERS:
        block = conv[4]
        names += [conv, "relu" + conv[4:]]
        is_last_of_block = conv == max(c for c in CONV_LAYERS if c[4] == block)
        if is_last_of_block:
            names.append("pool" + block)
    return tuple(names)


LAYERS = _layer_names()  # 37 names: 16 conv, 16 relu, 5 pool
POOLING = ("max", "avg")

# Convolution algorithms: name -> (forward(x, w, b, pad) -> (out, cache), backward_input(dout, cache) -> dx).
# "im2col" is the readable reference in scratchnst.layers, and a network built with it
# uses the reference ReLU and pooling too. The others are scratchnst.fastconv's,
# run with its in-place ReLU and compact caches; tests/test_fastconv.py checks each
# against the reference.
CONV_ALGORITHMS = {
    "im2col": (conv2d_forward, conv2d_backward_input),
    "gemm": (fastconv.conv2d_forward, fastconv.conv2d_backward_input),
    "winograd": (winograd.conv2d_forward, winograd.conv2d_backward_input),  # F(4x4, 3x3)
    "winograd2": (winograd.conv2d_forward_f2, winograd.conv2d_backward_input_f2),  # F(2x2, 3x3)
}
REFERENCE_CONV = "im2col"
DEFAULT_CONV = "winograd"  # the fastest that passes the tests; see benchmarks/README.md


class VGG19:
    """The VGG19 feature extractor with a hand-written backward pass.

    Use :func:`load_vgg19` to build one. Attributes: ``xp`` (numpy or cupy),
    ``dtype``, ``pooling`` ("max" or "avg", may be changed between passes),
    ``prep`` (the :class:`~scratchnst.weights.Preprocessing` of the weights),
    ``params`` ({conv name: (kernel, bias)} on the backend).

    The network holds the caches of the last forward pass, and nothing else
    between calls: run it on the content, the style and the generated image in any
    order, but call :meth:`backward` right after the forward whose gradient you need.
    """

    def __init__(
        self, params, prep, *, dtype="float32", backend="numpy", pooling="max", conv=DEFAULT_CONV, attrs=None
    ):
        if conv not in CONV_ALGORITHMS:
            raise ScratchNSTError(f"unknown conv algorithm {conv!r}; choose one of {', '.join(CONV_ALGORITHMS)}")
        self.conv_forward, self.conv_backward_input = CONV_ALGORITHMS[conv]
        self.conv = conv
        self.xp = get_xp(backend)
        self.backend = backend
        self.dtype = self.xp.dtype(dtype)
        self.pooling = pooling
        self.prep = prep
        self.attrs = dict(attrs or {})
        self.params = {
            name: (self.xp.asarray(k, dtype=self.dtype), self.xp.asarray(b, dtype=self.dtype))
            for name, (k, b) in params.items()
        }
        # [(layer name, its backward function, its cache, its output shape)] of the last forward
        self._caches = None

    # ------------------------------------------------------------------ helpers
    def preprocess(self, rgb):
        """RGB uint8 (H, W, 3) -> network input (3, H, W) on this backend and dtype."""
        return self.prep.to_input(rgb, self.dtype, self.xp)

    def deprocess(self, x):
        """Network input (3, H, W) -> RGB uint8 (H, W, 3) on the host."""
        return self.prep.to_rgb(x)

    @staticmethod
    def check_layers(layers):
        """Raise a one-line error for any name that is not a VGG19 layer."""
        unknown = [name for name in layers if name not in LAYERS]
        if unknown:
            raise ScratchNSTError(
                f"unknown VGG19 layer name(s) {', '.join(map(repr, unknown))}; "
                f"names are conv1_1 ... conv5_4, relu1_1 ... relu5_4, pool1 ... pool5"
            )

    def _check_image(self, image):
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", None)
        if shape is None or len(shape) != 3 or shape[0] != 3 or dtype is None or dtype.kind != "f":
            is_uint = dtype is not None and dtype.kind == "u"
            hint = " (use net.preprocess(rgb) for an RGB uint8 image)" if is_uint else ""
            raise ScratchNSTError(
                f"expected a float image (3, H, W) in the network's input space, got {dtype} {shape}{hint}"
            )
        if self.pooling not in POOLING:
            raise ScratchNSTError(f"pooling must be one of {POOLING}, got {self.pooling!r}")
        return self.xp.asarray(image, dtype=self.dtype)

    # ------------------------------------------------------------------ passes
    def forward(self, image, layers):
        """Activations of ``image`` at ``layers``.

        Parameters
        ----------
        image : ndarray (3, H, W), float, in the network's input space
        layers : iterable of layer names (see ``LAYERS``)

        Returns
        -------
        dict name -> activation (C, h, w). Each pool halves h and w (floored).
        """
        layers = list(dict.fromkeys([layers] if isinstance(layers, str) else layers))
        if not layers:
            raise ScratchNSTError("forward needs at least one layer name")
        self.check_layers(layers)
        x = self._check_image(image)
        depth = max(LAYERS.index(name) for name in layers)
        wanted = set(layers)
        fast = self.conv != REFERENCE_CONV
        acts, caches = {}, []
        for name in LAYERS[: depth + 1]:
            if name.startswith("conv"):
                k, b = self.params[name]
                x, cache = self.conv_forward(x, k, b, pad=1)
                backward = self.conv_backward_input
            elif name.startswith("relu"):
                if not fast:
                    x, cache = relu_forward(x)
                    backward = relu_backward
                elif LAYERS[LAYERS.index(name) - 1] in wanted:  # the conv output was requested: keep it
                    x, cache = fastconv.relu_forward(x)
                    backward = fastconv.relu_backward
                else:  # the conv's fresh output, held by nobody else: overwrite it
                    x, cache = fastconv.relu_forward_inplace(x)
                    backward = fastconv.relu_backward
            else:
                if min(x.shape[1:]) < 2:
                    raise ScratchNSTError(
                        f"image {tuple(image.shape[1:])} is too small to reach {name}: "
                        f"it is {tuple(x.shape[1:])} there; use a larger image or shallower layers"
                    )
                if self.pooling == "max" and fast:
                    x, cache = fastconv.max_pool_forward(x)
                    backward = fastconv.max_pool_backward
                elif self.pooling == "max":
                    x, cache = max_pool_forward(x)
                    backward = max_pool_backward
                else:
                    x, cache = avg_pool_forward(x)
                    backward = avg_pool_backward
            caches.append((name, backward, cache, x.shape))
            if name in wanted:
                acts[name] = x
        self._caches = caches
        return acts

    def backward(self, grads):
        """Gradient of a loss with respect to the input image of the last :meth:`forward`.

        Parameters
        ----------
        grads : dict name -> dL/d act, each shaped like that activation. The layers
            must have been computed by the last forward pass (at or above its depth).

        Returns
        -------
        dimage : ndarray (3, H, W), dL/d image.

        Notes
        -----
        The loss depends on the image through a chain x -> a_1 -> a_2 -> ... -> a_n.
        Going backwards, the gradient reaching layer k is its own term dL/da_k (when
        given) plus what flows down from above; each op's backward then maps it to
        its input (:mod:`scratchnst.layers`). Layers above the deepest given
        gradient contribute nothing and are skipped.
        """
        if self._caches is None:
            raise ScratchNSTError("backward called before any forward pass")
        if not grads:
            raise ScratchNSTError("backward needs the gradient of at least one layer")
        self.check_layers(grads)
        computed = [step[0] for step in self._caches]
        missing = [name for name in grads if name not in computed]
        if missing:
            raise ScratchNSTError(
                f"no activation for {', '.join(missing)} in the last forward pass "
                f"(it stopped at {computed[-1]}); request it in forward()"
            )
        depth = max(computed.index(name) for name in grads)
        d = None
        owned = False  # may d be overwritten? Not while it is the caller's own array.
        for name, backward, cache, shape in reversed(self._caches[: depth + 1]):
            if name in grads:
                g = self.xp.asarray(grads[name], dtype=self.dtype)
                if g.shape != shape:
                    raise ScratchNSTError(f"gradient for {name} has shape {g.shape}, expected {shape}")
                d, owned = (g, False) if d is None else (d + g, True)
            if backward is fastconv.relu_backward:
                d = backward(d, cache, inplace=owned)
            else:
                d = backward(d, cache)
            owned = True  # every backward returns an array of its own
        return d


def load_vgg19(weights=None, *, dtype="float32", backend="numpy", pooling="max", conv=DEFAULT_CONV):
    """Build VGG19 from a weights file in scratchnst's HDF5 layout.

    Parameters
    ----------
    weights : path or None
        None: ``$SCRATCHNST_WEIGHTS`` if set, else the bundled ``weights/vgg19.h5``.
    dtype : "float32" (stylization) or "float64" (gradient and parity checks)
    backend : "numpy" or "cupy"
    pooling : "max" (VGG's own) or "avg" (Gatys et al.'s choice for synthesis)
    conv : name of a convolution algorithm in ``CONV_ALGORITHMS``: ``"im2col"`` for
        the reference ops of :mod:`scratchnst.layers` throughout, or a fast one
        (default ``DEFAULT_CONV``) with :mod:`scratchnst.fastconv`'s ReLU and pooling.
    """
    if str(dtype) not in ("float32", "float64"):
        raise ScratchNSTError(f"dtype must be float32 or float64, got {dtype!r}")
    if pooling not in POOLING:
        raise ScratchNSTError(f"pooling must be one of {POOLING}, got {pooling!r}")
    get_xp(backend)  # fail early, with a clear message, before reading weights
    params, prep, attrs = load_weights(weights)
    return VGG19(params, prep, dtype=dtype, backend=backend, pooling=pooling, conv=conv, attrs=attrs)
