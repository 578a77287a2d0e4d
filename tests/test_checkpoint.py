"""Checkpoints: what a run writes is read back, and every malformed one is a one-line error.

A hostile (or merely damaged) checkpoint is a valid ``.npz`` whose content lies: a meta
document of the wrong type, a level past the last, arrays of the wrong shape, a missing
entry, a bad RNG state, or an array header that declares terabytes. Each must give one
line (exit status 2 through ``scratchnst stylize --resume``), never a traceback, and must
be refused before any array data is read.
"""

import io
import json
import zipfile

import numpy as np
import pytest

from scratchnst.cli import main
from scratchnst.errors import ScratchNSTError
from scratchnst.files.checkpoint import load_checkpoint, save_checkpoint
from scratchnst.transfer.loop import stylize
from scratchnst.transfer.settings import Settings

# ---------------------------------------------------------------- real checkpoints


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Checkpoints a real 40 px run writes, one per optimiser: {"lbfgs": path, "adam": path}."""
    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for optimizer in ("lbfgs", "adam"):
        paths[optimizer] = folder / f"{optimizer}.ckpt.npz"
        settings = Settings(content="chelsea", styles=["starry_night"], size=40, iterations=2, optimizer=optimizer)
        stylize(settings, checkpoint_path=paths[optimizer])
    return paths


def _raw(path):
    """The meta document and the arrays of a checkpoint, read without the loader under test."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def _write_raw(path, doc, arrays):
    """A valid .npz holding ``doc`` as its meta JSON and ``arrays``, whatever they say."""
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(doc)), **arrays)
    return path


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_what_a_run_writes_is_read_back(real, optimizer):
    state = load_checkpoint(real[optimizer])
    assert state["settings"]["optimizer"] == optimizer and state["level"] == 0
    assert state["optimizer"]["x"].shape == (3, 27, 40)  # chelsea is 451 x 300
    assert len(state["history"]["total"]) == 2


def test_an_older_checkpoint_with_rho_as_an_array_is_read(real, tmp_path):
    doc, arrays = _raw(real["lbfgs"])
    arrays["state/optimizer/rho"] = np.array(doc["state"]["optimizer"]["rho"])
    doc["state"]["optimizer"]["rho"] = {"__array__": "state/optimizer/rho"}
    state = load_checkpoint(_write_raw(tmp_path / "old.npz", doc, arrays))
    assert state["optimizer"]["rho"].shape == (len(state["optimizer"]["s"]),)


def test_a_coarse_level_of_a_two_level_run_is_read(real, tmp_path):
    """Level 0 of ``size 64, scales 2`` holds a 32 px image; level 1 a 64 px one."""
    doc, arrays = _raw(real["adam"])
    doc["state"]["settings"].update(size=64, scales=2)
    for key in ("x", "g", "m", "v"):
        arrays[f"state/optimizer/{key}"] = np.zeros((3, 21, 32), np.float32)
    assert load_checkpoint(_write_raw(tmp_path / "coarse.npz", doc, arrays))["level"] == 0
    doc["state"]["level"] = 1  # ... but level 1 is 64 px, not 32
    with pytest.raises(ScratchNSTError, match="long side 64"):
        load_checkpoint(_write_raw(tmp_path / "fine.npz", doc, arrays))


def test_generic_states_are_read_without_the_run_schema(tmp_path):
    state = {"a": np.arange(3.0), "n": 4}
    save_checkpoint(tmp_path / "c.npz", state)
    assert load_checkpoint(tmp_path / "c.npz", validate=False)["n"] == 4
    with pytest.raises(ScratchNSTError, match="settings"):
        load_checkpoint(tmp_path / "c.npz")


# ---------------------------------------------------------------- malformed ones


def _state(doc):
    return doc["state"]


def _opt(doc):
    return doc["state"]["optimizer"]


def _set(getter, key, value):
    def change(doc, arrays):
        getter(doc)[key] = value
    return change


def _drop(getter, key):
    def change(doc, arrays):
        del getter(doc)[key]
    return change


def _array(key, value):
    def change(doc, arrays):
        arrays[f"state/optimizer/{key}"] = value
    return change


