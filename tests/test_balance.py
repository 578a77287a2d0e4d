"""Each style layer's share of the style loss and of its gradient; ``style_layer_weights="auto"``."""

import numpy as np
import pytest

import scratchnst
from scratchnst.errors import ScratchNSTError
from scratchnst.files.images import bundled_image, load_image
from scratchnst.method.balance import equalize_style_layers, format_shares, style_shares
from scratchnst.method.costs import style_layer_cost
from scratchnst.method.objective import STYLE_LAYERS, Objective
from scratchnst.method.presets import PRESETS
from scratchnst.transfer.settings import Settings


@pytest.fixture(scope="module")
def net():
    return scratchnst.load_vgg19(dtype="float64")


@pytest.fixture(scope="module")
def images(net):
    """Content (3, 32, 48) and a style of another size (3, 40, 27): real pictures, not noise."""
    content = net.preprocess(load_image(bundled_image("chelsea"), long_side=48))
    style = net.preprocess(load_image(bundled_image("the_scream"), long_side=40))
    return content, style


def _spread(terms):
    values = np.array(list(terms.values()))
    return values.max() / values.min()


def test_shares_are_each_layer_alone(net, images):
    """Every layer's loss and gradient norm against an independent forward/backward of that layer only."""
    content, style = images
    obj = Objective(net, content, [style], tv_weight=0.1)
    rng = np.random.default_rng(0)
    x = content + rng.standard_normal(content.shape)
    obj.value(x)
    before = (dict(obj.terms["layers"]["style"]), obj.n_evals)
    shares = style_shares(obj, x)
    assert (obj.terms["layers"]["style"], obj.n_evals) == before  # the objective itself is left alone
    assert list(shares) == list(STYLE_LAYERS)
    for n, s in shares.items():
        acts = net.forward(x, [n])
        J, da = style_layer_cost(acts[n], obj.A[n], obj.k_style[n], True)
        g = net.backward({n: da})
        assert s.loss == pytest.approx(float(J), rel=1e-12)
        assert s.loss == pytest.approx(before[0][n], rel=1e-12)
        assert s.grad_norm == pytest.approx(float(np.linalg.norm(g)), rel=1e-10)
    assert sum(s.loss_share for s in shares.values()) == pytest.approx(1, rel=1e-12)
    assert sum(s.grad_share for s in shares.values()) == pytest.approx(1, rel=1e-12)
    print("\n" + format_shares(shares))


@pytest.mark.parametrize("preset", ["gatys", "jcjohnson"])
def test_auto_weights_equalise_the_style_terms_at_the_content(net, images, preset):
    content, style = images
    given = Objective(net, content, [style], normalization=preset, alpha=None, beta=None)
    auto = Objective(net, content, [style], normalization=preset, alpha=None, beta=None, style_layer_weights="auto")
    assert auto.n_evals == 0 and auto.terms == {}  # equalising probed a copy, not the objective
    given.value(content)
    auto.value(content)
    before, after = _spread(given.terms["layers"]["style"]), _spread(auto.terms["layers"]["style"])
    print(f"\n  {preset}: max/min of the style terms at the content {before:.3g} with the preset's weights, "
          f"{after:.15g} with auto")
    assert before > 10  # the check can fail: the preset's weights leave them far apart
    assert after == pytest.approx(1, abs=1e-10)
    L = len(STYLE_LAYERS)
    assert sum(auto.style_layer_weights.values()) == pytest.approx(PRESETS[preset].layer_weight(L) * L, rel=1e-12)
    # the weights really are the Objective's: k_style carries them
    for n in STYLE_LAYERS:
        assert auto.k_style[n] / auto.style_layer_weights[n] == pytest.approx(
            given.k_style[n] / given.style_layer_weights[n], rel=1e-12)


def test_auto_is_the_only_word(net, images):
    content, style = images
    with pytest.raises(ScratchNSTError, match="numbers or 'auto'"):
        Objective(net, content, [style], style_layer_weights="equal")


class _Flat:
    """An objective whose relu3_1 style term is 0 at the content (a style equal to the content there)."""

    style_layers = STYLE_LAYERS
    style_layer_weights = {n: 0.2 for n in STYLE_LAYERS}
    k_style = {n: 1.0 for n in STYLE_LAYERS}

    def value(self, x):
        self.terms = {"layers": {"style": {n: 0.0 if n == "relu3_1" else 1.0 for n in STYLE_LAYERS}}}


def test_auto_weights_cannot_equalise_a_zero_term():
    with pytest.raises(ScratchNSTError, match="relu3_1 is 0 at the content image, so no weight can equalise it"):
        equalize_style_layers(_Flat(), None)


def test_settings_take_auto():
    Settings(content="chelsea", styles=["starry_night"], style_layer_weights="auto").validate()
    with pytest.raises(ScratchNSTError, match="numbers or auto"):
        Settings(content="chelsea", styles=["starry_night"], style_layer_weights="even").validate()


def test_explain_prints_a_line_per_style_layer(tmp_path, capsys):
    from scratchnst.cli.main import main

    assert main(["stylize", "chelsea", "starry_night", "--size", "32", "--iterations", "0", "--quiet", "--no-plot",
                 "--explain", "--style-layer-weights", "auto", "-o", str(tmp_path / "out.png")]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "style layers at the content image, normalised VGG19, auto weights:" in out
    lines = [line for line in out.splitlines() if line.split()[:1] in ([n] for n in STYLE_LAYERS)
             and "%" in line]
    assert len(lines) == len(STYLE_LAYERS)
    assert all(line.split()[3] == "20.0%" for line in lines)  # equal loss shares, as auto promises
