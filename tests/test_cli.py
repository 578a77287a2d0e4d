"""The command line: every kind of bad input is one line on stderr, exit status 2,
no traceback and no output file."""

import subprocess
import sys

import pytest

from scratchnst.backend import gpu_available
from scratchnst.cli import main
from scratchnst.errors import ScratchNSTError


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.fixture
def files(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (tmp_path / "notes.txt").write_text("hello")
    return tmp_path


CASES = {
    "missing content": (["stylize", "{d}/nope.jpg", "starry_night"], "nope.jpg"),
    "corrupt image": (["stylize", "{d}/junk.jpg", "starry_night"], "junk.jpg"),
    "not an image": (["stylize", "chelsea", "{d}/notes.txt"], "notes.txt"),
    "unknown layer": (["stylize", "chelsea", "starry_night", "--style-layers", "relu1_1,relu9_1"], "relu9_1"),
    "negative weight": (["stylize", "chelsea", "starry_night", "--style-weight", "-3"], "non-negative"),
    "non-numeric weight": (["stylize", "chelsea", "starry_night", "--content-weight", "lots"], "number"),
    "infinite weight": (["stylize", "chelsea", "starry_night", "--tv-weight", "inf"], "finite"),
    "unknown preset": (["stylize", "chelsea", "starry_night", "--preset", "magic"], "magic"),
    "too large for memory": (["stylize", "chelsea", "starry_night", "--size", "16000"], "--size"),
    "one image only": (["stylize", "chelsea"], "style image"),
    "bad resume file": (["stylize", "--resume", "{d}/notes.txt"], "checkpoint"),
    "bad weights file": (["stylize", "chelsea", "starry_night", "--weights", "{d}/notes.txt"], "notes.txt"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line(capsys, files, case):
    argv, expect = CASES[case]
    out = files / "out.png"
    argv = [a.format(d=files) for a in argv] + ["-o", str(out), "--iterations", "1", "--size", "32", "--quiet"]
    if "--size" in CASES[case][0]:  # the case's own size comes last and wins
        argv += ["--size", CASES[case][0][CASES[case][0].index("--size") + 1]]
    code, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert err.count("\n") == 0 and err.startswith("scratchnst"), err
    assert expect in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in files.iterdir()) == ["junk.jpg", "notes.txt"]  # nothing written


def test_unwritable_output(capsys, tmp_path):
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "-o", str(tmp_path / "no" / "such" / "o.png"))
    assert code == 2 and "does not exist" in err and err.count("\n") == 0
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "-o", str(tmp_path / "o.bmp"))
    assert code == 2 and ".png" in err


@pytest.mark.skipif(gpu_available(), reason="a GPU is present here")
def test_gpu_without_cupy(capsys, tmp_path):
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "--device", "gpu", "--size", "32",
                        "-o", str(tmp_path / "o.png"), "--quiet")
    assert code == 2 and "cupy" in err.lower() and err.count("\n") == 0
    assert list(tmp_path.iterdir()) == []


def test_nan_during_optimisation(capsys, tmp_path, monkeypatch):
    from scratchnst.method import objective

    real = objective.Objective.value_and_grad

    def poisoned(self, x):
        loss, grad = real(self, x)
        return (float("inf") if self.n_evals > 2 else loss), grad * (float("nan") if self.n_evals > 2 else 1)

    monkeypatch.setattr(objective.Objective, "value_and_grad", poisoned)
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "--size", "32", "--iterations", "5",
                        "--optimizer", "adam", "-o", str(tmp_path / "o.png"), "--quiet", "--checkpoint-every", "0")
    assert code == 2 and err.count("\n") == 0, err
    assert not (tmp_path / "o.png").exists()