class _Replace(Exception):
    """Raised by a case to replace the whole meta document (by a list, a number...)."""

    def __init__(self, doc):
        self.doc = doc


def _replace_doc(value):
    def change(doc, arrays):
        raise _Replace(value)
    return change


def _history(key, value):
    def change(doc, arrays):
        doc["state"]["history"][key] = value
    return change


def _drop_history(key):
    def change(doc, arrays):
        del doc["state"]["history"][key]
    return change


def _settings(key, value):
    def change(doc, arrays):
        doc["state"]["settings"][key] = value
    return change


def _dangling(doc, arrays):
    _opt(doc)["x"] = {"__array__": "state/optimizer/nowhere"}


F32 = np.float32
# case -> (optimizer, change, words of the message)
CASES = {
    "meta a list": ("lbfgs", _replace_doc([1, 2, 3]), "meta"),
    "meta a number": ("lbfgs", _replace_doc(7), "meta"),
    "state a list": ("lbfgs", _set(lambda d: d, "state", [1, 2]), "state"),
    "missing state": ("lbfgs", _drop(lambda d: d, "state"), "state"),
    "settings a string": ("lbfgs", _set(_state, "settings", "fast"), "settings"),
    "settings lack content": ("lbfgs", lambda d, a: d["state"]["settings"].pop("content"), "content"),
    "style scale a string": ("lbfgs", _settings("style_scale", "2"), "style_scale"),
    "style blend of strings": ("lbfgs", _settings("style_blend", ["a"]), "style_blend"),
    "level past the last": ("lbfgs", _set(_state, "level", 1), "level"),
    "level negative": ("lbfgs", _set(_state, "level", -1), "level"),
    "level a string": ("lbfgs", _set(_state, "level", "0"), "level"),
    "missing total": ("lbfgs", _drop_history("total"), "total"),
    "history of strings": ("lbfgs", _history("style", ["a", "b"]), "history"),
    "history lengths differ": ("lbfgs", _history("tv", [0.0]), "history"),
    "bad rng: other generator": ("lbfgs", _set(lambda d: d["state"]["rng"], "bit_generator", "MT19937"), "RNG"),
    "bad rng: no state": ("lbfgs", _drop(lambda d: d["state"]["rng"], "state"), "RNG"),
    "bad rng: a string": ("adam", _set(_state, "rng", "seed 0"), "RNG"),
    "optimizer a list": ("lbfgs", _set(_state, "optimizer", [1]), "optimizer"),
    "missing f": ("lbfgs", _drop(_opt, "f"), "'f'"),
    "f a string": ("adam", _set(_opt, "f", "low"), "'f'"),
    "n_iter negative": ("adam", _set(_opt, "n_iter", -3), "n_iter"),
    "x wrong shape": ("lbfgs", _array("x", np.zeros((3, 5, 7), F32)), "x"),
    "x of integers": ("adam", _array("x", np.zeros((3, 27, 40), np.int64)), "x"),
    "x dangling": ("lbfgs", _dangling, "nowhere"),
    "g differs from x": ("lbfgs", _array("g", np.zeros((3, 27, 41), F32)), "g"),
    "s and y disagree": ("lbfgs", _array("s", np.zeros((1, 3, 27, 40), F32)), "s"),
    "y of other images": ("lbfgs", _array("y", np.zeros((2, 3, 40, 27), F32)), "y"),
    "rho too short": ("lbfgs", _set(_opt, "rho", [1.0]), "rho"),
    "rho of strings": ("lbfgs", _set(_opt, "rho", ["a", "b"]), "rho"),
    "adam m wrong shape": ("adam", _array("m", np.zeros((3, 27), F32)), "m"),
    "adam t a float": ("adam", _set(_opt, "t", 1.5), "'t'"),
}


