"""Finite-difference checks of every cost in scratchnst.losses, and of the presets' constants.

Each check prints its relative error (``pytest -s``) and keeps it in the assertion
message. Inputs are random, non-degenerate and float64; the floor is 1e-7.
"""

import numpy as np
import pytest
from helpers import report  # tests/ is on sys.path (pytest rootdir conftest)

from scratchnst.backend import to_float, to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.method.costs import content_cost, gram, gram_backward, style_cost, style_layer_cost, tv_cost
from scratchnst.method.presets import PRESETS, explain, get_preset
from scratchnst.network.gradcheck import check_directional, numerical_grad, numerical_vjp, rel_error

# The xp fixture (numpy, and cupy where a GPU is present) is in conftest.py.


def draw(xp, *shape, seed=0, scale=1.0):
    """Random normal float64 values drawn on the host, so every backend sees the same numbers."""
    return xp.asarray(scale * np.random.default_rng(seed).standard_normal(shape))



# ----------------------------------------------------------------------- gradients


def test_gram_backward(xp):
    F = draw(xp, 5, 7, seed=1)
    dG = draw(xp, 5, 5, seed=2)  # deliberately not symmetric: both terms of (dG + dG^T) F count
    G = gram(F)
    np.testing.assert_allclose(to_numpy(G), to_numpy(G).T, rtol=1e-12)
    num = numerical_vjp(gram, F, dG)
    report("gram backward", rel_error(gram_backward(dG, F), num))


def test_content_cost(xp):
    a, p = draw(xp, 4, 3, 5, seed=3), draw(xp, 4, 3, 5, seed=4)
    k = 0.37
    J, da = content_cost(a, p, k)
    assert abs(to_float(J) - k * float(np.sum((to_numpy(a) - to_numpy(p)) ** 2))) < 1e-12 * to_float(J)
    num = numerical_grad(lambda z: content_cost(z, p, k)[0], a)
    report("content_cost", rel_error(da, num))
    J2, none = content_cost(a, p, k, grad=False)
    assert none is None and to_float(J2) == to_float(J)


def test_style_layer_cost(xp):
    a = draw(xp, 4, 3, 5, seed=5)
    A = gram(draw(xp, 4, 15, seed=6))  # a real (symmetric) target Gram
    k = 1.0 / (4 * 4**2 * 15**2)
    J, da = style_layer_cost(a, A, k)
    num = numerical_grad(lambda z: style_layer_cost(z, A, k)[0], a)
    report("style_layer_cost", rel_error(da, num))
    # the closed form 4 k (G - A) F of the docstring
    F = a.reshape(4, 15)
    closed = (4 * k * (gram(F) - A) @ F).reshape(a.shape)
    report("style_layer_cost vs 4k(G-A)F", rel_error(da, closed), 1e-12)


def test_style_cost_several_layers(xp):
    shapes = {"relu1_1": (3, 6, 5), "relu2_1": (5, 3, 4), "relu3_1": (7, 2, 2)}
    acts = {n: draw(xp, *s, seed=10 + i) for i, (n, s) in enumerate(shapes.items())}
    targets = {n: gram(draw(xp, s[0], 9, seed=20 + i)) for i, (n, s) in enumerate(shapes.items())}
    ks = {n: 0.2 / (4 * s[0] ** 2 * (s[1] * s[2]) ** 2) for n, s in shapes.items()}
    J, das = style_cost(acts, targets, ks)
    total = sum(to_float(style_layer_cost(acts[n], targets[n], ks[n])[0]) for n in shapes)
    assert abs(to_float(J) - total) <= 1e-14 * total
    for n in shapes:
        def f(z, n=n):
            return style_cost({**acts, n: z}, targets, ks)[0]

        report(f"style_cost d/d {n}", rel_error(das[n], numerical_grad(f, acts[n])))


