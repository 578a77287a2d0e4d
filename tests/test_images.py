"""Tests for scratchnst.images: every input file is made here with Pillow.

Expected pixels are worked out by hand from how the file was made (the rotation
an EXIF tag asks for, the compositing formula, the 16-bit scale), never by
calling the code under test.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchnst.errors import ScratchNSTError
from scratchnst.files import atomic, images
from scratchnst.files.images import (
    bundled_image,
    bundled_images,
    load_image,
    read_png_metadata,
    resize_long_side,
    resize_to,
    resolve_image_path,
    save_image,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
BUNDLED = [
    "astronaut",
    "chelsea",
    "composition_vii",
    "earthrise",
    "grace_hopper",
    "great_wave",
    "shipwreck",
    "starry_night",
    "the_scream",
    "water_lilies",
]


def random_image(h=12, w=17, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def pil_mode(path):
    with Image.open(path) as im:
        return im.mode


def assert_one_line_naming(err, name):
    msg = str(err.value)
    assert "\n" not in msg
    assert str(name) in msg


# --- EXIF orientation ---------------------------------------------------------


@pytest.mark.parametrize(
    "orientation, red_rows, red_cols",
    [
        # Stored 40 wide x 20 tall, red block in the stored top-left 20 x 10.
        # 6 = "rotate 90 degrees clockwise to display": stored top-left goes to the
        # displayed top-right of a 20 wide x 40 tall picture.
        (6, slice(0, 20), slice(10, 20)),
        # 8 = "rotate 90 degrees counter-clockwise": stored top-left -> bottom-left.
        (8, slice(20, 40), slice(0, 10)),
        # 1 = already upright: nothing moves.
        (1, slice(0, 10), slice(0, 20)),
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, red_rows, red_cols):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:] = BLUE
    stored[:10, :20] = RED
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation tag
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)

    img = load_image(path)

    expected = np.zeros((40, 20, 3) if orientation != 1 else (20, 40, 3), np.uint8)
    expected[:] = BLUE
    expected[red_rows, red_cols] = RED
    assert img.shape == expected.shape
    assert img.dtype == np.uint8
    # JPEG blurs the block edges a little; compare away from them by the mean.
    assert np.abs(img.astype(int) - expected).mean() < 8


# --- mode conversions ---------------------------------------------------------


def test_greyscale_L_becomes_three_equal_channels(tmp_path):
    grey = np.array([[0, 50, 200, 255]], np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(grey, mode="L").save(path)
    img = load_image(path)
    assert img.shape == (1, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], grey)


def test_bilevel_mode_1(tmp_path):
    path = tmp_path / "bits.png"
    im = Image.new("1", (3, 1), 0)
    im.putpixel((1, 0), 1)
    im.save(path)
    np.testing.assert_array_equal(load_image(path)[0], [[0, 0, 0], [255, 255, 255], [0, 0, 0]])


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 65535, 32768, 25700, 257]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)  # a 16-bit greyscale PNG
    assert pil_mode(path).startswith("I;16")  # the case under test
    img = load_image(path)
    # round(v * 255 / 65535): 32768 -> 127.50 -> 128; 25700 = 100 * 257 -> 100.
    np.testing.assert_array_equal(img[0, :, 0], [0, 255, 128, 100, 1])
    np.testing.assert_array_equal(img[..., 0], img[..., 2])


def test_32_bit_int_in_16_bit_range(tmp_path):
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[0, 65535, 514]], np.int32)).save(path)
    assert pil_mode(path) == "I"
    np.testing.assert_array_equal(load_image(path)[0, :, 1], [0, 255, 2])


def test_32_bit_int_out_of_16_bit_range_is_stretched(tmp_path):
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[-1000, 99000, 49000]], np.int32)).save(path)
    # min..max -> 0..255: 49000 is exactly halfway -> 127.5 -> rounds to even 128.
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0, 255, 128])


def test_float_zero_to_one(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 1.0, 0.2]], np.float32)).save(path)
    assert pil_mode(path) == "F"
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0, 255, 51])


def test_float_with_nan_is_an_error(tmp_path):
    path = tmp_path / "nan.tif"
    Image.fromarray(np.array([[0.0, np.nan]], np.float32)).save(path)
    with pytest.raises(ScratchNSTError) as err:
        load_image(path)
    assert_one_line_naming(err, path)


def test_rgba_is_composited_over_white(tmp_path):
    path = tmp_path / "rgba.png"
    px = np.array([[[200, 100, 0, 51], [10, 20, 30, 255], [1, 2, 3, 0]]], np.uint8)
    Image.fromarray(px, mode="RGBA").save(path)
    # alpha 51 = 0.2: 0.2 * 200 + 0.8 * 255 = 244, 0.2 * 100 + 204 = 224, 0 + 204 = 204.
    # alpha 255 keeps the colour; alpha 0 is the white page, whatever is stored.
    np.testing.assert_array_equal(load_image(path)[0], [[244, 224, 204], [10, 20, 30], [255, 255, 255]])


def test_la_is_composited_over_white(tmp_path):
    path = tmp_path / "la.png"
    px = np.array([[[0, 128], [0, 255], [0, 0]]], np.uint8)
    Image.fromarray(px, mode="LA").save(path)
    # black at alpha 128: 255 * (255 - 128) / 255 = 127.
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [127, 0, 255])


@pytest.mark.parametrize("ext", ["png", "gif"])
def test_palette_with_transparent_index(tmp_path, ext):
    path = tmp_path / f"pal.{ext}"
    im = Image.new("P", (2, 1), 0)
    im.putpalette([255, 0, 0, 0, 255, 0])  # index 0 red, index 1 green
    im.putpixel((1, 0), 1)
    im.save(path, transparency=1)  # green is the transparent index
    np.testing.assert_array_equal(load_image(path)[0], [[255, 0, 0], [255, 255, 255]])


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "pal.png"
    im = Image.new("P", (2, 1), 0)
    im.putpalette([255, 0, 0, 0, 255, 0])
    im.putpixel((1, 0), 1)
    im.save(path)
    np.testing.assert_array_equal(load_image(path)[0], [[255, 0, 0], [0, 255, 0]])


def test_cmyk(tmp_path):
    path = tmp_path / "cmyk.tif"
    im = Image.new("CMYK", (3, 1))
    im.putpixel((0, 0), (255, 0, 0, 0))  # full cyan ink
    im.putpixel((1, 0), (0, 0, 0, 0))  # no ink: paper white
    im.putpixel((2, 0), (0, 0, 0, 255))  # full black ink
    im.save(path)
    np.testing.assert_array_equal(load_image(path)[0], [[0, 255, 255], [255, 255, 255], [0, 0, 0]])


def test_rgb_png_is_lossless(tmp_path):
    img = random_image()
    path = tmp_path / "rgb.png"
    Image.fromarray(img).save(path)
    out = load_image(path)
    np.testing.assert_array_equal(out, img)
    assert out.flags.c_contiguous


# --- resizing -----------------------------------------------------------------


def test_load_with_long_side_down_and_up(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(random_image(50, 100)).save(path)
    assert load_image(path, long_side=20).shape == (10, 20, 3)
    assert load_image(path, long_side=200).shape == (100, 200, 3)


@pytest.mark.parametrize(
    "shape, long_side, expected",
    [
        ((30, 7), 10, (10, 2)),  # 7 / 3 = 2.33 -> 2
        ((7, 30), 10, (2, 10)),
        ((40, 40), 13, (13, 13)),
        ((1000, 3), 10, (10, 1)),  # short side never drops to 0
        ((3, 5), 500, (300, 500)),
    ],
)
def test_resize_long_side_shapes(shape, long_side, expected):
    out = resize_long_side(random_image(*shape), long_side)
    assert out.shape == (*expected, 3)
    assert out.dtype == np.uint8


def test_resize_keeps_a_flat_colour_flat():
    img = np.empty((33, 21, 3), np.uint8)
    img[:] = (12, 200, 99)
    for out in (resize_long_side(img, 70), resize_long_side(img, 9), resize_to(img, (5, 40))):
        assert np.abs(out.astype(int) - (12, 200, 99)).max() <= 1


def test_resize_to_shape_and_copy():
    img = random_image(10, 20)
    assert resize_to(img, (7, 3)).shape == (7, 3, 3)
    same = resize_to(img, (10, 20))
    np.testing.assert_array_equal(same, img)
    assert not np.shares_memory(same, img)


def test_resize_downsampling_averages_fine_stripes():
    # One-pixel black/white stripes shrunk 8x should come out mid-grey (antialiased),
    # not all black or all white as point sampling would give.
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, ::2] = 255
    out = resize_long_side(img, 8)
    assert np.abs(out.astype(int) - 127.5).max() < 10


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", None, True])
def test_resize_long_side_rejects_bad_lengths(bad):
    with pytest.raises(ScratchNSTError):
        resize_long_side(random_image(), bad)


@pytest.mark.parametrize("bad", [(0, 3), (3,), "ab", (2, -1)])
def test_resize_to_rejects_bad_sizes(bad):
    with pytest.raises(ScratchNSTError):
        resize_to(random_image(), bad)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 3), np.float32),
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        [[[0, 0, 0]]],
    ],
)
def test_image_validation(tmp_path, bad):
    with pytest.raises(ScratchNSTError):
        resize_to(bad, (2, 2))
    with pytest.raises(ScratchNSTError):
        save_image(tmp_path / "x.png", bad)
    assert list(tmp_path.iterdir()) == []


# --- bundled images -----------------------------------------------------------


def test_bundled_image_names():
    assert bundled_images() == BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_images_load(name):
    img = load_image(bundled_image(name))
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert max(img.shape[:2]) == 512 or name == "chelsea"  # SOURCES.md: long side 512
    assert img.std() > 10  # a real picture, not a blank


def test_bundled_image_accepts_extension_and_sources_exist():
    assert bundled_image("starry_night.jpg") == bundled_image("starry_night")
    assert bundled_image("starry_night").name == "starry_night.jpg"
    sources = (images.IMAGE_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for name in BUNDLED:
        assert f"`{name}.jpg`" in sources


def test_unknown_bundled_name_lists_choices():
    with pytest.raises(ScratchNSTError) as err:
        bundled_image("mona_lisa")
    assert_one_line_naming(err, "mona_lisa")
    assert "starry_night" in str(err.value) and "astronaut" in str(err.value)


def test_resolve_image_path(tmp_path, monkeypatch):
    assert resolve_image_path("astronaut") == bundled_image("astronaut")
    assert resolve_image_path("astronaut.jpg") == bundled_image("astronaut")
    own = tmp_path / "photo.png"
    Image.fromarray(random_image()).save(own)
    assert resolve_image_path(own) == own
    assert resolve_image_path(str(own)) == own
    # A user's file of the same name wins over the bundled example.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "astronaut.jpg").write_bytes(own.read_bytes())
    assert resolve_image_path("astronaut.jpg") == images.Path("astronaut.jpg")
    # A path with a folder is never taken for a bundled name.
    with pytest.raises(ScratchNSTError) as err:
        resolve_image_path("elsewhere/starry_night")
    assert_one_line_naming(err, "elsewhere/starry_night")
    with pytest.raises(ScratchNSTError) as err:
        resolve_image_path("nosuch")
    assert "chelsea" in str(err.value)


# --- unreadable files ---------------------------------------------------------


def _png_bytes(tmp_path):
    path = tmp_path / "good.png"
    Image.fromarray(random_image(64, 64)).save(path)
    return path.read_bytes()


def _jpeg_bytes(tmp_path):
    path = tmp_path / "good.jpg"
    Image.fromarray(random_image(64, 64)).save(path, quality=90)
    return path.read_bytes()


@pytest.mark.parametrize(
    "name, make",
    [
        ("notes.png", lambda tp: b"this is text, not a picture\n"),
        ("empty.jpg", lambda tp: b""),
        ("cut.png", lambda tp: _png_bytes(tp)[: len(_png_bytes(tp)) // 2]),
        ("cut.jpg", lambda tp: _jpeg_bytes(tp)[: len(_jpeg_bytes(tp)) // 2]),
        ("header_only.png", lambda tp: _png_bytes(tp)[:40]),
        # Flip bytes inside the PNG's compressed pixel data: the CRC check fails.
        ("garbled.png", lambda tp: _png_bytes(tp)[:100] + b"\x00" * 50 + _png_bytes(tp)[150:]),
    ],
)
def test_unreadable_files_raise_one_line(tmp_path, name, make):
    path = tmp_path / name
    path.write_bytes(make(tmp_path))
    with pytest.raises(ScratchNSTError) as err:
        load_image(path)
    assert_one_line_naming(err, path)
    assert "EXIF" not in str(err.value)  # caught when decoding, not blamed on metadata


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ScratchNSTError) as err:
        load_image(tmp_path / "nope.png")
    assert_one_line_naming(err, tmp_path / "nope.png")
    assert "not found" in str(err.value)
    with pytest.raises(ScratchNSTError) as err:
        load_image(tmp_path)
    assert_one_line_naming(err, tmp_path)
    assert "directory" in str(err.value)


# --- saving -------------------------------------------------------------------


def test_png_round_trip_with_metadata(tmp_path):
    img = random_image(9, 14, seed=3)
    meta = {"content": "astronaut", "style_weight": 1e6, "note": "Größe ✓ (non-Latin-1)"}
    path = tmp_path / "out.png"
    save_image(path, img, metadata=meta)
    with Image.open(path) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), img)
    assert read_png_metadata(path) == {
        "content": "astronaut",
        "style_weight": "1000000.0",
        "note": "Größe ✓ (non-Latin-1)",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp left behind


def test_png_without_metadata(tmp_path):
    path = tmp_path / "plain.PNG"  # the extension is case-insensitive
    save_image(path, random_image())
    with Image.open(path) as im:
        assert im.format == "PNG"
    assert read_png_metadata(path) == {}


@pytest.mark.parametrize("ext", ["jpg", "jpeg", "JPG"])
def test_jpeg_save(tmp_path, ext):
    img = np.empty((16, 24, 3), np.uint8)
    img[:] = (30, 140, 220)
    path = tmp_path / f"out.{ext}"
    save_image(path, img, metadata={"style": "great_wave"})
    with Image.open(path) as im:
        assert im.format == "JPEG"
        assert b"great_wave" in im.info.get("comment", b"")
        assert np.abs(np.asarray(im).astype(int) - img).max() <= 3


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "out.png"
    save_image(path, random_image(seed=1))
    save_image(path, random_image(seed=2))
    np.testing.assert_array_equal(load_image(path), random_image(seed=2))


def test_saved_file_gets_normal_permissions(tmp_path):
    path = tmp_path / "out.png"
    save_image(path, random_image())
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


class _DiskFull(OSError):
    pass


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    def half_write_then_fail(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n partial")
        raise _DiskFull(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_write_then_fail)
    path = tmp_path / "out.png"
    with pytest.raises(ScratchNSTError) as err:
        save_image(path, random_image())
    assert_one_line_naming(err, path)
    assert "No space left" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_image(path, random_image(seed=5))
    before = path.read_bytes()

    def fail_on_rename(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", fail_on_rename)
    with pytest.raises(ScratchNSTError):
        save_image(path, random_image(seed=6))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_non_io_failure_propagates_and_cleans_up(tmp_path, monkeypatch):
    def interrupted(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_image(tmp_path / "out.png", random_image())
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destinations(tmp_path):
    with pytest.raises(ScratchNSTError) as err:
        save_image(tmp_path / "no_such_dir" / "out.png", random_image())
    assert_one_line_naming(err, "out.png")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ScratchNSTError):
        save_image(a_file / "out.png", random_image())  # parent is a file
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(ScratchNSTError):
        save_image(tmp_path / "taken.png", random_image())  # target is a directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "taken.png"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ScratchNSTError):
            save_image(ro / "out.png", random_image())
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("directory", ["/proc", "/sys"])
def test_directory_not_even_root_may_write(directory):
    """The test above skips as root, and CI runs as root: no one, root included, may create a file in
    /proc or /sys (the kernel's own file systems), so this case runs everywhere Linux does."""
    if not os.path.isdir(directory):
        pytest.skip(f"no {directory} here")
    path = Path(directory) / f"scratchnst-test-{os.getpid()}.png"
    with pytest.raises(ScratchNSTError) as err:
        save_image(path, random_image())
    assert_one_line_naming(err, path)
    assert not path.exists()
    assert not list(Path(directory).glob(f".{path.name}.*.tmp"))


@pytest.mark.parametrize("name", ["out.bmp", "out", "out.png.tmp"])
def test_unknown_extension(tmp_path, name):
    with pytest.raises(ScratchNSTError) as err:
        save_image(tmp_path / name, random_image())
    assert_one_line_naming(err, name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["", "k" * 80, "schlüssel✓"])
def test_bad_metadata_keys(tmp_path, key):
    with pytest.raises(ScratchNSTError):
        save_image(tmp_path / "out.png", random_image(), metadata={key: "v"})
    assert list(tmp_path.iterdir()) == []


def test_read_png_metadata_of_a_jpeg(tmp_path):
    path = tmp_path / "x.jpg"
    Image.fromarray(random_image()).save(path)
    with pytest.raises(ScratchNSTError) as err:
        read_png_metadata(path)
    assert_one_line_naming(err, path)
