"""Gatys' normalised VGG19: weights/normalize.py's factors, load_vgg19(normalized=True), and the presets' choice.

The normalised network's every activation must be the original's divided by its
channel's factor (the mechanism, on a small image, with both poolings), and the
factors in the bundled file must make every channel's mean activation 1 on the
calibration set the script names in the file, at its size. Wrong factors in one
channel fail both (the tests below show it).
"""

import importlib.util
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import write_small_weights  # tests/ is on sys.path

import scratchnst
from scratchnst.errors import ScratchNSTError
from scratchnst.files.images import bundled_image, load_image
from scratchnst.files.weights import BUNDLED, FACTORS, load_vgg19, load_weights, normalize_params, read_weights
from scratchnst.method.presets import PRESETS
from scratchnst.network.architecture import CONV_CHANNELS, CONV_LAYERS, LAYERS
from scratchnst.network.vgg import VGG19
from scratchnst.transfer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("normalize_script", ROOT / "weights" / "normalize.py")
normalize = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(normalize)

MECHANISM_TOL = 1e-12  # float64: only rounding separates the two networks
MEAN_TOL = 1e-6


def _one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def weights():
    return read_weights()


@pytest.fixture(scope="module")
def image():
    """A real picture (not noise), small enough for float64 through relu5_4: (3, 32, 48)."""
    return load_image(bundled_image("chelsea"), long_side=48)


def _net(weights, factors=None, pooling="max"):
    params = weights.params if factors is None else normalize_params(weights.params, factors)
    return VGG19(params, weights.prep, dtype="float64", pooling=pooling)


def _worst_mechanism_error(original, normed, factors, x):
    """max over conv, relu and pool layers of ||a_normalised - a / f|| / ||a / f||, and its layer."""
    a, b = original.forward(x, LAYERS), normed.forward(x, LAYERS)
    worst, where, f = 0.0, None, None
    for name in LAYERS:
        f = factors["conv" + name[4:]] if name.startswith("relu") else factors.get(name, f)  # pools keep the last
        expected = a[name] / f[:, None, None]
        err = np.linalg.norm(b[name] - expected) / np.linalg.norm(expected)
        if err > worst:
            worst, where = err, name
    return worst, where


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_normalised_activations_are_the_originals_over_the_factors(weights, image, pooling):
    original = _net(weights, pooling=pooling)
    normed = load_vgg19(dtype="float64", pooling=pooling, normalized=True)
    x = original.preprocess(image)
    err, where = _worst_mechanism_error(original, normed, weights.factors, x)
    print(f"\n  {pooling} pooling: worst relative error {err:.2e} (at {where}) over {len(LAYERS)} layers")
    assert err < MECHANISM_TOL, (err, where)


def test_one_wrong_factor_breaks_the_mechanism(weights, image):
    """The check above can fail: conv3_1's channel 7 divided by a factor 1e-6 off."""
    bad = {c: f.copy() for c, f in weights.factors.items()}
    bad["conv3_1"][7] *= 1 + 1e-6
    original = _net(weights)
    err, where = _worst_mechanism_error(original, _net(weights, bad), weights.factors, original.preprocess(image))
    print(f"\n  one factor 1e-6 off: worst relative error {err:.2e} (at {where})")
    assert err > 100 * MECHANISM_TOL


def _mean_deviation(net, rgbs):
    """max over channels of |mean activation - 1|, for channels whose mean is not exactly 0 (dead), and the count
    of dead ones."""
    means = normalize.channel_means(net, rgbs)
    worst, dead = 0.0, 0
    for c in CONV_LAYERS:
        m = means[c].mean(axis=0)
        dead += int((m == 0).sum())
        worst = max(worst, float(np.abs(m[m != 0] - 1).max(initial=0.0)))
    return worst, dead