def test_tv_cost(xp):
    x = draw(xp, 3, 6, 5, seed=7, scale=10.0)
    J, dx = tv_cost(x)
    # naive loops over neighbouring pairs, the definition in the docstring
    xn = to_numpy(x)
    naive = 0.0
    for c in range(3):
        for i in range(6):
            for j in range(5):
                if i + 1 < 6:
                    naive += (xn[c, i + 1, j] - xn[c, i, j]) ** 2
                if j + 1 < 5:
                    naive += (xn[c, i, j + 1] - xn[c, i, j]) ** 2
    assert abs(to_float(J) - naive) <= 1e-12 * naive
    report("tv_cost", rel_error(dx, numerical_grad(lambda z: tv_cost(z)[0], x)))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_gradient(xp, preset):
    """Content + style of one preset (its alpha, beta, k and w_l) against finite differences."""
    p = get_preset(preset)
    shapes = {"c": (6, 4, 3), "s1": (3, 6, 5), "s2": (6, 4, 3)}
    acts = {n: draw(xp, *s, seed=30 + i, scale=3.0) for i, (n, s) in enumerate(shapes.items())}
    P = draw(xp, *shapes["c"], seed=40)
    A = {n: gram(draw(xp, shapes[n][0], 12, seed=41 + i)) for i, n in enumerate(("s1", "s2"))}
    kc = p.content_k(6, 12)
    ks = {n: p.layer_weight(2) * p.style_k(shapes[n][0], shapes[n][1] * shapes[n][2]) for n in A}

    # Content and style depend on different activations, so each is checked on its
    # own: a finite difference of their sum would drown the small content term in
    # the rounding error of the style term (beta = 1e6 for pytorch-tutorial).
    def content(x_c, grad=False):
        Jc, dc = content_cost(x_c, P, kc, grad)
        return p.alpha * Jc, dc

    def style(x_s1, x_s2, grad=False):
        Js, ds = style_cost({"s1": x_s1, "s2": x_s2}, A, ks, grad)
        return p.beta * Js, ds

    dc = content(acts["c"], grad=True)[1]
    report(f"{preset} content", rel_error(p.alpha * dc, numerical_grad(lambda z: content(z)[0], acts["c"])))
    ds = style(acts["s1"], acts["s2"], grad=True)[1]
    report(f"{preset} style d/d s1", rel_error(
        p.beta * ds["s1"], numerical_grad(lambda z: style(z, acts["s2"])[0], acts["s1"])))
    report(f"{preset} style d/d s2", rel_error(
        p.beta * ds["s2"], numerical_grad(lambda z: style(acts["s1"], z)[0], acts["s2"])))


# ------------------------------------------------------------ presets against their sources


def test_presets_match_their_sources():
    """Each preset's constant times the raw sum of squares equals the source's own formula."""
    rng = np.random.default_rng(8)
    C, h, w = 6, 5, 4
    M = h * w
    a, p = rng.standard_normal((C, h, w)), rng.standard_normal((C, h, w))
    F, S = a.reshape(C, M), rng.standard_normal((C, M))
    G, A = F @ F.T, S @ S.T
    raw_c, raw_s = np.sum((a - p) ** 2), np.sum((G - A) ** 2)
    mse = lambda u, v: np.mean((u - v) ** 2)  # noqa: E731  # torch's MSECriterion / mse_loss
    expected = {
        "gatys": (0.5 * raw_c, 0.2 / (4 * C**2 * M**2) * raw_s),
        "course": (raw_c / (4 * h * w * C), 0.2 * raw_s / (4 * C**2 * (h * w) ** 2)),
        "jcjohnson": (mse(a, p), mse(G / (C * h * w), A / (C * h * w))),
        "pytorch-tutorial": (mse(a, p), mse(G / (1 * C * h * w), A / (1 * C * h * w))),
    }
    for name, (content, style) in expected.items():
        pr = PRESETS[name]
        w_l = pr.layer_weight(5)
        got_c = pr.content_k(C, M) * raw_c
        got_s = w_l * pr.style_k(C, M) * raw_s
        print(f"\n  {name}: content {got_c:.6e} vs {content:.6e}, style {got_s:.6e} vs {style:.6e}")
        assert got_c == pytest.approx(content, rel=1e-12), name
        assert got_s == pytest.approx(style, rel=1e-12), name
    assert (PRESETS["jcjohnson"].alpha, PRESETS["jcjohnson"].beta) == (5.0, 100.0)
    assert (PRESETS["pytorch-tutorial"].alpha, PRESETS["pytorch-tutorial"].beta) == (1.0, 1e6)
    assert (PRESETS["course"].alpha, PRESETS["course"].beta) == (10.0, 40.0)
    # gatys: the paper's ratio 1e-3 on the weights as trained; 5e7, chosen by looking, on the normalised network
    # (benchmarks/README.md, "Gatys' normalised network")
    assert (PRESETS["gatys"].alpha, PRESETS["gatys"].beta, PRESETS["gatys"].beta_other_network) == (1.0, 5e7, 1e3)
    assert PRESETS["gatys"].normalized and not PRESETS["jcjohnson"].normalized