def test_no_traceback_from_a_real_process(tmp_path):
    """The installed entry point, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "scratchnst", "stylize", str(tmp_path / "missing.jpg"),
                           "starry_night", "-o", str(tmp_path / "o.png")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o.png").exists()


def test_usage_errors_are_one_line(capsys):
    code, err = run_cli(capsys, "stylize", "a", "b", "-o", "x.png", "--iterations", "many")
    assert code == 2 and err.count("\n") == 0 and "a count must be a number" in err, err


def test_ctrl_c_writes_the_image_and_a_checkpoint_then_resume_finishes(capsys, tmp_path, monkeypatch):
    """Ctrl-C during a run (simulated at iteration 2) writes the current image and a
    checkpoint and exits 130; --resume then finishes the run."""
    from scratchnst.cli import stylize as stylize_cli

    real = stylize_cli.Progress.iteration

    def interrupt_at_2(self, level, n_levels, it, terms):
        real(self, level, n_levels, it, terms)
        if it == 2:
            raise KeyboardInterrupt

    out = tmp_path / "o.png"
    common = ["-o", str(out), "--quiet", "--no-plot"]
    with monkeypatch.context() as m:
        m.setattr(stylize_cli.Progress, "iteration", interrupt_at_2)
        code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "--size", "32", "--iterations", "4",
                            "--save-every", "1", *common)
    assert code == 130 and "--resume" in err, err
    assert out.exists() and (tmp_path / "o.ckpt.npz").exists()
    assert (tmp_path / "o.scale1.iter0001.png").exists()  # --save-every
    code, err = run_cli(capsys, "stylize", "--resume", str(tmp_path / "o.ckpt.npz"), *common)
    assert code == 0, err
    from scratchnst.files.images import read_png_metadata

    assert read_png_metadata(out)["scratchnst:iterations"] == "4"


# ------------------------------------------------------------------ --resume and the other options


@pytest.fixture(scope="module")
def stopped_at_2(tmp_path_factory):
    """The checkpoint of a 32 px, 4-iteration run stopped by Ctrl-C after iteration 2 (shared: tests only read it)."""
    from scratchnst.cli import stylize as stylize_cli

    folder = tmp_path_factory.mktemp("stopped")
    real = stylize_cli.Progress.iteration

    def interrupt_at_2(self, level, n_levels, it, terms):
        real(self, level, n_levels, it, terms)
        if it == 2:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as m:
        m.setattr(stylize_cli.Progress, "iteration", interrupt_at_2)
        assert main(["stylize", "chelsea", "starry_night", "--size", "32", "--iterations", "4", "--quiet",
                     "--no-plot", "-o", str(folder / "a.png")]) == 130
    return folder / "a.ckpt.npz"


@pytest.mark.parametrize("option", [["--size", "64"], ["--optimizer", "adam"], ["--style-weight", "5"],
                                    ["--style-layers", "relu1_1"], ["--seed", "3"], ["--preset", "course"]])
def test_resume_refuses_an_option_that_conflicts_with_the_checkpoint(capsys, tmp_path, stopped_at_2, option):
    out = tmp_path / "r.png"
    code, err = run_cli(capsys, "stylize", "--resume", str(stopped_at_2), "-o", str(out), "--iterations", "12",
                        *option, "--quiet")
    assert code == 2 and err.count("\n") == 0 and option[0] in err and "checkpoint" in err, err
    assert not out.exists()


def test_resume_applies_more_iterations_and_settings_equal_to_the_checkpoints(capsys, tmp_path, stopped_at_2):
    from scratchnst.files.images import read_png_metadata

    out = tmp_path / "r.png"
    code, err = run_cli(capsys, "stylize", "--resume", str(stopped_at_2), "-o", str(out), "--iterations", "1",
                        "--quiet")
    assert code == 2 and "--iterations 2 or more" in err and err.count("\n") == 0, err  # 2 are done already
    code, err = run_cli(capsys, "stylize", "--resume", str(stopped_at_2), "-o", str(out), "--iterations", "6",
                        "--size", "32", "--optimizer", "lbfgs", "--quiet", "--no-plot")
    assert code == 0, err
    meta = read_png_metadata(out)
    assert meta["scratchnst:iterations"] == "6" and '"iterations": 6' in meta["scratchnst:settings"]


# ------------------------------------------------------------------ memory


def test_the_memory_estimate_counts_the_style_images(monkeypatch, tmp_path, capsys):
    """--size 32 fits 1.2 GiB, but not with style images 100 times its size: refused up front, one line."""
    from scratchnst.cli import stylize as stylize_cli
    from scratchnst.transfer import estimate
    from scratchnst.transfer.settings import Settings

    monkeypatch.setattr(estimate, "available_memory_bytes", lambda: int(1.2 * 2**30))
    settings = Settings(content="chelsea", styles=["starry_night"], size=32)
    stylize_cli.preflight(settings, (21, 32), [(32, 40)], quiet=True)  # fits
    with pytest.raises(ScratchNSTError, match="--style-scale"):
        stylize_cli.preflight(settings, (21, 32), [(2527, 3200)], quiet=True)

    def started(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(stylize_cli, "stylize", started)
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "--size", "32", "--style-scale", "100",
                        "--quiet", "-o", str(tmp_path / "o.png"))
    assert code == 2 and err.count("\n") == 0 and "--style-scale" in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_long_history_is_what_the_estimate_says_to_lower(monkeypatch):
    """L-BFGS's history, not the size, is what a huge --history asks for; and it never holds more pairs than
    iterations."""
    from scratchnst.cli import stylize as stylize_cli
    from scratchnst.transfer import estimate
    from scratchnst.transfer.settings import Settings

    monkeypatch.setattr(estimate, "available_memory_bytes", lambda: 6 * 2**30)
    settings = Settings(content="chelsea", styles=["starry_night"], size=1024, history=10**9, iterations=400)
    with pytest.raises(ScratchNSTError) as e:
        stylize_cli.preflight(settings, (683, 1024), quiet=True)
    assert "--history" in str(e.value) and "--size" not in str(e.value), e.value
    stylize_cli.preflight(Settings(content="chelsea", styles=["starry_night"], size=1024, history=10**9,
                                   iterations=20), (683, 1024), quiet=True)  # 20 pairs at most: fits


def test_a_print_size_that_does_not_fit_is_told_which_tile_does(monkeypatch, tmp_path, capsys):
    """4096 px does not fit 6 GiB whole; the refusal names a --tile that fits, and that tile passes the check."""
    import re

    from scratchnst.cli import stylize as stylize_cli
    from scratchnst.transfer import estimate
    from scratchnst.transfer.settings import Settings

    monkeypatch.setattr(estimate, "available_memory_bytes", lambda: 6 * 2**30)
    settings = Settings(content="chelsea", styles=["starry_night"], size=4096, optimizer="adam")
    with pytest.raises(ScratchNSTError) as e:
        stylize_cli.preflight(settings, (4096, 4096), quiet=True)
    tile = int(re.search(r"--tile (\d+)", str(e.value)).group(1))
    assert "--size" not in str(e.value), e.value
    tiled = Settings(content="chelsea", styles=["starry_night"], size=4096, optimizer="adam", tile=tile)
    stylize_cli.preflight(tiled, (4096, 4096), quiet=True)  # fits
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "--tile", "0", "-o", str(tmp_path / "o.png"))
    assert code == 2 and "--tile" in err and err.count("\n") <= 1, err


def test_out_of_memory_anywhere_is_one_line(monkeypatch, tmp_path, capsys):
    from scratchnst.cli import stylize as stylize_cli

    def load_inputs(settings):
        raise MemoryError("Unable to allocate 28.6 GiB for an array with shape (3, 65536, 39000) and data type float32")

    monkeypatch.setattr(stylize_cli, "load_inputs", load_inputs)
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "--quiet", "-o", str(tmp_path / "o.png"))
    assert code == 2 and err.count("\n") == 0 and "out of memory" in err and "28.6 GiB" in err, err


# ------------------------------------------------------------------ messages


def test_a_late_error_is_one_line_with_no_numpy_warnings(tmp_path):
    """A style weight of 1e300 overflows float32 in the first Adam iteration: a real process, not quiet, says so
    in exactly one line on stderr (no RuntimeWarning, no progress bar, no estimate) and writes nothing."""
    proc = subprocess.run([sys.executable, "-m", "scratchnst", "stylize", "chelsea", "starry_night", "--size", "32",
                           "--iterations", "5", "--optimizer", "adam", "--style-weight", "1e300",
                           "-o", str(tmp_path / "o.png")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scratchnst: error: the loss became"), proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_file_name_with_a_line_break_keeps_the_error_on_one_line(capsys, tmp_path):
    """A message that quotes such a name (here: the file is not an image) shows the break as \\n."""
    (tmp_path / "a\nb.jpg").write_text("not an image")
    code, err = run_cli(capsys, "stylize", str(tmp_path / "a\nb.jpg"), "starry_night", "-o", str(tmp_path / "o.png"))
    assert code == 2 and err.count("\n") == 0 and "a\\nb.jpg" in err, err


def test_the_final_loss_is_reported_when_no_iteration_ran(capsys, tmp_path):
    """--iterations 0 still evaluates the starting image: its loss is known, not nan."""
    assert main(["stylize", "chelsea", "starry_night", "--size", "32", "--iterations", "0", "--quiet",
                 "--no-plot", "-o", str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out
    final = out.split("final loss ")[1].split(";")[0]
    assert float(final) > 0, out


@pytest.mark.parametrize("argv, expect", [
    (["--size", "1e9"], "from 16 to 16384"),
    (["--size", "2.5"], "whole number"),
    (["--iterations", "1e400"], "whole number"),
])
def test_integers_written_as_floats_get_the_right_message(capsys, tmp_path, argv, expect):
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", *argv, "-o", str(tmp_path / "o.png"))
    assert code == 2 and err.count("\n") == 0 and expect in err and "must be a number" not in err, err


def test_a_history_of_1e9_runs_as_its_iterations_need_no_more(capsys, tmp_path):
    code, err = run_cli(capsys, "stylize", "chelsea", "starry_night", "--size", "32", "--iterations", "1",
                        "--history", "1e9", "--quiet", "--no-plot", "-o", str(tmp_path / "o.png"))
    assert code == 0, err