def test_the_script_makes_every_mean_one_on_a_small_set(weights):
    """The mechanism on three calibration images at 64 px, factors from the script's own function."""
    rgbs = normalize.load_calibration(normalize.calibration_paths()[:3], size=64)
    factors, dead = normalize.compute_factors(rgbs)
    worst, zero = _mean_deviation(_net(weights, factors), rgbs)
    print(f"\n  3 images at 64 px: max |mean - 1| {worst:.2e}, dead channels {sum(dead.values())}")
    assert worst < 1e-9 and zero == sum(dead.values())
    factors["conv4_2"][11] *= 1 + 1e-6  # and a wrong factor shows
    assert _mean_deviation(_net(weights, factors), rgbs)[0] > 1e-7


@pytest.mark.slow
def test_bundled_factors_make_every_mean_one_on_the_calibration_set():
    """The factors in weights/vgg19.h5 against the images and size its attributes name (~15 s)."""
    with h5py.File(BUNDLED, "r") as f:
        g = f[FACTORS]
        names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["images"]]
        hashes = [h.decode() if isinstance(h, bytes) else h for h in g.attrs["images_sha256"]]
        size = int(g.attrs["long_side"])
    paths = [ROOT / n for n in names]
    assert [normalize._sha256(p) for p in paths] == hashes, "a calibration image changed: rerun weights/normalize.py"
    assert paths == normalize.calibration_paths() and size == normalize.SIZE
    rgbs = normalize.load_calibration(paths, size)
    worst, dead = _mean_deviation(load_vgg19(dtype="float64", normalized=True), rgbs)
    print(f"\n  {len(paths)} images at {size} px: max |mean activation - 1| {worst:.2e} over "
          f"{sum(CONV_CHANNELS[c][0] for c in CONV_LAYERS)} channels, {dead} dead")
    assert worst < MEAN_TOL


# ---------------------------------------------------------------- the file


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """A loadable weights file without factors (VGG19's shapes, all codes 0)."""
    return write_small_weights(tmp_path_factory.mktemp("weights") / "plain.h5")


def test_a_file_without_factors_is_a_one_line_error_only_when_normalised(small_weights):
    assert read_weights(small_weights).factors is None
    load_vgg19(small_weights)  # the original network needs none
    with pytest.raises(ScratchNSTError) as e:
        load_vgg19(small_weights, normalized=True)
    message = _one_line(e)
    assert "no normalisation factors" in message and str(small_weights) in message, message


def _with_factors(src, tmp_path, edit):
    """A copy of ``src`` with ones as factors, then changed by ``edit(group)``."""
    path = tmp_path / "factors.h5"
    shutil.copyfile(src, path)
    with h5py.File(path, "r+") as f:
        g = f.create_group(FACTORS)
        for c in CONV_LAYERS:
            g.create_dataset(c, data=np.ones(CONV_CHANNELS[c][0]))
        edit(f, g)
    return path


def _set(layer, data=None, **dataset):
    def edit(f, g):
        del g[layer]
        g.create_dataset(layer, data=data, **dataset)
    return edit


def _not_a_group(f, g):
    del f[FACTORS]
    f.create_dataset(FACTORS, data=np.ones(3))


HOSTILE_FACTORS = {
    "NaN": (_set("conv2_1", np.r_[np.full(127, 1.0), np.nan]), "conv2_1"),
    "inf": (_set("conv1_1", np.r_[np.inf, np.ones(63)]), "conv1_1"),
    "zero": (_set("conv3_4", np.r_[np.ones(255), 0.0]), "conv3_4"),
    "negative": (_set("conv5_4", -np.ones(512)), "conv5_4"),
    "wrong shape": (_set("conv4_1", np.ones(511)), "conv4_1"),
    "two-dimensional": (_set("conv1_2", np.ones((64, 1))), "conv1_2"),
    "integers": (_set("conv2_2", np.ones(128, np.int64)), "conv2_2"),
    "missing layer": (lambda f, g: g.__delitem__("conv5_1"), "conv5_1"),
    "28 TiB": (_set("conv4_4", shape=(2**43,), dtype=np.float32, chunks=(1024,)), "conv4_4"),
    "not a group": (_not_a_group, FACTORS),
}


