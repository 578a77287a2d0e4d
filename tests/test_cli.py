"""The command line: every kind of bad input is one line on stderr, exit status 2,
no traceback and no output file."""

import subprocess
import sys

import pytest

from scratchnst.backend import gpu_available
from scratchnst.cli import main


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
