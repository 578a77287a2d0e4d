"""The GPU user path, end to end, on the strict CPU stand-in for CuPy (tests/strict_cupy.py) and on a real GPU.

Every test here runs the package's CuPy code path (``device="gpu"``, ``backend="cupy"``):
everywhere with arrays that refuse what CuPy refuses (``strict_xp``, ``device_xp``'s
first value), and, where a CUDA device is present, with CuPy itself (``device_xp``'s
second value, marked ``gpu``). They check what the user
gets (an image, a checkpoint, a resume, a figure) against the NumPy path, and how
often the host waits for the device (the synchronisation budget).
"""

import re
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import LAYERS_USED  # tests/ is on sys.path (pytest rootdir conftest)

import scratchnst
from scratchnst.backend import to_numpy
from scratchnst.cli import main
from scratchnst.files.images import bundled_image, load_image
from scratchnst.method.lbfgs import LBFGS
from scratchnst.transfer.loop import stylize
from scratchnst.transfer.settings import Settings

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


def ran_on_the_device(xp):
    """True if the work just done went through ``xp``'s arrays (the stand-in counts its host reads)."""
    return xp.SYNCS.count > 0 if hasattr(xp, "SYNCS") else True


def small(**kw):
    base = dict(content="chelsea", styles=["starry_night"], size=40, iterations=5, device="gpu")
    base.update(kw)
    return Settings(**base)


def objective_at(size, backend="cupy"):
    net = scratchnst.load_vgg19(backend=backend)
    content = net.preprocess(load_image(bundled_image("astronaut"), long_side=size))
    style = net.preprocess(load_image(bundled_image("starry_night"), long_side=size))
    return net, scratchnst.Objective(net, content, [style], tv_weight=1e-3), content


# ------------------------------------------------------------------ the synchronisation budget


@pytest.mark.parametrize("size", [32, 64])
def test_one_evaluation_synchronises_once_after_launching_the_backward(strict_xp, size):
    """value_and_grad: one host transfer (every scalar term at once), and none before the backward pass starts."""
    net, obj, content = objective_at(size)
    obj.value_and_grad(content.copy())  # warm-up: kernels transformed and cached
    syncs_at_backward = []
    real_backward = net.backward

    def watched_backward(grads):
        syncs_at_backward.append(strict_xp.SYNCS.count)
        return real_backward(grads)

    net.backward = watched_backward
    strict_xp.reset_counters()
    loss, grad = obj.value_and_grad(content.copy())
    assert strict_xp.SYNCS.count == 1, strict_xp.SYNCS
    assert syncs_at_backward == [0]
    assert strict_xp.UPLOADS.count == 0, strict_xp.UPLOADS  # no constant uploaded again per call
    assert isinstance(loss, float) and isinstance(grad, strict_xp.ndarray)
    assert set(obj.terms["layers"]["style"]) == set(obj.style_layers)


@pytest.mark.parametrize("size", [32, 64])
def test_lbfgs_iteration_has_a_fixed_synchronisation_budget(strict_xp, size):
    """An L-BFGS iteration: its own SYNCS_PER_ITERATION, SYNCS_PER_EVALUATION per trial, the objective's one."""
    _, obj, content = objective_at(size)
    opt = LBFGS(history_size=5)
    opt.start(obj.value_and_grad, content.copy())
    opt.step(obj.value_and_grad)  # the first iteration also reads |g| once
    for _ in range(3):
        strict_xp.reset_counters()
        evals = opt.n_evals
        opt.step(obj.value_and_grad)
        evals = opt.n_evals - evals
        budget = LBFGS.SYNCS_PER_ITERATION + evals * (LBFGS.SYNCS_PER_EVALUATION + 1)
        print(f"{size} px: {strict_xp.SYNCS.count} syncs for {evals} evaluation(s), budget {budget}")
        assert strict_xp.SYNCS.count <= budget, strict_xp.SYNCS
    assert opt.state_dict()["s"].shape[0] >= 1  # the checkpoint of a full history works on the device


# ------------------------------------------------------------------ the network on the device


