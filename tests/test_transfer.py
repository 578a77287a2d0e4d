"""Style transfer end to end at tiny sizes: the loss falls, seeds reproduce,
an interrupted run resumes to the same image, and colour modes and scales work."""

import json

import numpy as np
import pytest

from scratchnst.errors import ScratchNSTError
from scratchnst.files import images
from scratchnst.files.checkpoint import load_checkpoint, save_checkpoint
from scratchnst.transfer.levels import scale_sizes
from scratchnst.transfer.loop import stylize
from scratchnst.transfer.settings import Settings


def small(**kw):
    base = dict(content="chelsea", styles=["starry_night"], size=40, iterations=6)
    base.update(kw)
    return Settings(**base)


def test_loss_falls_and_image_changes():
    """Floor for CI: 15 L-BFGS iterations at 40 px lower the loss at least 5x."""
    result = stylize(small(iterations=15))
    total = result.history["total"]
    print(f"loss {total[0]:.4g} -> {total[-1]:.4g} ({total[0] / total[-1]:.1f}x) in {len(total)} iterations")
    assert total[-1] < total[0] / 5
    assert result.rgb.shape == (27, 40, 3) and result.rgb.dtype == np.uint8  # chelsea is 451 x 300
    content = images.load_image(images.bundled_image("chelsea"), long_side=40)
    assert np.abs(result.rgb.astype(int) - content).mean() > 3  # it did paint something


def test_adam_lowers_the_loss():
    result = stylize(small(optimizer="adam", lr=5.0, iterations=15))
    total = result.history["total"]
    assert total[-1] < total[0] / 2, (total[0], total[-1])


def test_same_seed_same_image_other_seed_other_image():
    a = stylize(small(init="noise", seed=3, iterations=3)).rgb
    b = stylize(small(init="noise", seed=3, iterations=3)).rgb
    c = stylize(small(init="noise", seed=4, iterations=3)).rgb
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 1


def test_resume_gives_the_uninterrupted_image(tmp_path):
    """Stop after 4 of 10 iterations (as Ctrl-C would), resume from the checkpoint,
    and end with exactly the image of an uninterrupted run (NumPy backend)."""
    settings = small(iterations=10, init="blend", seed=7)
    full = stylize(settings)

    ckpt = tmp_path / "run.ckpt.npz"

    def stop_at_4(level, n_levels, it, terms):
        if it == 4:
            raise KeyboardInterrupt

    stopped = stylize(small(iterations=10, init="blend", seed=7), on_iteration=stop_at_4, checkpoint_path=ckpt)
    assert stopped.interrupted and stopped.iterations == 4
    resumed = stylize(None, resume=load_checkpoint(ckpt), checkpoint_path=ckpt)
    assert not resumed.interrupted and resumed.iterations == 10
    assert resumed.history["total"] == full.history["total"]
    np.testing.assert_array_equal(resumed.rgb, full.rgb)


@pytest.fixture(scope="module")
def two_scales_uninterrupted():
    """A 64 px run over two levels (32 px, then 64 px), start to end."""
    return stylize(small(size=64, scales=2, iterations=3))


@pytest.mark.parametrize("where", ["on_level", "first evaluation"])
def test_ctrl_c_as_a_finer_level_starts_resumes_that_level(tmp_path, monkeypatch, two_scales_uninterrupted, where):
    """Ctrl-C after level 0 has finished but before level 1's first iteration (as its
    progress bar appears, or inside its first loss evaluation): the resumed run
    starts level 1 from the upsampled image and ends with the uninterrupted image."""
    from scratchnst.method import objective

    full = two_scales_uninterrupted
    ckpt = tmp_path / "run.ckpt.npz"

    def stop_as_level_1_starts(level, n_levels, shape):
        if level == 1:
            raise KeyboardInterrupt

    real = objective.Objective.value_and_grad

    def stop_at_full_size(self, x):
        if x.shape[1:] == full.rgb.shape[:2]:
            raise KeyboardInterrupt
        return real(self, x)

    with monkeypatch.context() as m:
        if where == "first evaluation":
            m.setattr(objective.Objective, "value_and_grad", stop_at_full_size)
        try:
            stopped = stylize(small(size=64, scales=2, iterations=3), checkpoint_path=ckpt,
                              on_level=stop_as_level_1_starts if where == "on_level" else None)
        except KeyboardInterrupt:  # let pytest report it as a failure, not stop the session
            pytest.fail("Ctrl-C after a finished level escaped stylize without a checkpoint")
    assert stopped.interrupted and set(stopped.history["level"]) == {0}
    assert stopped.rgb.shape[1] == 32  # the last completed iteration's image: level 0's
    resumed = stylize(None, resume=load_checkpoint(ckpt), checkpoint_path=ckpt)
    assert not resumed.interrupted
    assert resumed.rgb.shape == full.rgb.shape and 1 in resumed.history["level"]
    assert resumed.history["total"] == full.history["total"]
    np.testing.assert_array_equal(resumed.rgb, full.rgb)


