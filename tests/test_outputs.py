"""What a run writes: every output is checked before the first iteration, none may be an
input, the image comes before the checkpoint and survives a checkpoint that cannot be
written, a JPEG's metadata always fits, and the demo leaves a picture and its plot only."""

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from scratchnst.cli import main
from scratchnst.files import images
from scratchnst.files.checkpoint import load_checkpoint

RUN = ["--size", "32", "--iterations", "2", "--quiet"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err.strip()


def names(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if the optimisation starts: what it checks must be refused before any work."""
    from scratchnst.cli import stylize as stylize_cli

    def started(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(stylize_cli, "stylize", started)


def photo(path, name="chelsea"):
    """A small PNG of a bundled image at ``path``, to serve as a user's own file."""
    images.save_image(path, images.load_image(images.bundled_image(name), long_side=40))
    return path


# ------------------------------------------------------------------ item 4: every output checked up front


@pytest.mark.parametrize("blocked", ["o.ckpt.npz", "o.losses.png", "o.scale1.iter0002.png"])
def test_a_directory_in_the_way_of_any_output_is_refused_before_the_run(tmp_path, capsys, no_run, blocked):
    (tmp_path / blocked).mkdir()
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", *RUN, "--save-every", "2",
                        "-o", str(tmp_path / "o.png"))
    assert code == 2 and err.count("\n") == 0, err
    assert blocked in err and "directory" in err, err
    assert names(tmp_path) == [blocked]


def test_an_output_folder_that_takes_no_file_is_refused_before_the_run(capsys, no_run):
    """/proc takes no new file, for root too (os.access says yes to root)."""
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", *RUN, "-o", "/proc/scratchnst-out.png")
    assert code == 2 and err.count("\n") == 0 and "cannot write" in err, err
    assert not Path("/proc/scratchnst-out.png").exists()


def disk_full_for_checkpoints(monkeypatch):
    import numpy as np

    def savez(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez)  # what save_checkpoint writes with


def test_a_checkpoint_that_cannot_be_written_keeps_the_image(tmp_path, capsys, monkeypatch):
    """The final checkpoint fails (a full disk): the image and plot are written first and kept, one line says
    what failed, exit 1."""
    disk_full_for_checkpoints(monkeypatch)
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", *RUN, "--checkpoint-every", "0",
                        "-o", str(tmp_path / "o.png"))
    assert code == 1, err
    assert err.count("\n") == 0 and "o.ckpt.npz" in err and "No space left" in err and "image" in err, err
    assert names(tmp_path) == ["o.losses.png", "o.png"]
    assert images.read_png_metadata(tmp_path / "o.png")["scratchnst:iterations"] == "2"


def test_a_checkpoint_failing_mid_run_stops_the_run_and_keeps_its_image(tmp_path, capsys, monkeypatch):
    """--checkpoint-every 2 on a full disk: the run stops at iteration 2 and writes that image, exit 1."""
    disk_full_for_checkpoints(monkeypatch)
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "--size", "32", "--iterations", "6",
                        "--quiet", "--checkpoint-every", "2", "--no-plot", "-o", str(tmp_path / "o.png"))
    assert code == 1, err
    assert err.count("\n") == 0 and "stopped at iteration 2" in err and "No space left" in err, err
    assert names(tmp_path) == ["o.png"]
    assert images.read_png_metadata(tmp_path / "o.png")["scratchnst:iterations"] == "2"


# ------------------------------------------------------------------ item 5: an output is never an input


@pytest.fixture
def inputs(tmp_path):
    photo(tmp_path / "photo.png")
    photo(tmp_path / "style.png", "starry_night")
    (tmp_path / "link.png").symlink_to(tmp_path / "photo.png")
    os.link(tmp_path / "photo.png", tmp_path / "hard.png")
    photo(tmp_path / "o.losses.png")
    photo(tmp_path / "wave.png", "great_wave").rename(tmp_path / "o.ckpt.npz")  # Pillow reads it by its content
    return tmp_path


OVERWRITES = {
    "content": ["{d}/photo.png", "starry_night", "-o", "{d}/photo.png"],
    "style": ["chelsea", "{d}/style.png", "-o", "{d}/style.png"],
    "symlink to the content": ["{d}/photo.png", "starry_night", "-o", "{d}/link.png"],
    "hard link to the content": ["{d}/photo.png", "starry_night", "-o", "{d}/hard.png"],
    "content through a relative path": ["{d}/photo.png", "starry_night", "-o", "{d}/../{n}/./photo.png"],
    "--init image": ["chelsea", "starry_night", "--init", "{d}/photo.png", "-o", "{d}/photo.png"],
    "loss plot over the content": ["{d}/o.losses.png", "starry_night", "-o", "{d}/o.png"],
    "checkpoint over a style": ["chelsea", "{d}/o.ckpt.npz", "-o", "{d}/o.png"],
    "a bundled painting": ["chelsea", "starry_night", "-o", str(images.bundled_image("starry_night"))],
}