def test_float32_vgg19_on_the_device_matches_numpy(device_xp, rng):
    host = scratchnst.load_vgg19()
    device = scratchnst.load_vgg19(backend="cupy")
    x = rng.uniform(-100, 100, (3, 37, 29)).astype(np.float32)
    acts = host.forward(x, LAYERS_USED)
    acts_d = device.forward(device_xp.asarray(x), LAYERS_USED)
    grads = {n: rng.standard_normal(a.shape).astype(np.float32) for n, a in acts.items()}
    dx = host.backward(grads)
    dx_d = device.backward({n: device_xp.asarray(g) for n, g in grads.items()})
    for n in LAYERS_USED:
        np.testing.assert_allclose(to_numpy(acts_d[n]), acts[n], rtol=1e-5, atol=1e-5 * np.abs(acts[n]).max())
    np.testing.assert_allclose(to_numpy(dx_d), dx, rtol=1e-5, atol=1e-5 * np.abs(dx).max())


# ------------------------------------------------------------------ stylize on the device


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_stylize_on_the_device_matches_numpy(device_xp, tmp_path, optimizer):
    """The whole run with checkpoints every iteration: the image NumPy paints, to float32 rounding."""
    kw = dict(optimizer=optimizer, lr=5.0)
    gpu = stylize(small(**kw), checkpoint_path=tmp_path / "gpu.ckpt.npz", checkpoint_every=1)
    assert ran_on_the_device(device_xp)  # the run went through the device path
    cpu = stylize(small(device="cpu", **kw))
    assert gpu.rgb.shape == cpu.rgb.shape and gpu.rgb.dtype == np.uint8
    assert np.abs(gpu.rgb.astype(int) - cpu.rgb).max() <= 2
    np.testing.assert_allclose(gpu.history["total"], cpu.history["total"], rtol=1e-4)
    assert (tmp_path / "gpu.ckpt.npz").is_file()


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_ctrl_c_and_resume_on_the_device_give_the_uninterrupted_image(device_xp, tmp_path, optimizer):
    settings = dict(optimizer=optimizer, lr=5.0, iterations=6, scales=2, size=64, init="blend", seed=3)
    full = stylize(small(**settings))
    ckpt = tmp_path / "run.ckpt.npz"

    def stop(level, n_levels, it, terms):
        if level == 1 and it == 2:
            raise KeyboardInterrupt

    stopped = stylize(small(**settings), on_iteration=stop, checkpoint_path=ckpt)
    assert stopped.interrupted
    from scratchnst.files.checkpoint import load_checkpoint

    resumed = stylize(None, resume=load_checkpoint(ckpt))
    np.testing.assert_array_equal(resumed.rgb, full.rgb)
    assert resumed.history["total"] == full.history["total"]


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_colour_preservation_on_the_device(device_xp, mode):
    gpu = stylize(small(preserve_color=mode, scales=2, size=64))
    cpu = stylize(small(preserve_color=mode, scales=2, size=64, device="cpu"))
    assert gpu.rgb.shape == cpu.rgb.shape
    assert np.abs(gpu.rgb.astype(int) - cpu.rgb).max() <= 2


