"""Receptive fields against the backward pass, top patches against direct forwards,
activation maximisation and reconstruction against their starting points, and the
``visualize`` command's figures and one-line errors."""

import numpy as np
import pytest
from PIL import Image

import scratchnst
from scratchnst import cli
from scratchnst.errors import ScratchNSTError
from scratchnst.files.images import bundled_image, load_image
from scratchnst.inside.figures import save_figure
from scratchnst.inside.patches import top_patches
from scratchnst.inside.receptive_fields import receptive_field_box, receptive_fields
from scratchnst.inside.synthesis import (
    gaussian_blur,
    layer_channels,
    maximize_unit,
    noise_image,
    reconstruct,
    unit_activation,
)
from scratchnst.network.architecture import CONV_CHANNELS, LAYERS
from scratchnst.network.preprocessing import Preprocessing
from scratchnst.network.vgg import VGG19


@pytest.fixture(scope="module")
def net():
    return scratchnst.load_vgg19()


@pytest.fixture(scope="module")
def positive_net():
    """VGG19 whose every path from input to unit carries a positive gradient.

    Positive kernels and biases on a positive input keep every ReLU on, and average
    pooling spreads the gradient over its whole window (max pooling would send it
    to one pixel of four), so dL/dx is nonzero exactly where the unit can see.
    The receptive field geometry is the same for both poolings.
    """
    rng = np.random.default_rng(0)
    params = {
        name: (rng.uniform(0.5, 1.5, (o, c, 3, 3)) / (c * 9), rng.uniform(0.1, 1.0, o))
        for name, (o, c) in CONV_CHANNELS.items()
    }
    prep = Preprocessing("RGB", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return VGG19(params, prep, dtype="float64", pooling="avg")


# ------------------------------------------------------------------ receptive fields


def test_receptive_field_table_pins_known_sizes():
    rf = receptive_fields()
    assert list(rf) == list(LAYERS)
    expected = {"relu1_1": (3, 1), "relu1_2": (5, 1), "pool1": (6, 2), "relu2_1": (10, 2), "pool2": (16, 4),
                "relu3_1": (24, 4), "pool3": (52, 8), "relu4_1": (68, 8), "relu4_2": (84, 8),
                "relu5_1": (156, 16), "pool5": (268, 32)}
    for name, (size, jump) in expected.items():
        assert (rf[name].size, rf[name].jump) == (size, jump), name


@pytest.mark.parametrize("layer, size", [("relu1_1", 12), ("relu1_2", 12), ("pool1", 16), ("relu2_1", 20),
                                         ("relu2_2", 24), ("pool2", 28), ("relu3_1", 40), ("relu3_2", 48)])
def test_receptive_field_is_the_support_of_the_input_gradient(positive_net, layer, size):
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 1.0, (3, size, size))
    a = positive_net.forward(x, [layer])[layer]
    h, w = a.shape[1:]
    # An interior unit (its whole field inside the image), a corner and an edge unit (clipped fields).
    for i, j in [(h // 2, w // 2), (0, 0), (h - 1, w // 3)]:
        g = np.zeros_like(a)
        g[a.shape[0] // 2, i, j] = 1.0
        dx = positive_net.backward({layer: g})
        rows, cols = np.nonzero(np.abs(dx).sum(axis=0))
        support = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
        assert support == receptive_field_box(layer, i, j, (size, size)), (layer, i, j)
        y0, y1, x0, x1 = support
        assert np.all(np.abs(dx).sum(axis=0)[y0:y1, x0:x1] > 0), "the field has holes"
        assert len(rows) == (y1 - y0) * (x1 - x0)


def test_receptive_field_of_relu4_1_is_the_gradient_support(positive_net):
    x = np.random.default_rng(2).uniform(0.5, 1.0, (3, 96, 96))
    a = positive_net.forward(x, ["relu4_1"])["relu4_1"]
    g = np.zeros_like(a)
    g[0, 6, 5] = 1.0
    rows, cols = np.nonzero(np.abs(positive_net.backward({"relu4_1": g})).sum(axis=0))
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == receptive_field_box("relu4_1", 6, 5, (96, 96))


def test_receptive_field_box_clips_at_borders():
    assert receptive_field_box("relu3_1", 0, 0, (64, 64)) == (0, 14, 0, 14)  # offset -10, size 24
    assert receptive_field_box("relu3_1", 15, 15, (64, 64)) == (50, 64, 50, 64)
    assert receptive_field_box("relu3_1", 8, 8, (64, 64)) == (22, 46, 22, 46)


# ------------------------------------------------------------------ top patches


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for name in ("astronaut", "chelsea", "great_wave"):
        Image.fromarray(load_image(bundled_image(name), long_side=64)).save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.parametrize("layer, unit", [("relu2_1", 5), ("relu3_1", 17)])
def test_top_patch_is_the_maximum_and_its_crop_holds_all_the_unit_sees(net, image_folder, layer, unit):
    patches = top_patches(net, layer, unit, image_folder, k=4, per_image=2, long_side=64)
    assert [p.score for p in patches] == sorted((p.score for p in patches), reverse=True)
    best = patches[0]
    # Independently: forward every image and find the unit's maximum.
    maxima = {}
    for path in sorted(image_folder.glob("*.png")):
        img = load_image(path)
        m = net.forward(net.preprocess(img), [layer])[layer][unit]
        maxima[path.name] = (float(m.max()), np.unravel_index(int(m.argmax()), m.shape), img)
    name = max(maxima, key=lambda n: maxima[n][0])
    score, (i, j), img = maxima[name]
    assert best.source == name and best.position == (i, j)
    assert best.score == pytest.approx(score, rel=1e-6)
    y0, y1, x0, x1 = best.box
    np.testing.assert_array_equal(best.crop, img[y0:y1, x0:x1])
    # Everything outside the crop is irrelevant: replace it by noise and the unit does not change.
    noisy = np.random.default_rng(3).integers(0, 256, img.shape, dtype=np.uint8)
    noisy[y0:y1, x0:x1] = best.crop
    again = float(net.forward(net.preprocess(noisy), [layer])[layer][unit, i, j])
    assert again == pytest.approx(best.score, rel=1e-4)
    # ... while noise inside it does change the unit (the crop is not too big to mean anything).
    noisy[y0:y1, x0:x1] = 255 - best.crop
    assert float(net.forward(net.preprocess(noisy), [layer])[layer][unit, i, j]) != pytest.approx(best.score, rel=1e-2)


def test_top_patches_bad_input(net, tmp_path):
    with pytest.raises(ScratchNSTError, match="out of range"):
        top_patches(net, "relu1_1", 64, tmp_path)
    with pytest.raises(ScratchNSTError, match="no images"):
        top_patches(net, "relu1_1", 0, tmp_path)
    with pytest.raises(ScratchNSTError, match="not found"):
        top_patches(net, "relu1_1", 0, tmp_path / "missing")


# ------------------------------------------------------------------ synthesis


def test_layer_channels():
    assert [layer_channels(n) for n in ("conv1_1", "relu2_2", "pool3", "relu4_2", "pool5")] == [64, 128, 256, 512, 512]


def test_gaussian_blur_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = np.random.default_rng(4).standard_normal((3, 20, 17))
    ours = gaussian_blur(x, 1.3)
    ref = np.stack([ndimage.gaussian_filter(c, 1.3, mode="mirror", truncate=3.0) for c in x])
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert not np.allclose(gaussian_blur(x, 2.0), ref)


def test_maximize_unit_raises_the_activation_by_a_large_factor(net):
    start = unit_activation(net, noise_image(net, (32, 32)), "relu3_1", 1)
    x, history = maximize_unit(net, "relu3_1", 1, size=32, steps=15)
    final = unit_activation(net, x, "relu3_1", 1)
    assert final > 20 * max(start, 1.0), (start, final)
    lo, hi = net.prep.pixel_bounds()
    assert np.all(x >= lo[:, None, None] - 1e-4) and np.all(x <= hi[:, None, None] + 1e-4)
    assert history[-1] > history[0]


def test_maximize_centre_unit_of_relu1_1_is_its_kernel_sign_pattern(net):
    # conv1_1 is linear in x, so the best box-bounded input for one unit puts each pixel
    # of its 3x3 window at the bound the kernel's sign points to.
    x, _ = maximize_unit(net, "relu1_1", 7, size=9, steps=60, where="centre", jitter=0, blur_sigma=0, decay=0)
    k = net.params["conv1_1"][0][7]  # (3, 3, 3)
    lo, hi = net.prep.pixel_bounds()
    window = x[:, 3:6, 3:6]
    expect = np.where(k > 0, hi[:, None, None], lo[:, None, None])
    strong = np.abs(k) > 0.05 * np.abs(k).max()
    np.testing.assert_allclose(window[strong], expect[strong], atol=1.0)


def test_reconstruction_from_relu1_1_gets_close_to_the_original(net):
    img = load_image(bundled_image("chelsea"), long_side=32)
    x, history = reconstruct(net, net.preprocess(img), "relu1_1", steps=50)
    assert history[-1] < history[0] / 1e3  # the loss falls by more than a factor 1000
    err = np.abs(net.deprocess(x).astype(float) - img).mean()
    start_err = np.abs(net.deprocess(noise_image(net, img.shape[:2])).astype(float) - img).mean()
    assert err < 6 and err < start_err / 5, (err, start_err)


def test_texture_synthesis_reduces_the_gram_loss(net):
    img = load_image(bundled_image("starry_night"), long_side=32)
    _, history = reconstruct(net, net.preprocess(img), "relu1_2", style=True, steps=12)
    assert history[-1] < history[0] / 100


# ------------------------------------------------------------------ command line


def _run(argv, capsys):
    code = cli.main(argv)
    return code, capsys.readouterr()


def _is_png(path):
    with Image.open(path) as im:
        return im.format == "PNG" and im.size[0] > 100


def test_cli_writes_figures(tmp_path, image_folder, capsys):
    out = tmp_path / "features.png"
    assert _run(["visualize", "features", "astronaut", "--layer", "relu2_1", "--size", "64", "-n", "5",
                 "-o", str(out)], capsys)[0] == 0
    assert _is_png(out)
    out = tmp_path / "patches.png"
    assert _run(["visualize", "patches", "--layer", "relu2_1", "--unit", "3", "--images", str(image_folder),
                 "--size", "64", "-k", "4", "-o", str(out)], capsys)[0] == 0
    assert _is_png(out)
    out = tmp_path / "max.png"
    assert _run(["visualize", "maximize", "--layer", "relu1_2", "--units", "0", "1", "--size", "16", "--steps", "5",
                 "--where", "centre", "-o", str(out)], capsys)[0] == 0
    assert _is_png(out)
    out = tmp_path / "rec.png"
    assert _run(["visualize", "reconstruct", "chelsea", "--layers", "relu1_1", "--size", "24", "--steps", "3",
                 "--style", "-o", str(out)], capsys)[0] == 0
    assert _is_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.png", "max.png", "patches.png", "rec.png"]


@pytest.mark.parametrize("argv, message", [
    (["features", "astronaut", "--layer", "relu9_1"], "unknown VGG19 layer"),
    (["features", "astronaut", "--layer", "relu1_1", "--channels", "64"], "out of range"),
    (["features", "no_such_image.png", "--layer", "relu1_1"], "no image file"),
    (["patches", "--layer", "relu4_1", "--unit", "512"], "out of range"),
    (["patches", "--layer", "relu4_1", "--unit", "-1"], "out of range"),
    (["patches", "--layer", "relu4_1", "--unit", "3", "--images", "/no/such/folder"], "image folder not found"),
    (["maximize", "--layer", "pool9", "--units", "0"], "unknown VGG19 layer"),
    (["maximize", "--layer", "relu2_1", "--units", "0", "128"], "out of range"),
    (["reconstruct", "astronaut", "--layers", "relu1_1", "fc7"], "unknown VGG19 layer"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "out.png"
    code, captured = _run(["visualize", *argv, "-o", str(out)], capsys)
    assert code == 2
    assert message in captured.err and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert not out.exists() and list(tmp_path.iterdir()) == []

MAXIMIZE = ["maximize", "--layer", "relu1_1", "--units", "0", "--size", "16", "--steps", "2"]
RECONSTRUCT = ["reconstruct", "chelsea", "--layers", "relu1_1"]


@pytest.mark.parametrize("argv, message", [
    pytest.param([*MAXIMIZE, "--jitter", "-5"], "--jitter", id="maximize --jitter -5"),
    pytest.param([*MAXIMIZE, "--lr", "nan"], "--lr", id="maximize --lr nan"),
    pytest.param([*MAXIMIZE, "--lr", "inf"], "--lr", id="maximize --lr inf"),
    pytest.param([*MAXIMIZE, "--lr", "0"], "--lr", id="maximize --lr 0"),
    pytest.param([*MAXIMIZE, "--lr", "-1"], "--lr", id="maximize --lr -1"),
    pytest.param([*MAXIMIZE, "--steps", "0"], "--steps", id="maximize --steps 0"),
    pytest.param([*MAXIMIZE, "--steps", "-3"], "--steps", id="maximize --steps -3"),
    pytest.param([*MAXIMIZE, "--blur", "nan"], "--blur", id="maximize --blur nan"),
    pytest.param([*MAXIMIZE, "--blur", "-1"], "--blur", id="maximize --blur -1"),
    pytest.param([*MAXIMIZE, "--decay", "nan"], "--decay", id="maximize --decay nan"),
    pytest.param([*MAXIMIZE, "--decay", "-0.5"], "--decay", id="maximize --decay -0.5"),
    pytest.param([*MAXIMIZE, "--decay", "1"], "--decay", id="maximize --decay 1"),
    pytest.param([*MAXIMIZE, "--tv", "nan"], "--tv", id="maximize --tv nan"),
    pytest.param([*MAXIMIZE, "--tv", "-2"], "--tv", id="maximize --tv -2"),
    pytest.param([*MAXIMIZE, "--tv", "inf"], "--tv", id="maximize --tv inf"),
    pytest.param([*MAXIMIZE, "--seed", "-1"], "--seed", id="maximize --seed -1"),
    pytest.param([*MAXIMIZE, "--size", "100000"], "--size", id="maximize --size 100000"),
    pytest.param([*RECONSTRUCT, "--size", "16", "--steps", "0"], "--steps", id="reconstruct --steps 0"),
    pytest.param([*RECONSTRUCT, "--size", "100000"], "--size", id="reconstruct --size 100000"),
    pytest.param(["features", "chelsea", "--layer", "relu1_1", "--size", "100000"], "--size",
                 id="features --size 100000"),
    pytest.param(["patches", "--layer", "relu1_1", "--unit", "0", "--size", "100000"], "--size",
                 id="patches --size 100000"),
])
def test_cli_bad_numbers_are_one_line_exit_2(tmp_path, capsys, argv, message):
    """Every numeric option is checked, finite and in range, before any work: no traceback, no garbage."""
    out = tmp_path / "out.png"
    code, captured = _run(["visualize", *argv, "-o", str(out)], capsys)
    assert code == 2, captured
    assert message in captured.err and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "Warning" not in captured.err
    assert not out.exists() and list(tmp_path.iterdir()) == []



@pytest.mark.parametrize("output, message", [
    ("missing_dir/out.png", "does not exist"),
    ("out.xyz", "unknown figure extension"),
    ("a_file/out.png", "does not exist"),
])
def test_cli_unwritable_output(tmp_path, capsys, output, message):
    (tmp_path / "a_file").write_text("x")
    code, captured = _run(["visualize", "features", "astronaut", "--layer", "relu1_1", "-o", str(tmp_path / output)],
                          capsys)
    assert code == 2 and message in captured.err and captured.err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_save_figure_leaves_no_partial_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    fig = Figure()
    out = tmp_path / "fig.png"
    out.write_bytes(b"old")

    def broken_savefig(path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a png")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fig, "savefig", broken_savefig)
    with pytest.raises(ScratchNSTError, match="No space left"):
        save_figure(fig, out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]