def test_two_scales_and_colour_modes():
    assert scale_sizes(1024, 0) == [256, 512, 1024]
    assert scale_sizes(512, 0) == [256, 512]
    assert scale_sizes(300, 1) == [300]
    r = stylize(small(size=64, scales=2, iterations=3))
    assert r.rgb.shape[1] == 64 and set(r.history["level"]) == {0, 1}
    for mode in ("luminance", "histogram"):
        r = stylize(small(preserve_color=mode, iterations=3))
        assert r.rgb.shape == (27, 40, 3)
    # luminance-only transfer keeps the content's colour: its I and Q channels
    from scratchnst.method import color

    content = images.load_image(images.bundled_image("chelsea"), long_side=40).astype(float)
    r = stylize(small(preserve_color="luminance", iterations=3))
    iq_out = color.rgb_to_yiq(r.rgb.astype(float))[..., 1:]
    iq_in = color.rgb_to_yiq(content)[..., 1:]
    assert np.abs(iq_out - iq_in).mean() < 2.0  # only 0..255 clipping and rounding change them


def test_two_style_images_with_blend():
    r = stylize(small(styles=["starry_night", "great_wave"], style_blend=[0.7, 0.3], iterations=3))
    assert r.rgb.shape == (27, 40, 3)


def test_nan_loss_is_a_clear_error(monkeypatch):
    from scratchnst.method import objective

    real = objective.Objective.value_and_grad

    def poisoned(self, x):
        loss, grad = real(self, x)
        return (float("nan") if self.n_evals > 2 else loss), grad

    monkeypatch.setattr(objective.Objective, "value_and_grad", poisoned)
    with pytest.raises(ScratchNSTError, match="NaN|nan"):
        stylize(small(optimizer="adam", iterations=5))


def test_checkpoint_round_trip_without_pickle(tmp_path):
    state = {"a": np.arange(3.0), "n": 4, "hist": [np.ones((2, 2)), np.zeros(1)], "s": "x", "f": 1.5}
    save_checkpoint(tmp_path / "c.npz", state)
    back = load_checkpoint(tmp_path / "c.npz", validate=False)  # not a run: only the container is checked
    np.testing.assert_array_equal(back["a"], state["a"])
    np.testing.assert_array_equal(back["hist"][0], state["hist"][0])
    assert back["n"] == 4 and back["s"] == "x" and back["f"] == 1.5
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ScratchNSTError, match="not a readable scratchnst checkpoint"):
        load_checkpoint(tmp_path / "bad.npz")


def test_settings_validation():
    for bad in [dict(size=8), dict(iterations=-1), dict(optimizer="sgd"), dict(device="tpu"),
                dict(noise_ratio=2.0), dict(styles=[]), dict(style_blend=[1, 2])]:
        with pytest.raises(ScratchNSTError):
            small(**bad).validate()


@pytest.mark.parametrize("init, pooling, scales", [("content", "max", 1), ("noise", "avg", 3), ("blend", "avg", 3)])
def test_the_start_chooses_pooling_and_levels_left_unset(init, pooling, scales):
    # From noise, one max-pooled level ends as texture over speckle (benchmarks/README.md):
    # noise and blend starts default to average pooling on three levels.
    s = small(init=init, size=256).validate()
    assert (s.pooling, s.scales) == (pooling, scales)
    # Levels halve down to 64 px at most: a smaller run gets fewer (40 px: one).
    assert small(init=init, size=128).validate().scales == min(scales, 2)
    assert small(init=init, size=40).validate().scales == 1
    given = small(init=init, pooling="max" if pooling == "avg" else "avg", scales=2).validate()
    assert (given.pooling, given.scales) == ("max" if pooling == "avg" else "avg", 2)
    with pytest.raises(ScratchNSTError, match="pooling"):
        small(init=init, pooling="min").validate()


@pytest.mark.parametrize("argv, iterations, pooling, scales", [
    ([], 100, "max", 1), (["--init", "noise"], 200, "avg", 3), (["--init", "blend", "--pooling", "max"], 200, "max", 3),
    (["--init", "noise", "--iterations", "50", "--scales", "1"], 50, "avg", 1)])
def test_the_demo_from_noise_runs_the_recipe_that_reaches_the_content_starts_loss(
        monkeypatch, argv, iterations, pooling, scales):
    from scratchnst.cli import demo
    from scratchnst.cli.main import build_parser

    seen = {}
    monkeypatch.setattr(demo, "run_stylize", lambda settings, *a, **k: seen.setdefault("s", settings) and 0)
    args = build_parser("demo").parse_args(["demo", *argv])
    demo.run(args)
    s = seen["s"].validate()
    assert (s.iterations, s.pooling, s.scales) == (iterations, pooling, scales)


def test_metadata_round_trip_through_png(tmp_path):
    from scratchnst.cli import main

    out = tmp_path / "o.png"
    assert main(["stylize", "chelsea", "starry_night", "-o", str(out), "--size", "32", "--iterations", "2",
                 "--seed", "11", "--quiet", "--no-plot"]) == 0
    meta = images.read_png_metadata(out)
    settings = json.loads(meta["scratchnst:settings"])
    assert settings["seed"] == 11 and settings["size"] == 32 and meta["scratchnst:seed"] == "11"