def test_explain(capsys):
    shapes = {"relu4_2": (512, 6, 5), "relu1_1": (64, 48, 40), "relu5_1": (512, 3, 2)}
    out = explain("gatys", shapes, style_layers=("relu1_1", "relu5_1"))
    assert out["content"]["relu4_2"] == 0.5
    assert out["style"]["relu1_1"] == pytest.approx(5e7 * 0.5 / (4 * 64**2 * (48 * 40) ** 2))  # beta w_l k_l
    printed = capsys.readouterr().out
    assert "relu5_1" in printed and "gatys" in printed
    quiet = explain("jcjohnson", shapes, style_layers=("relu1_1",), show=False)
    assert quiet["content"]["relu4_2"] == pytest.approx(5.0 / (512 * 30))
    assert capsys.readouterr().out == ""
    with pytest.raises(ScratchNSTError, match="unknown normalization"):
        explain("nope", shapes)


# ------------------------------------------------------------------- negative tests


def test_wrong_gradients_are_caught():
    """The checks above can fail: plausible wrong derivations give large errors."""
    rng = np.random.default_rng(9)
    F, dG = rng.standard_normal((5, 7)), rng.standard_normal((5, 5))
    num = numerical_vjp(gram, F, dG)
    err_one_term = rel_error(dG @ F, num)  # forgets that F appears twice
    print(f"\n  gram backward without dG^T: relative error {err_one_term:.2e}")
    assert err_one_term > 1e-2

    a = rng.standard_normal((4, 3, 5))
    A = gram(rng.standard_normal((4, 15)))
    k = 0.01
    J, da = style_layer_cost(a, A, k)
    F = a.reshape(4, 15)
    wrong = (2 * k * (gram(F) - A) @ F).reshape(a.shape)  # the factor 2 from G lost
    num = numerical_grad(lambda z: style_layer_cost(z, A, k)[0], a)
    err = rel_error(wrong, num)
    print(f"  style gradient with 2k instead of 4k: relative error {err:.2e}")
    assert err > 1e-1
    x = rng.standard_normal((3, 5, 4))
    err_dir, _, _ = check_directional(lambda z: tv_cost(z)[0], x, tv_cost(x)[1] * 1.001)
    print(f"  tv gradient off by 0.1%: directional relative error {err_dir:.2e}")
    assert err_dir > 1e-4


def test_wrong_content_gradients_are_caught():
    """content_cost's checks can fail too: the 2 from the square forgotten, or the sign turned."""
    rng = np.random.default_rng(10)
    a, p = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 3, 5))
    k = 0.37
    num = numerical_grad(lambda z: content_cost(z, p, k)[0], a)
    assert rel_error(content_cost(a, p, k)[1], num) < 1e-7
    for what, wrong in [("k (a - p), no 2", k * (a - p)), ("2 k (p - a), sign turned", 2 * k * (p - a))]:
        err = rel_error(wrong, num)
        print(f"\n  content gradient {what}: relative error {err:.2e}")
        assert err > 1e-1


def test_shape_errors():
    with pytest.raises(ScratchNSTError, match="content_cost"):
        content_cost(np.zeros((2, 3, 3)), np.zeros((2, 3, 4)), 1.0)
    with pytest.raises(ScratchNSTError, match="style_layer_cost"):
        style_layer_cost(np.zeros((2, 3, 3)), np.zeros((3, 3)), 1.0)