@pytest.mark.parametrize("case", list(OVERWRITES))
def test_an_output_that_is_an_input_is_refused_before_any_work(inputs, capsys, no_run, case):
    before = {p.name: p.read_bytes() for p in inputs.iterdir() if not p.is_symlink()}
    bundled = images.bundled_image("starry_night").read_bytes()
    argv = [a.format(d=inputs, n=inputs.name) for a in OVERWRITES[case]]
    code, err = run_cli(capsys, "stylize", *argv, *RUN)
    assert code == 2 and err.count("\n") == 0 and "overwrite" in err, err
    assert {p.name: p.read_bytes() for p in inputs.iterdir() if not p.is_symlink()} == before
    assert images.bundled_image("starry_night").read_bytes() == bundled


def test_a_resume_refuses_to_write_over_the_checkpoints_own_inputs(tmp_path, capsys):
    """The content of the checkpoint's run is an input of the resumed run too; its own checkpoint is not."""
    photo(tmp_path / "photo.png")
    out = tmp_path / "a.png"
    assert main(["stylize", str(tmp_path / "photo.png"), "starry_night", "-o", str(out), *RUN]) == 0
    before = (tmp_path / "photo.png").read_bytes()
    code, err = run_cli(capsys, "stylize", "--resume", str(tmp_path / "a.ckpt.npz"), "-o",
                        str(tmp_path / "photo.png"), "--quiet")
    assert code == 2 and err.count("\n") == 0 and "overwrite the content image" in err, err
    assert (tmp_path / "photo.png").read_bytes() == before
    code, err = run_cli(capsys, "stylize", "--resume", str(tmp_path / "a.ckpt.npz"), "-o", str(out), "--quiet")
    assert code == 0, err  # resuming in place writes over the checkpoint it read: allowed


# ------------------------------------------------------------------ item 11: JPEG metadata


def test_a_jpeg_with_settings_too_long_for_its_comment_is_written(tmp_path, capsys):
    """18 style images with ~3,800-character paths make ~70 KB of settings, more than a JPEG comment holds."""
    folder = tmp_path
    for i in range(14):
        folder = folder / (f"{i:02d}" + "d" * 240)
    folder.mkdir(parents=True)
    first = photo(folder / ("s00" + "s" * 230 + ".png"), "starry_night")
    styles = [first] + [folder / (f"s{i:02d}" + "s" * 230 + ".png") for i in range(1, 18)]
    for s in styles[1:]:
        shutil.copyfile(first, s)
    assert sum(len(str(s)) for s in styles) > 65533
    out = tmp_path / "out.jpg"
    code, err = run_cli(capsys, "stylize", "chelsea", *map(str, styles), "-o", str(out), "--no-plot",
                        "--checkpoint-every", "0", "--size", "32", "--iterations", "1", "--quiet")
    assert code == 0, err
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (32, 21)
        comment = im.info["comment"]
    assert len(comment) <= 65533
    meta = json.loads(comment)
    assert meta["scratchnst:seed"] == "0" and "scratchnst:settings" in meta["omitted"]
    assert len(load_checkpoint(tmp_path / "out.ckpt.npz")["settings"]["styles"]) == 18  # the checkpoint has all


# ------------------------------------------------------------------ item 18: the demo's folder


def test_the_demo_leaves_a_picture_and_its_plot_and_no_checkpoint(tmp_path, capsys, monkeypatch):
    from scratchnst.files import checkpoint

    saved = []
    real = checkpoint.save_checkpoint
    monkeypatch.setattr(checkpoint, "save_checkpoint", lambda path, state: saved.append(path) or real(path, state))
    code, err = run_cli(capsys, "demo", "-o", str(tmp_path / "d.png"), *RUN)
    assert code == 0, err
    assert names(tmp_path) == ["d.losses.png", "d.png"]
    assert saved == []  # not written and removed: never written


def test_an_interrupted_demo_keeps_its_checkpoint_until_the_resumed_run_completes(tmp_path, capsys, monkeypatch):
    from scratchnst.cli import stylize as stylize_cli

    real = stylize_cli.Progress.iteration

    def interrupt_at_1(self, level, n_levels, it, terms):
        real(self, level, n_levels, it, terms)
        if it == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(stylize_cli.Progress, "iteration", interrupt_at_1)
        code, err = run_cli(capsys, "demo", "-o", str(tmp_path / "d.png"), *RUN)
    assert code == 130 and "scratchnst demo --resume" in err, err
    assert names(tmp_path) == ["d.ckpt.npz", "d.losses.png", "d.png"]
    code, err = run_cli(capsys, "demo", "--resume", str(tmp_path / "d.ckpt.npz"), "-o", str(tmp_path / "d.png"),
                        "--quiet")
    assert code == 0, err
    assert names(tmp_path) == ["d.losses.png", "d.png"]
    assert images.read_png_metadata(tmp_path / "d.png")["scratchnst:iterations"] == "2"


def test_an_output_name_near_the_file_name_limit_is_written(tmp_path):
    """A 250-byte name leaves no room for '.NAME.XXXXXXXX.tmp': the temporary's name gives way, not the write."""
    out = tmp_path / ("o" * 246 + ".png")
    photo(out)
    assert names(tmp_path) == [out.name]
