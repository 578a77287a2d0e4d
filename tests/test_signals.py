"""Ctrl-C and SIGTERM never lose a run: a signal during the run or while its result
is saved ends with the image and a checkpoint on disk, whole, and no temporary left;
two signals during a save abandon it but keep the previous checkpoint; temporaries a
kill left behind are cleared by the next run to the same output."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scratchnst.cli import main
from scratchnst.files.checkpoint import load_checkpoint
from scratchnst.files.images import load_image

RUN = ["stylize", "chelsea", "starry_night", "--size", "32", "--quiet"]


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt in these tests, even where the test run inherited it ignored
    (a job started in the background by a non-interactive shell, as a CI runner may be)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err.strip()


def names(folder):
    """Every entry of ``folder``, hidden temporaries included, sorted."""
    return sorted(p.name for p in Path(folder).iterdir())


def signal_on_replace(monkeypatch, target, times=1, nth=1, signum=signal.SIGINT):
    """Deliver ``signum`` ``times`` times as the ``nth`` temporary is about to be renamed onto ``target``:
    the last moment of a save, when a lost signal or a lost file would show. Returns the calls seen."""
    real = os.replace
    seen = []

    def replace(src, dst):
        if Path(dst).name == target:
            seen.append(dst)
            if len(seen) == nth:
                for _ in range(times):
                    signal.raise_signal(signum)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return seen


@pytest.mark.parametrize("target", ["o.png", "o.losses.png", "o.ckpt.npz"])
def test_ctrl_c_while_the_result_is_saved_lets_the_save_finish(tmp_path, monkeypatch, capsys, target):
    """A Ctrl-C as the final image, loss plot or checkpoint is written: all three are written, whole, then exit 130."""
    seen = signal_on_replace(monkeypatch, target)
    code, err = run_cli(capsys, *RUN, "--iterations", "2", "--checkpoint-every", "0", "-o", str(tmp_path / "o.png"))
    assert seen, f"{target} was never written"
    assert code == 130, err
    assert names(tmp_path) == ["o.ckpt.npz", "o.losses.png", "o.png"], err  # and no temporary
    assert load_image(tmp_path / "o.png").shape == (21, 32, 3)
    assert load_checkpoint(tmp_path / "o.ckpt.npz")["optimizer"]["n_iter"] == 2
    assert err.count("\n") == 0 and "--resume" in err, err


def test_two_ctrl_c_during_the_save_abandon_it_and_keep_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    """The user insists: two Ctrl-Cs while the final checkpoint is written stop at once; the checkpoint of
    iteration 3 (written by --checkpoint-every 1) stays whole, the image is there, and no temporary is left."""
    signal_on_replace(monkeypatch, "o.ckpt.npz", times=2, nth=4)  # after the checkpoints of iterations 1, 2, 3
    code, err = run_cli(capsys, *RUN, "--iterations", "3", "--checkpoint-every", "1", "--no-plot",
                        "-o", str(tmp_path / "o.png"))
    assert code == 130, err
    assert names(tmp_path) == ["o.ckpt.npz", "o.png"]
    assert load_checkpoint(tmp_path / "o.ckpt.npz")["optimizer"]["n_iter"] == 3


def test_a_signal_in_a_snapshot_write_is_held_until_it_is_written(tmp_path, monkeypatch, capsys):
    """A Ctrl-C as the first --save-every image is written: that snapshot, the image and a checkpoint, exit 130."""
    signal_on_replace(monkeypatch, "o.scale1.iter0001.png")
    code, err = run_cli(capsys, *RUN, "--iterations", "3", "--save-every", "1", "--no-plot",
                        "-o", str(tmp_path / "o.png"))
    assert code == 130, err
    assert names(tmp_path) == ["o.ckpt.npz", "o.png", "o.scale1.iter0001.png"]
    assert load_checkpoint(tmp_path / "o.ckpt.npz")["optimizer"]["n_iter"] == 1


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_saves_the_image_and_a_checkpoint(tmp_path, signum, status):
    """A real process, signalled as a user or a job scheduler would once its second snapshot is on disk."""
    out = tmp_path / "o.png"
    argv = [sys.executable, "-m", "scratchnst", *RUN, "--iterations", "500", "--save-every", "1",
            "--checkpoint-every", "0", "--no-plot", "-o", str(out)]
    # A shell may start background jobs with SIGINT ignored; the user's process would not be.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    snapshot = tmp_path / "o.scale1.iter0002.png"
    deadline = time.monotonic() + 120
    while not snapshot.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == status, err
    assert out.is_file() and (tmp_path / "o.ckpt.npz").is_file(), names(tmp_path)
    assert not [n for n in names(tmp_path) if n.endswith(".tmp")], names(tmp_path)
    assert load_checkpoint(tmp_path / "o.ckpt.npz")["optimizer"]["n_iter"] >= 2
    assert err.strip().count("\n") == 0 and "--resume" in err, err


def test_stale_temporaries_of_our_naming_are_removed_by_the_next_run(tmp_path, capsys):
    """What a SIGKILL mid-write leaves (.NAME.XXXXXXXX.tmp) goes at the next run to that output; nothing else."""
    ours = [".o.png.0123abcd.tmp", ".o.ckpt.npz.deadbeef.tmp", ".o.losses.png.00000000.tmp",
            ".o.scale1.iter0001.png.12345678.tmp"]
    theirs = [".o.png.notours1.tmp", ".other.png.0123abcd.tmp", ".o.png.0123abcd.tmp.bak", "o.png.0123abcd.tmp",
              ".xo.png.0123abcd.tmp"]
    for name in ours + theirs:
        (tmp_path / name).write_bytes(b"partial")
    code, err = run_cli(capsys, *RUN, "--iterations", "1", "-o", str(tmp_path / "o.png"))
    assert code == 0, err
    assert names(tmp_path) == sorted(theirs + ["o.ckpt.npz", "o.losses.png", "o.png"])


def test_signals_held_delivers_one_after_the_block_a_second_at_once():
    from scratchnst.files.atomic import signals_held

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held() as held:
            signal.raise_signal(signal.SIGINT)
            reached.append(list(held))  # the block goes on: the signal is held
    assert reached == [[signal.SIGINT]]
    with signals_held() as held:  # a caller that dealt with it clears it: nothing is delivered
        signal.raise_signal(signal.SIGINT)
        held.clear()
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            reached.append("after the second")
    assert reached == [[signal.SIGINT]]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_sigterm_raises_terminated_only_within_sigterm_interrupts():
    from scratchnst.files.atomic import Terminated, sigterm_interrupts

    before = signal.getsignal(signal.SIGTERM)
    with sigterm_interrupts(), pytest.raises(Terminated):
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
    assert issubclass(Terminated, KeyboardInterrupt)  # so whatever saves on Ctrl-C saves on SIGTERM