def test_stylize_and_demo_commands_on_the_device(device_xp, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert main(["stylize", "chelsea", "starry_night", "-o", str(out), "--size", "32", "--iterations", "3",
                 "--device", "gpu", "--quiet", "--checkpoint-every", "1"]) == 0
    assert out.is_file() and (tmp_path / "out.ckpt.npz").is_file()
    assert ran_on_the_device(device_xp)  # the command went through the device path
    assert main(["stylize", "--resume", str(tmp_path / "out.ckpt.npz"), "-o", str(tmp_path / "again.png"),
                 "--quiet"]) == 0
    demo = tmp_path / "demo.png"
    assert main(["demo", "-o", str(demo), "--size", "32", "--iterations", "2", "--device", "gpu", "--quiet"]) == 0
    assert load_image(demo).shape[2] == 3
    assert "error" not in capsys.readouterr().err


# ------------------------------------------------------------------ seeing inside, on the device


@pytest.mark.parametrize("view", [
    ["features", "astronaut", "--layer", "relu2_1", "-n", "4", "--size", "48"],
    ["patches", "--layer", "relu2_1", "--unit", "3", "-k", "2", "--size", "40"],
    ["maximize", "--layer", "relu2_1", "--units", "1", "2", "--size", "24", "--steps", "3"],
    ["maximize", "--layer", "relu3_1", "--units", "1", "--size", "40", "--steps", "2", "--where", "centre"],
    ["reconstruct", "astronaut", "--layers", "relu1_1", "--size", "24", "--steps", "2"],
    ["reconstruct", "astronaut", "--layers", "relu2_1", "--style", "--size", "24", "--steps", "2"],
], ids=["features", "patches", "maximize", "maximize-centre", "reconstruct", "texture"])
def test_every_visualize_view_on_the_device(device_xp, tmp_path, view):
    out = tmp_path / "fig.png"
    assert main(["visualize", *view, "-o", str(out), "--device", "gpu"]) == 0
    assert out.stat().st_size > 1000
    assert ran_on_the_device(device_xp)  # the views went through the device path


def test_synthesis_on_the_device_matches_numpy(device_xp):
    from scratchnst.inside.synthesis import maximize_unit, reconstruct

    host, device = scratchnst.load_vgg19(dtype="float64"), scratchnst.load_vgg19(dtype="float64", backend="cupy")
    x, hist = maximize_unit(device, "relu2_1", 5, size=24, steps=3)
    x_h, hist_h = maximize_unit(host, "relu2_1", 5, size=24, steps=3)
    np.testing.assert_allclose(to_numpy(x), x_h, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(hist, hist_h, rtol=1e-9)
    image = host.preprocess(load_image(bundled_image("astronaut"), long_side=24))
    r, h = reconstruct(device, device_xp.asarray(image), "relu1_1", steps=2)
    r_h, h_h = reconstruct(host, image, "relu1_1", steps=2)
    np.testing.assert_allclose(to_numpy(r), r_h, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(h, h_h, rtol=1e-8)


# ------------------------------------------------------------------ memory


def test_the_gpu_estimate_counts_the_gpu_bands():
    from scratchnst.network.fast.bands import BAND_BYTES
    from scratchnst.transfer import estimate

    assert estimate.gpu_band_bytes(1024, 1024) == 2 * BAND_BYTES["cupy"]  # capped at two full bands
    assert estimate.gpu_band_bytes(32, 32) < 2 * BAND_BYTES["numpy"]  # a small image needs small buffers
    # conv1_2 at 64 x 64: a 9 * 64-channel im2col, the largest buffer at that size
    assert estimate.gpu_band_bytes(64, 64) == 2 * 9 * 64 * 64 * 64 * 4
    gpu = estimate.memory_bytes(1024, 1024, device="gpu")
    cpu = estimate.memory_bytes(1024, 1024)
    assert gpu - cpu == estimate.weight_bytes() + 2 * BAND_BYTES["cupy"] - estimate.BASE_BYTES - estimate.BAND_BYTES


def test_a_run_that_does_not_fit_the_gpu_is_refused_up_front(strict_xp, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(strict_xp.cuda.runtime, "free_bytes", 1 << 30)  # 1 GiB free on the device
    out = tmp_path / "o.png"
    code = main(["stylize", "chelsea", "starry_night", "-o", str(out), "--size", "1024", "--device", "gpu",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "GPU memory" in err and "--size" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ tutorial 06


def test_tutorial_06_runs_its_gpu_cells_on_the_device(strict_xp, monkeypatch, tmp_path, capsys):
    """Tutorial 06's code, run with a "GPU" present: its CuPy cells (events, stream syncs, the profiler's
    benchmark) go through the stand-in, and the CuPy results it prints agree with NumPy's."""
    import sys
    import types

    sys.path.insert(0, str(TUTORIALS))
    from build import parse_percent

    def benchmark(fn, args, n_repeat=1, n_warmup=0):  # cupyx.profiler.benchmark's result, timed on the host
        times = []
        for _ in range(n_warmup):
            fn(*args)
        for _ in range(n_repeat):
            t = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - t)
        return types.SimpleNamespace(gpu_times=np.array(times), cpu_times=np.array(times))

    profiler = types.SimpleNamespace(benchmark=benchmark)
    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(profiler=profiler))
    monkeypatch.setitem(sys.modules, "cupyx.profiler", profiler)
    monkeypatch.setenv("SCRATCHNST_TUTORIAL_SIZE", "small")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(TUTORIALS)
    cells = parse_percent((TUTORIALS / "src" / "06_gpu_with_cupy.py").read_text())
    namespace = {"__name__": "tutorial_06"}
    for cell in cells:
        if cell.cell_type == "code":
            exec(compile(cell.source, "06_gpu_with_cupy", "exec"), namespace)  # noqa: S102 -- our own tutorial
    out = capsys.readouterr().out
    assert namespace["GPU"] is True
    assert "GPU available: True" in out and "CUDA events: median" in out and "cupyx.profiler.benchmark" in out
    assert ("cupy", "float32") in namespace["timings"] and ran_on_the_device(strict_xp)
    match = re.search(r"cupy vs numpy: J (\S+) vs (\S+),", out)
    assert match and abs(float(match[1]) / float(match[2]) - 1) < 1e-4, out[:2000]
