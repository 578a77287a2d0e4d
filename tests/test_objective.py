"""The Objective: finite differences through a small fake network, validation, and parity
with an independent PyTorch computation on the real VGG19 (tests/data/vgg19_gatys_48x40.npz).
"""

import os

import numpy as np
import pytest
from helpers import report  # tests/ is on sys.path (pytest rootdir conftest)

import scratchnst.network.vgg
from scratchnst.backend import gpu_available, to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.method.costs import gram
from scratchnst.method.objective import Objective
from scratchnst.method.optimize import minimize
from scratchnst.method.presets import PRESETS
from scratchnst.network.gradcheck import check_directional, numerical_grad, rel_error

DATA = os.path.join(os.path.dirname(__file__), "data", "vgg19_gatys_48x40.npz")

# The xp fixture (numpy, and cupy where a GPU is present) is in conftest.py.


class FakeNet:
    """A few layers with VGG's names and API: [2x2 average pool] -> 1x1 conv -> softplus.

    Smooth (softplus, not ReLU) so finite differences never straddle a kink; the
    pools change the spatial size between blocks as VGG's do.
    """

    names = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")
    channels = (4, 5, 6, 6, 7, 5)
    pool_before = (False, True, True, True, False, True)

    def __init__(self, xp=np, dtype="float64", seed=0):
        rng = np.random.default_rng(seed)
        self.xp, self.dtype = xp, xp.dtype(dtype)
        c_in = 3
        self.W, self.b = [], []
        for c in self.channels:
            self.W.append(xp.asarray(rng.standard_normal((c, c_in)) / np.sqrt(c_in), dtype=self.dtype))
            self.b.append(xp.asarray(rng.standard_normal(c) * 0.1, dtype=self.dtype))
            c_in = c
        self.caches = None

    def forward(self, image, layers):
        xp = self.xp
        depth = max(self.names.index(n) for n in layers)
        x, acts, self.caches = xp.asarray(image, dtype=self.dtype), {}, []
        for i in range(depth + 1):
            in_shape = x.shape
            if self.pool_before[i]:
                C, H, W = x.shape
                x = x[:, : H // 2 * 2, : W // 2 * 2].reshape(C, H // 2, 2, W // 2, 2).mean(axis=(2, 4))
            z = xp.einsum("oc,chw->ohw", self.W[i], x) + self.b[i][:, None, None]
            a = xp.logaddexp(0, z)  # softplus
            self.caches.append((in_shape, z))
            if self.names[i] in layers:
                acts[self.names[i]] = a
            x = a
        return acts

    def backward(self, grads):
        xp = self.xp
        depth = max(self.names.index(n) for n in grads)
        d = None
        for i in reversed(range(depth + 1)):
            if self.names[i] in grads:
                d = grads[self.names[i]] if d is None else d + grads[self.names[i]]
            in_shape, z = self.caches[i]
            dz = d / (1 + xp.exp(-z))  # softplus' = sigmoid
            d = xp.einsum("oc,ohw->chw", self.W[i], dz)
            if self.pool_before[i]:
                C, h, w = d.shape
                full = xp.zeros(in_shape, dtype=self.dtype)
                full[:, : 2 * h, : 2 * w] = xp.repeat(xp.repeat(d, 2, axis=1), 2, axis=2) / 4
                d = full
        return d


def images(xp, seed=0, style_sizes=((20, 24), (16, 18))):
    rng = np.random.default_rng(seed)
    content = xp.asarray(rng.uniform(-1, 1, (3, 16, 16)))
    styles = [xp.asarray(rng.uniform(-1, 1, (3, h, w))) for h, w in style_sizes]
    x = xp.asarray(rng.uniform(-1, 1, (3, 16, 16)))
    return content, styles, x



# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("normalization", sorted(PRESETS))
def test_gradient_each_preset(xp, normalization):
    """Two styles of other sizes, blended; content and TV; each preset's own alpha and beta."""
    net = FakeNet(xp)
    content, styles, x = images(xp)
    obj = Objective(net, content, styles, style_blend=[3, 1], alpha=None, beta=None,
                    tv_weight=0.05, normalization=normalization)
    loss, g = obj.value_and_grad(x)
    assert isinstance(loss, float)
    report(f"Objective ({normalization})", rel_error(g, numerical_grad(obj.value, x)))


def test_gradient_overlapping_layers(xp):
    """A layer that is both a content and a style layer gets both gradients."""
    net = FakeNet(xp)
    content, styles, x = images(xp, seed=1)
    obj = Objective(net, content, styles[0], content_layers=("relu2_1", "relu4_2"),
                    style_layers=("relu1_1", "relu2_1", "relu5_1"), style_layer_weights=[1, 2, 0.5],
                    alpha=3.0, beta=1e2)
    _, g = obj.value_and_grad(x)
    report("Objective (overlapping layers)", rel_error(g, numerical_grad(obj.value, x)))


# ------------------------------------------------------------- what it computes


def test_terms_and_targets():
    net = FakeNet()
    content, styles, x = images(np, seed=2)
    obj = Objective(net, content, styles, style_blend=[3, 1], tv_weight=0.5)
    loss, _ = obj.value_and_grad(x)
    t = obj.terms
    assert t["style"] == pytest.approx(sum(t["layers"]["style"].values()), rel=1e-14)
    assert t["content"] == pytest.approx(sum(t["layers"]["content"].values()), rel=1e-14)
    assert obj.style_blend == [0.75, 0.25]

    # the target: blend of per-position Grams, in units of the generated image's Gram
    gen = net.forward(content, obj.style_layers)
    s0, s1 = (net.forward(s, obj.style_layers) for s in styles)
    A = {}
    for n in obj.style_layers:
        C, h, w = gen[n].shape
        per_pos = [gram(s[n].reshape(C, -1)) / (s[n].shape[1] * s[n].shape[2]) for s in (s0, s1)]
        A[n] = (0.75 * per_pos[0] + 0.25 * per_pos[1]) * (h * w)
        np.testing.assert_allclose(obj.A[n], A[n], rtol=1e-13)

    # The loss by hand, from the fake net's activations and none of the Objective's numbers:
    # Gatys' eq. 7 with the gatys preset's constants and defaults, plus TV^2 with the weight given.
    acts = {n: a.copy() for n, a in net.forward(x, obj.layers).items()}
    p = net.forward(content, ["relu4_2"])["relu4_2"]
    content_term = 0.5 * np.sum((acts["relu4_2"] - p) ** 2)
    style_term = 0.0
    for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"):
        N, M = acts[n].shape[0], acts[n].shape[1] * acts[n].shape[2]
        F = acts[n].reshape(N, M)
        style_term += (1 / 5) / (4 * N**2 * M**2) * np.sum((F @ F.T - A[n]) ** 2)
    tv_term = np.sum(np.diff(x, axis=1) ** 2) + np.sum(np.diff(x, axis=2) ** 2)
    total = 1.0 * content_term + 1e3 * style_term + 0.5 * tv_term
    assert t["content"] == pytest.approx(content_term, rel=1e-13)
    assert t["style"] == pytest.approx(style_term, rel=1e-13)
    assert t["tv"] == pytest.approx(tv_term, rel=1e-13)
    assert loss == pytest.approx(total, rel=1e-13)
    assert t["total"] == pytest.approx(total, rel=1e-13)

    assert obj.value(x) == loss
    assert obj.n_evals == 2


def test_one_style_of_the_content_size_is_its_gram():
    net = FakeNet()
    content, (style,), _ = images(np, seed=3, style_sizes=((16, 16),))
    obj = Objective(net, content, style)
    acts = net.forward(style, obj.style_layers)
    for n in obj.style_layers:
        F = acts[n].reshape(acts[n].shape[0], -1)
        np.testing.assert_allclose(obj.A[n], gram(F), rtol=1e-14)


def test_grad_follows_x_dtype():
    net = FakeNet()
    content, styles, x = images(np, seed=4)
    obj = Objective(net, content, styles)
    loss, g = obj.value_and_grad(x.astype(np.float32))
    assert g.dtype == np.float32 and g.shape == x.shape and isinstance(loss, float)


def test_lbfgs_reduces_the_objective():
    net = FakeNet()
    content, styles, x = images(np, seed=5)
    obj = Objective(net, content, styles, tv_weight=0.01)
    first = obj.value(x)
    res = minimize(obj.value_and_grad, x, max_iter=30)
    print(f"\n  fake-net objective: {first:.4e} -> {res.f:.4e} in {res.n_iter} iterations, "
          f"{res.n_evals} evaluations (Objective counted {obj.n_evals - 1})")
    assert res.f < 0.1 * first
    assert obj.n_evals - 1 == res.n_evals


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("kwargs, match", [
    ({"content_layers": ("relu9_9",)}, "unknown content_layers"),
    ({"style_layers": ("relu1_1", "fc7")}, "unknown style_layers"),
    ({"style_layers": ()}, "empty"),
    ({"style_layers": ("relu1_1", "relu1_1")}, "twice"),
    ({"alpha": -1.0}, "alpha"),
    ({"beta": float("nan")}, "beta"),
    ({"tv_weight": float("inf")}, "tv_weight"),
    ({"style_layer_weights": [1, 1]}, "style_layer_weights has 2 entries"),
    ({"style_layer_weights": [1, 1, 1, 1, -1]}, "style_layer_weights"),
    ({"style_blend": [1]}, "style_blend has 1 entries for 2"),
    ({"style_blend": [0, 0]}, "sum to 0"),
    ({"style_blend": [1, "a"]}, "must be a number"),
    ({"normalization": "mine"}, "unknown normalization"),
])
def test_bad_arguments(kwargs, match):
    net = FakeNet()
    content, styles, _ = images(np)
    with pytest.raises(ScratchNSTError, match=match) as e:
        Objective(net, content, styles, **kwargs)
    assert "\n" not in str(e.value)


def test_bad_images():
    net = FakeNet()
    content, styles, x = images(np)
    for bad_content, match in [(content[:2], "content image"), (content.astype(np.uint8), "content image"),
                               (np.full_like(content, np.nan), "NaN")]:
        with pytest.raises(ScratchNSTError, match=match):
            Objective(net, bad_content, styles)
    with pytest.raises(ScratchNSTError, match="style image 1"):
        Objective(net, content, [styles[0], styles[1][None]])
    with pytest.raises(ScratchNSTError, match="too small to reach relu5_1"):
        Objective(net, content, styles[0][:, :8, :8])
    with pytest.raises(ScratchNSTError, match="styles is empty"):
        Objective(net, content, [])
    obj = Objective(net, content, styles)
    with pytest.raises(ScratchNSTError, match="content image's shape"):
        obj.value_and_grad(x[:, :8])


# ------------------------------------------------------------- parity with PyTorch


@pytest.fixture(scope="module")
def vgg64():
    try:
        return scratchnst.load_vgg19(dtype="float64")
    except ScratchNSTError as e:
        pytest.skip(f"VGG19 weights unavailable: {e}")


def test_parity_with_pytorch_reference(vgg64):
    """Gatys loss and gradient on VGG19 (float64) against the independent PyTorch fixture."""
    ref = np.load(DATA)
    obj = Objective(vgg64, ref["content"][0], ref["style"][0], alpha=float(ref["alpha"]), beta=float(ref["beta"]))
    loss, grad = obj.value_and_grad(ref["generated"][0].copy())
    errs = {
        "loss": abs(loss - float(ref["loss"])) / abs(float(ref["loss"])),
        "content_loss": abs(obj.terms["content"] - float(ref["content_loss"])) / abs(float(ref["content_loss"])),
        "style_loss": abs(obj.terms["style"] - float(ref["style_loss"])) / abs(float(ref["style_loss"])),
        "grad": rel_error(grad, ref["grad"][0]),
    }
    for name, err in errs.items():
        report(f"parity {name}", err, tol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("normalization", sorted(PRESETS))
def test_directional_derivative_on_vgg19(vgg64, normalization):
    """Every preset, two blended styles (one larger), TV: <grad, v> against a finite difference.

    h = 1e-4 in pixel units: small enough for 1e-9 truncation error, large enough
    that rounding of a 1e12 loss does not dominate; 1e-3 already crosses ReLU and
    max-pool kinks (2e-4 error) on this image.
    """
    ref = np.load(DATA)
    style2 = np.random.default_rng(0).uniform(-100, 100, (3, 64, 56))
    obj = Objective(vgg64, ref["content"][0], [ref["style"][0], style2], style_blend=[2, 1],
                    alpha=None, beta=None, tv_weight=1e-3, normalization=normalization)
    x = ref["generated"][0].copy()
    _, g = obj.value_and_grad(x)
    err, analytic, numeric = check_directional(obj.value, x, g, seed=1, h=1e-4)
    print(f"\n  VGG19 {normalization}: <g, v> = {analytic:.10e}, finite difference {numeric:.10e}")
    report(f"VGG19 directional ({normalization})", err)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CuPy/CUDA device")
def test_parity_with_pytorch_reference_on_gpu():
    import cupy

    ref = np.load(DATA)
    net = scratchnst.load_vgg19(dtype="float64", backend="cupy")
    obj = Objective(net, cupy.asarray(ref["content"][0]), cupy.asarray(ref["style"][0]))
    loss, grad = obj.value_and_grad(cupy.asarray(ref["generated"][0]))
    assert isinstance(grad, cupy.ndarray)
    report("parity (cupy) loss", abs(loss - float(ref["loss"])) / float(ref["loss"]), tol=1e-9)
    report("parity (cupy) grad", rel_error(to_numpy(grad), ref["grad"][0]), tol=1e-9)