def _make(real, tmp_path, case):
    optimizer, change, words = CASES[case]
    doc, arrays = _raw(real[optimizer])
    try:
        change(doc, arrays)
    except _Replace as r:
        doc = r.doc
    return _write_raw(tmp_path / "bad.ckpt.npz", doc, arrays), words


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_checkpoint_is_one_line(real, tmp_path, case):
    path, words = _make(real, tmp_path, case)
    with pytest.raises(ScratchNSTError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and words in message, message


@pytest.mark.parametrize("case", ["meta a list", "level past the last", "x wrong shape", "missing total",
                                  "bad rng: no state", "missing state"])
def test_malformed_checkpoint_through_the_cli(real, tmp_path, capsys, case):
    path, words = _make(real, tmp_path, case)
    out = tmp_path / "out.png"
    assert main(["stylize", "--resume", str(path), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scratchnst: error: ") and "Traceback" not in err, err
    assert words in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ckpt.npz"]  # no image, no checkpoint


# ---------------------------------------------------------------- sizes declared by headers


def _npy_header(shape, descr="<f4"):
    """The .npy header (format 1.0) of an array of ``shape``, without its data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _replace_member(path, out, name, data):
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, data if info.filename == name else src.read(info))
    return out


def test_header_declaring_terabytes_is_refused_before_reading(real, tmp_path):
    """A few kB whose x header declares 72.8 TiB: refused from the header, in a small memory."""
    shape = (3, 2_500_000, 2_666_667)  # float32: 8.0e13 bytes, 72.8 TiB
    data = _npy_header(shape) + b"\0" * 4096
    bad = _replace_member(real["lbfgs"], tmp_path / "huge.npz", "state/optimizer/x.npy", data)
    assert bad.stat().st_size < 200_000
    with pytest.raises(ScratchNSTError) as e:
        load_checkpoint(bad)
    assert "\n" not in str(e.value) and "state/optimizer/x" in str(e.value), str(e.value)


def test_header_declaring_fewer_bytes_than_stored_is_refused(real, tmp_path):
    data = _npy_header((3, 27, 40)) + b"\0" * (4 * 3 * 27 * 40 + 100)
    bad = _replace_member(real["lbfgs"], tmp_path / "long.npz", "state/optimizer/g.npy", data)
    with pytest.raises(ScratchNSTError, match="state/optimizer/g"):
        load_checkpoint(bad)


def test_compressed_member_expanding_to_gigabytes_is_refused(real, tmp_path):
    """A deflated member (np.savez never writes one) cannot make the reader inflate it."""
    bad = tmp_path / "bomb.npz"
    with zipfile.ZipFile(real["lbfgs"]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(ScratchNSTError, match="compressed"):
        load_checkpoint(bad)


def test_object_arrays_are_refused(real, tmp_path):
    data = _npy_header((2,), descr="|O") + b"\x80\x04N."
    bad = _replace_member(real["lbfgs"], tmp_path / "obj.npz", "state/optimizer/x.npy", data)
    with pytest.raises(ScratchNSTError, match="state/optimizer/x"):
        load_checkpoint(bad)


def test_validate_run_state_names_the_problem(real):
    from scratchnst.files.checkpoint import validate_run_state

    state = load_checkpoint(real["adam"])
    validate_run_state(state)
    state["optimizer"]["v"] = state["optimizer"]["v"][:, :3]
    with pytest.raises(ScratchNSTError, match="'v'"):
        validate_run_state(state)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_damaged_checkpoints_are_one_line_errors(real, tmp_path, optimizer):
    """Truncated anywhere, or bytes flipped anywhere: one line, or a state that passes the schema."""
    data = real[optimizer].read_bytes()
    rng = np.random.default_rng(10)
    bad = tmp_path / "bad.npz"
    damaged = [data[:cut] for cut in rng.integers(0, len(data), size=100)]
    for _ in range(200):
        b = bytearray(data)
        for pos in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
            b[pos] ^= int(rng.integers(1, 256))
        damaged.append(bytes(b))
    refused = 0
    for d in damaged:
        bad.write_bytes(d)
        try:
            state = load_checkpoint(bad)
        except ScratchNSTError as e:
            assert "\n" not in str(e)
            refused += 1
        else:
            assert np.isfinite(state["optimizer"]["x"]).all()
    assert refused >= 100  # every truncation at least
