"""VGG19 (Simonyan and Zisserman 2014) as a chain of the ops in :mod:`scratchnst.network.layers`.

Only the convolutional part ("features") is here: the 16 3x3 convolutions, each
followed by a ReLU, and five 2x2 pools. Style transfer reads activations from it
and never needs the classifier.

    net = scratchnst.load_vgg19()             # bundled weights, float32, NumPy
    acts = net.forward(x, ["relu4_2"])        # x (3, H, W) -> {"relu4_2": (512, H/8, W/8)}
    dx = net.backward({"relu4_2": dL_da})     # -> dL/dx, (3, H, W)

The forward pass stops at the deepest requested layer and keeps each op's cache;
the backward pass walks those caches in reverse, adding in the gradient given for
each activation as it passes that layer.
"""

from collections.abc import Callable
from typing import NamedTuple

from scratchnst.backend import get_xp
from scratchnst.errors import ScratchNSTError
from scratchnst.network import layers as reference
from scratchnst.network.architecture import KIND, LAYERS, check_layers, depth
from scratchnst.network.fast import gemm, relu_pool, winograd
from scratchnst.network.preprocessing import check_input_image

POOLING = ("max", "avg")

# Convolution algorithms: name -> (forward(x, w, b, pad) -> (out, cache), backward_input(dout, cache) -> dx).
# "im2col" is the readable reference of scratchnst.network.layers, and a network built
# with it uses the reference ReLU and pooling too. The others are the fast
# convolutions of scratchnst.network.fast, run with its in-place ReLU and compact
# caches; tests/test_fastconv.py and tests/test_winograd.py check each against the reference.
CONV_ALGORITHMS = {
    "im2col": (reference.conv2d_forward, reference.conv2d_backward_input),
    "gemm": (gemm.conv2d_forward, gemm.conv2d_backward_input),
    "winograd": (winograd.conv2d_forward, winograd.conv2d_backward_input),  # F(4x4, 3x3)
    "winograd2": (winograd.conv2d_forward_f2, winograd.conv2d_backward_input_f2),  # F(2x2, 3x3)
}
REFERENCE_CONV = "im2col"
DEFAULT_CONV = "winograd"  # the fastest that passes the tests (benchmarks/README.md, "Winograd: F(4x4) or F(2x2)")


class Step(NamedTuple):
    """One layer of the last forward pass, as the backward pass needs it."""

    name: str
    backward: Callable  # backward(dout, cache) -> dx, or (dout, cache, inplace) when ``overwrites``
    cache: object
    shape: tuple  # of the layer's output
    overwrites: bool  # backward may overwrite dout in place (the fast ReLU's), saving a copy