@pytest.mark.parametrize("case", list(HOSTILE_FACTORS))
def test_hostile_factors_are_one_line_errors(small_weights, tmp_path, case):
    edit, words = HOSTILE_FACTORS[case]
    path = _with_factors(small_weights, tmp_path, edit)
    assert path.stat().st_size < 30_000_000
    with pytest.raises(ScratchNSTError) as e:
        load_weights(path)  # checked whenever present, even for the original network
    message = _one_line(e)
    assert words in message and str(path) in message, message


def test_good_factors_load(small_weights, tmp_path):
    path = _with_factors(small_weights, tmp_path, lambda f, g: None)
    assert set(read_weights(path).factors) == set(CONV_LAYERS)
    assert load_vgg19(path, normalized=True).forward(np.zeros((3, 16, 16)), "relu1_1")["relu1_1"].shape == (64, 16, 16)


def test_the_bundled_factors_are_what_the_readme_says(weights):
    with h5py.File(BUNDLED, "r") as f:
        assert int(f[FACTORS].attrs["dead_channels_set_to_1"]) == 0
        assert int(f[FACTORS].attrs["long_side"]) == 256
    assert all(weights.factors[c].shape == (CONV_CHANNELS[c][0],) for c in CONV_LAYERS)


# ---------------------------------------------------------------- presets and runs


def test_only_gatys_wants_the_normalised_network():
    assert {name: p.normalized for name, p in PRESETS.items()} == {
        "gatys": True, "course": False, "jcjohnson": False, "pytorch-tutorial": False}


@pytest.mark.parametrize("preset, normalized, expected", [
    ("gatys", None, True), ("gatys", False, False), ("jcjohnson", None, False), ("course", True, True)])
def test_a_run_loads_the_network_its_settings_ask_for(preset, normalized, expected):
    from scratchnst.transfer.loop import start_run

    settings = Settings(content="chelsea", styles=["starry_night"], size=32, preset=preset, normalized=normalized)
    assert settings.normalized_network() is expected
    run = start_run(settings)
    assert run.net.attrs["normalized"] is expected
    x = run.net.preprocess(run.content_in)
    original = scratchnst.load_vgg19()
    ratio = float(run.net.forward(x, "relu1_1")["relu1_1"].sum() / original.forward(x, "relu1_1")["relu1_1"].sum())
    assert (abs(ratio - 1) < 1e-6) is not expected


def test_settings_of_older_checkpoints_keep_the_original_network():
    old = Settings(content="chelsea", styles=["starry_night"]).to_dict()
    del old["normalized"]
    assert Settings.from_dict(old).normalized is False
    with pytest.raises(ScratchNSTError) as e:
        Settings(content="chelsea", styles=["starry_night"], normalized="yes").validate()
    assert "normalized" in _one_line(e)


def test_the_command_line_option(tmp_path, capsys):
    from scratchnst.cli.main import main

    out = tmp_path / "out.png"
    assert main(["stylize", "chelsea", "starry_night", "--size", "32", "--iterations", "0", "--quiet",
                 "--no-plot", "--no-normalized", "-o", str(out)]) == 0
    from scratchnst.files.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "out.ckpt.npz")["settings"]["normalized"] is False


def test_the_style_weight_follows_the_network():
    """gatys: 5e7 on the normalised network it was tuned on, the paper's 1e3 with --no-normalized; a given beta wins."""
    from scratchnst.transfer.settings import Settings

    base = dict(content="chelsea", styles=["starry_night"])
    assert Settings(**base).style_weight() == PRESETS["gatys"].beta == 5e7
    assert Settings(**base, normalized=False).style_weight() == 1e3
    assert Settings(**base, normalized=False, beta=7.0).style_weight() == 7.0
    assert Settings(**base, preset="jcjohnson").style_weight() == PRESETS["jcjohnson"].beta
