"""One style-transfer iteration on the GPU: scratchnst on CuPy against PyTorch CUDA.

The same iteration as ``bench_cpu.py`` (VGG19 to relu5_1, content at relu4_2,
style at relu1_1 ... relu5_1, gradient with respect to the image only), in float32
with TF32 off on both sides, timed with CUDA events around each iteration (median
of repeats, after warm-up). Run from the repository root:

    python benchmarks/bench_gpu.py                    # 512 and 1024 px
    python benchmarks/bench_gpu.py --sizes 512 --repeats 5 --no-torch

Needs CuPy and a CUDA device; PyTorch (with CUDA) is optional. Without a GPU it
prints one line saying so and exits with status 2.
"""

import argparse
import os
import sys
import time
from pathlib import Path

# TF32 off before CuPy is imported: CuPy reads CUPY_TF32 once, at import.
os.environ["CUPY_TF32"] = "0"

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cpu import CONTENT_LAYERS, STYLE_LAYERS, conv_flops, images, median, torch_iteration  # noqa: E402


def fail(msg):
    print(f"bench_gpu: {msg}", file=sys.stderr)
    sys.exit(2)


def gpu_or_exit():
    """CuPy and a usable CUDA device, or a one-line message and exit status 2."""
    from scratchnst.backend import get_xp
    from scratchnst.errors import ScratchNSTError

    try:
        return get_xp("cupy")
    except ScratchNSTError as e:
        fail(f"no GPU benchmark here: {e}")


def time_gpu(step, sync, event, warmup, repeats):
    """Median and all times (s) of ``step()`` measured with CUDA events; ``event()`` makes one."""
    for _ in range(warmup):
        out = step()
    times = []
    for _ in range(repeats):
        sync()
        start, end = event(), event()
        start.record()
        out = step()
        end.record()
        end.synchronize()
        times.append(elapsed_s(start, end))
    return median(times), times, out


def elapsed_s(start, end):
    if hasattr(start, "elapsed_time"):  # torch.cuda.Event
        return start.elapsed_time(end) / 1e3
    import cupy

    return cupy.cuda.get_elapsed_time(start, end) / 1e3


def cupy_iteration(size):
    import cupy

    import scratchnst
    from scratchnst.method.objective import Objective

    net = scratchnst.load_vgg19(dtype="float32", backend="cupy")
    content, style, x = (cupy.asarray(a) for a in images(size))
    obj = Objective(net, content, [style], content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS)
    return (lambda: obj.value_and_grad(x)), net.conv


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)

    cupy = gpu_or_exit()
    import numpy as np

    try:
        import torch

        have_torch = not args.no_torch and torch.cuda.is_available()
        torch_note = torch.__version__ + ("" if torch.cuda.is_available() else " (no CUDA: skipped)")
    except ImportError:
        have_torch, torch_note = False, "not installed"
    if have_torch:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # PyTorch at its best: cuDNN picks its fastest algorithm

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"device  : {name}, CuPy {cupy.__version__}, PyTorch {torch_note}, TF32 off")
    print(f"{'size':>5} {'impl':>6} {'s/iter':>8} {'min':>7} {'GFLOP/s':>8} {'GPU mem':>9}  notes")
    pool = cupy.get_default_memory_pool()
    for size in args.sizes:
        flops = conv_flops(size)
        pool.free_all_blocks()
        t0 = time.perf_counter()
        step, conv = cupy_iteration(size)
        t_cp, times, (_, g_cp) = time_gpu(step, cupy.cuda.Device().synchronize, cupy.cuda.Event,
                                          args.warmup, args.repeats)
        mem = pool.total_bytes() / 2**20  # the pool keeps what it has reserved: its high-water mark
        print(f"{size:>5} {'cupy':>6} {t_cp:8.4f} {min(times):7.4f} {flops / t_cp / 1e9:8.0f} {mem:7.0f}MB  "
              f"conv={conv}, setup {time.perf_counter() - t0:.1f}s", flush=True)
        g_cp = cupy.asnumpy(g_cp)
        del step
        pool.free_all_blocks()
        if not have_torch:
            continue
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        step = torch_iteration(size, device="cuda")
        t_pt, times, (_, g_pt) = time_gpu(step, torch.cuda.synchronize, lambda: torch.cuda.Event(enable_timing=True),
                                          args.warmup, args.repeats)
        mem = torch.cuda.max_memory_allocated() / 2**20
        g_pt = g_pt.cpu().numpy()
        err = float(np.abs(g_pt - g_cp).max() / np.abs(g_cp).max())
        print(f"{size:>5} {'torch':>6} {t_pt:8.4f} {min(times):7.4f} {flops / t_pt / 1e9:8.0f} {mem:7.0f}MB  "
              f"cupy/torch time {t_cp / t_pt:.2f}x; gradients agree to {err:.0e}", flush=True)
        del step
        torch.cuda.empty_cache()
    print("(GPU mem: CuPy pool reserved / PyTorch max allocated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