class VGG19:
    """The VGG19 feature extractor with a hand-written backward pass.

    Build one with :func:`scratchnst.load_vgg19`, which reads a weights file, or
    directly from ``params`` ({conv name: (kernel (O, C, 3, 3), bias (O,))}) and a
    :class:`~scratchnst.network.preprocessing.Preprocessing`. Attributes: ``xp``
    (numpy or cupy), ``dtype``, ``pooling`` ("max" or "avg", may be changed between
    passes), ``prep``, ``params`` (on the backend), ``conv`` (the algorithm's name).

    The network holds the caches of the last forward pass, and nothing else
    between calls: run it on the content, the style and the generated image in any
    order, but call :meth:`backward` right after the forward whose gradient you need.

    Aliasing contract (what may share memory with what):

    * The activations :meth:`forward` returns are the network's own arrays. The
      fast algorithms run a ReLU in place over its convolution's fresh output, so
      a ``convX_Y`` activation is kept intact only when it is itself requested;
      copy an activation before changing it, and before the next forward if you
      keep it.
    * :meth:`backward` never modifies the gradients it is given. It overwrites only
      arrays it made itself (``Step.overwrites``), and returns a new array.
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
        self._steps = None  # [Step] of the last forward pass

    # ------------------------------------------------------------------ helpers
    def preprocess(self, rgb):
        """RGB uint8 (H, W, 3) -> network input (3, H, W) on this backend and dtype."""
        return self.prep.to_input(rgb, self.dtype, self.xp)

    def deprocess(self, x):
        """Network input (3, H, W) -> RGB uint8 (H, W, 3) on the host."""
        return self.prep.to_rgb(x)

    check_layers = staticmethod(check_layers)  # a one-line error for any name that is not a VGG19 layer

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
        check_layers(layers)
        if self.pooling not in POOLING:
            raise ScratchNSTError(f"pooling must be one of {POOLING}, got {self.pooling!r}")
        x = self.xp.asarray(check_input_image(image), dtype=self.dtype)
        wanted = set(layers)
        acts, steps = {}, []
        for name in LAYERS[: max(depth(n) for n in layers) + 1]:
            if KIND[name] == "pool" and min(x.shape[1:]) < 2:
                raise ScratchNSTError(
                    f"image {tuple(image.shape[1:])} is too small to reach {name}: "
                    f"it is {tuple(x.shape[1:])} there; use a larger image or shallower layers"
                )
            x, step = self._forward_step(name, x, wanted)
            steps.append(step)
            if name in wanted:
                acts[name] = x
        self._steps = steps
        return acts

    def _forward_step(self, name, x, wanted):
        """Run one layer: its output and the :class:`Step` that undoes it."""
        kind, fast = KIND[name], self.conv != REFERENCE_CONV
        overwrites = False
        if kind == "conv":
            k, b = self.params[name]
            out, cache = self.conv_forward(x, k, b, pad=1)
            backward = self.conv_backward_input
        elif kind == "relu" and not fast:
            out, cache = reference.relu_forward(x)
            backward = reference.relu_backward
        elif kind == "relu":
            # x is its convolution's fresh output, held by nobody else unless the
            # caller asked for that conv layer: only then must it survive the ReLU.
            conv_requested = LAYERS[depth(name) - 1] in wanted
            out, cache = (relu_pool.relu_forward if conv_requested else relu_pool.relu_forward_inplace)(x)
            backward, overwrites = relu_pool.relu_backward, True
        elif self.pooling == "max" and fast:
            out, cache = relu_pool.max_pool_forward(x)
            backward = relu_pool.max_pool_backward
        elif self.pooling == "max":
            out, cache = reference.max_pool_forward(x)
            backward = reference.max_pool_backward
        else:
            out, cache = reference.avg_pool_forward(x)
            backward = reference.avg_pool_backward
        return out, Step(name, backward, cache, out.shape, overwrites)

    def last_steps(self):
        """The layers of the last :meth:`forward`, in order, as a tuple of :class:`Step`.

        For reading, not for changing: each ``Step`` (name, backward, cache, shape,
        overwrites) is immutable, the tuple is a copy, and :meth:`backward` keeps using
        its own list. The caches are the network's own arrays (e.g. a max pool's
        ``PoolCache.argmax`` with the reference ops, ``conv="im2col"``): copy one before
        the next forward pass if you keep it. Tutorial 02 reads the pools' winners here,
        and walks these steps in reverse to show what :meth:`backward` does.
        Empty before the first forward pass.
        """
        return tuple(self._steps or ())

    def backward(self, grads):
        """Gradient of a loss with respect to the input image of the last :meth:`forward`.

        Parameters
        ----------
        grads : dict name -> dL/d act, each shaped like that activation. The layers
            must have been computed by the last forward pass (at or above its depth).
            They are read, never modified.

        Returns
        -------
        dimage : ndarray (3, H, W), dL/d image.

        Notes
        -----
        The loss depends on the image through a chain x -> a_1 -> a_2 -> ... -> a_n.
        Going backwards, the gradient reaching layer k is its own term dL/da_k (when
        given) plus what flows down from above; each op's backward then maps it to
        its input (:mod:`scratchnst.network.layers`). Layers above the deepest given
        gradient contribute nothing and are skipped.
        """
        if self._steps is None:
            raise ScratchNSTError("backward called before any forward pass")
        if not grads:
            raise ScratchNSTError("backward needs the gradient of at least one layer")
        check_layers(grads)
        computed = [step.name for step in self._steps]
        missing = [name for name in grads if name not in computed]
        if missing:
            raise ScratchNSTError(
                f"no activation for {', '.join(missing)} in the last forward pass "
                f"(it stopped at {computed[-1]}); request it in forward()"
            )
        d = None
        owned = False  # is d an array this pass made (and so may overwrite)? Not the caller's own.
        for step in reversed(self._steps[: max(computed.index(name) for name in grads) + 1]):
            if step.name in grads:
                g = self.xp.asarray(grads[step.name], dtype=self.dtype)
                if g.shape != step.shape:
                    raise ScratchNSTError(f"gradient for {step.name} has shape {g.shape}, expected {step.shape}")
                d, owned = (g, False) if d is None else (d + g, True)
            d = step.backward(d, step.cache, inplace=owned) if step.overwrites else step.backward(d, step.cache)
            owned = True  # every backward returns an array of its own
        return d
