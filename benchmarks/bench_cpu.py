"""One style-transfer iteration on the CPU: scratchnst (NumPy) against PyTorch, side by side.

One iteration is what an optimiser step costs: a forward pass through VGG19 to
relu5_1 (content at relu4_2, style at relu1_1 ... relu5_1, Gatys' costs) and the
gradient with respect to the image only. Run from the repository root:

    python benchmarks/bench_cpu.py                      # 256, 512, 1024 px
    python benchmarks/bench_cpu.py --sizes 256 --repeats 3 --no-torch
    python benchmarks/bench_cpu.py --sizes 256 512 --conv gemm winograd   # algorithms side by side
    python benchmarks/bench_cpu.py --sizes 256 --concurrent 2            # two processes at once, each

Every (size, implementation) is timed in a fresh child process, so its peak
resident memory (``ru_maxrss``) is its own and not the high-water mark of a
larger size run before it. Children run one after another, NumPy (each ``--conv``
algorithm in turn) then PyTorch at each size, so all see the same machine load;
compare the ratios, not the absolute figures, on a shared machine.

The ceiling is NumPy's own float32 matmul speed, measured in the same run: no
implementation built on NumPy's GEMM can be faster than all its FLOPs at that rate.

PyTorch is optional (``pip install torch``); it is never a dependency of scratchnst.
On a machine where OpenBLAS is pinned to an older kernel by the environment, run
this a second time without the pin to see both:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_cpu.py
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PIN_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ---------------------------------------------------------------- FLOP counting


def conv_flops(size, depth="relu5_1"):
    """FLOPs of the convolutions in one iteration: forward plus gradient w.r.t. the input.

    A 3x3 convolution C -> O on an h x w map costs ``O * C * 9 * h * w`` multiply-adds
    (2 FLOPs each). The backward pass to the input is a convolution of the same
    size (the transposed kernel), so an iteration costs twice the forward.
    """
    from scratchnst.transfer import estimate

    return 2 * estimate.conv_flops(size, size, depth)  # forward, and the input gradient of the same size


# ---------------------------------------------------------------- environment


def blas_info():
    """Which BLAS NumPy uses and which kernel it picked (threadpoolctl), as one line."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed (pip install 'scratchnst[bench]')"
    rows = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(
        f"{r.get('internal_api')} {r.get('version')} kernel={r.get('architecture')} threads={r.get('num_threads')}"
        for r in rows
    ) or "no BLAS found by threadpoolctl"


def matmul_ceiling(n=2048, repeats=7):
    """NumPy float32 matmul GFLOP/s (median of repeats): the ceiling for GEMM-based convolution."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / sorted(times)[len(times) // 2] / 1e9


# ---------------------------------------------------------------- the two implementations


def images(size, seed=0):
    """Content, style and starting image (3, size, size) in the network's input space."""
    import numpy as np

    rng = np.random.default_rng(seed)
    content, style, x = (rng.uniform(-110, 130, (3, size, size)).astype(np.float32) for _ in range(3))
    return content, style, x


def numpy_iteration(size, conv):
    """``step() -> (loss, grad)`` for scratchnst on NumPy (the loss of :mod:`scratchnst.method.objective`)."""
    import scratchnst
    from scratchnst.method.objective import Objective

    net = scratchnst.load_vgg19(dtype="float32", backend="numpy", conv=conv)
    content, style, x = images(size)
    obj = Objective(net, content, [style], content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
                    alpha=None, beta=None)  # the gatys preset's, as torch_iteration takes them
    return lambda: obj.value_and_grad(x)


def torch_iteration(size, threads=None, device="cpu"):
    """The same loss in PyTorch: VGG19 features to relu5_1 with the same weights,
    targets and constants as :func:`numpy_iteration`, gradient with respect to the
    input only (weights frozen). Only PyTorch holds activations in this process, so
    its peak memory is its own."""
    import torch

    from scratchnst.files.weights import load_weights
    from scratchnst.method.presets import get_preset
    from scratchnst.network.architecture import LAYERS

    if threads:
        torch.set_num_threads(threads)
    params, _, _ = load_weights()
    mods, names = [], LAYERS[: LAYERS.index("relu5_1") + 1]
    for name in names:
        if name.startswith("conv"):
            k, b = params[name]
            conv = torch.nn.Conv2d(k.shape[1], k.shape[0], 3, padding=1)
            conv.weight.requires_grad_(False).copy_(torch.as_tensor(k, dtype=torch.float32))
            conv.bias.requires_grad_(False).copy_(torch.as_tensor(b, dtype=torch.float32))
            mods.append(conv.to(device))
        elif name.startswith("relu"):
            mods.append(torch.nn.ReLU(inplace=True))
        else:
            mods.append(torch.nn.MaxPool2d(2))
    del params
    layers = set(CONTENT_LAYERS) | set(STYLE_LAYERS)

    def features(img):
        acts, h = {}, img
        for name, m in zip(names, mods):
            h = m(h)
            if name in layers:
                acts[name] = h[0]
        return acts

    # Targets and constants exactly as scratchnst.method.objective.Objective builds them
    # (preset "gatys", one style image of the content's size).
    preset = get_preset("gatys")
    content, style, x0 = (torch.from_numpy(a)[None].to(device) for a in images(size))
    with torch.no_grad():
        P = {n: a.clone() for n, a in features(content).items() if n in CONTENT_LAYERS}
        A = {}
        for n, a in features(style).items():
            if n in STYLE_LAYERS:
                F = a.reshape(a.shape[0], -1)
                A[n] = F @ F.T
    k_content = {n: preset.content_k(P[n].shape[0], P[n].shape[1] * P[n].shape[2]) for n in CONTENT_LAYERS}
    w_l = preset.layer_weight(len(STYLE_LAYERS))
    k_style = {}
    for n in STYLE_LAYERS:
        C = A[n].shape[0]
        k_style[n] = w_l * preset.style_k(C, (size >> (int(n[4]) - 1)) ** 2)
    x = x0.clone().requires_grad_(True)

    def step():
        acts = features(x)
        loss_c = sum(k_content[n] * ((acts[n] - P[n]) ** 2).sum() for n in CONTENT_LAYERS)
        loss_s = 0
        for n in STYLE_LAYERS:
            F = acts[n].reshape(acts[n].shape[0], -1)
            loss_s = loss_s + k_style[n] * ((F @ F.T - A[n]) ** 2).sum()
        loss = preset.alpha * loss_c + preset.beta * loss_s
        (grad,) = torch.autograd.grad(loss, x)
        return float(loss.detach()), grad[0]  # float() synchronises, as the Objective's does

    return step


# ---------------------------------------------------------------- one child = one (impl, size)


def child(impl, size, conv, warmup, repeats, threads, ref_path):
    import numpy as np

    step = numpy_iteration(size, conv) if impl == "numpy" else torch_iteration(size, threads)
    for _ in range(warmup):
        loss, grad = step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        loss, grad = step()
        times.append(time.perf_counter() - t)
    grad = np.asarray(grad.cpu()) if impl == "torch" else np.asarray(grad)
    result = {"impl": impl, "size": size, "times": times, "loss": float(loss),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    if impl == "numpy":
        np.save(ref_path, grad)  # torch's child checks its gradient against this one
    elif os.path.exists(ref_path):
        ref = np.load(ref_path)
        result["grad_rel_err"] = float(np.abs(grad - ref).max() / np.abs(ref).max())
    return result


def run_child(args, impl, size, copies=1):
    """Time ``impl`` at ``size`` in a fresh child; with ``copies`` > 1, that many children at once.

    Concurrent children are what a user running two jobs on one machine gets: each
    reports its own times, and the result is the slowest child's (its median), with
    every child's median listed.
    """
    cmd = [sys.executable, __file__, "--child", impl, "--sizes", str(size), "--conv", args.conv,
           "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--threads", str(args.threads),
           "--ref", args.ref]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(copies)]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            tail = (err.strip().splitlines() or ["(no output)"])[-1]
            return {"impl": impl, "size": size, "error": tail}
        results.append(json.loads(out.strip().splitlines()[-1]))
    if copies == 1:
        return results[0]
    slowest = max(results, key=lambda r: median(r["times"]))
    return dict(slowest, medians=[median(r["times"]) for r in results],
                peak_rss_mb=max(r["peak_rss_mb"] for r in results))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def concurrent_table(args, rows, convs, have_torch):
    """``--concurrent N``: N children of each implementation at once, against its single-process time above."""
    N = args.concurrent
    print(f"\n{N} processes at once, each with --threads {args.threads} (a user's two jobs on one machine):")
    print(f"{'size':>5} {'impl':>14} {'alone':>8} {'each':>22} {'slowdown':>9}")
    out, slowdowns = [], {}
    for r in rows:
        if "median_s" not in r:
            continue
        impl = "numpy" if r["label"].startswith("np ") else "torch"
        if impl == "torch" and not have_torch:
            continue
        args.conv = r.get("conv") or convs[0]
        args.ref = os.path.join(tempfile.gettempdir(), f"scratchnst-bench-concurrent-{os.getpid()}.npy")
        c = run_child(args, impl, r["size"], copies=N)
        if "error" in c:
            print(f"{r['size']:>5} {r['label']:>14} failed: {c['error']}")
            continue
        slowdown = max(c["medians"]) / r["median_s"]
        slowdowns[r["size"], r["label"]] = slowdown
        each = " ".join(f"{m:.3f}" for m in c["medians"])
        print(f"{r['size']:>5} {r['label']:>14} {r['median_s']:8.3f} {each:>22} {slowdown:8.2f}x", flush=True)
        out.append(dict(c, label=f"{r['label']} x{N}", concurrent=N, slowdown=slowdown))
    for (size, label), sd in slowdowns.items():
        if label != "torch" and (size, "torch") in slowdowns:
            print(f"{size:>5} {label:>14} slowdown / torch's slowdown: {sd / slowdowns[size, 'torch']:.2f}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--repeats", type=int, default=5, help="timed iterations per size (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="BLAS and PyTorch threads (same for both)")
    p.add_argument("--conv", nargs="+", default=None,
                   help="scratchnst conv algorithm(s), timed side by side (default: load_vgg19's)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--concurrent", type=int, default=1, metavar="N",
                   help="also time N processes at once per implementation, and each one's slowdown")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--child", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--ref", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        # thread counts must be fixed before NumPy (and its OpenBLAS) is imported
        print(json.dumps(child(args.child, args.sizes[0], args.conv[0], args.warmup, args.repeats, args.threads,
                              args.ref)))
        return 0

    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np

    import scratchnst.network.vgg

    convs = args.conv or [scratchnst.network.vgg.DEFAULT_CONV]
    unknown = [c for c in convs if c not in scratchnst.network.vgg.CONV_ALGORITHMS]
    if unknown:
        p.error(f"unknown --conv {', '.join(unknown)}; choose from {', '.join(scratchnst.network.vgg.CONV_ALGORITHMS)}")
    conv = ",".join(convs)
    try:
        import torch

        have_torch = not args.no_torch
        torch_version = torch.__version__
    except ImportError:
        have_torch, torch_version = False, "not installed"
    pins = {v: os.environ[v] for v in PIN_VARS if v in os.environ}
    print(f"machine : {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, PyTorch {torch_version}")
    print(f"BLAS    : {blas_info()}")
    print(f"pinned  : {pins or 'no OpenBLAS kernel pin in the environment'}")
    ceiling = matmul_ceiling()
    print(f"ceiling : NumPy float32 matmul 2048^3 {ceiling:.0f} GFLOP/s; threads {args.threads}; conv={conv}")
    print()
    header = f"{'size':>5} {'impl':>14} {'s/iter':>8} {'min':>7} {'GFLOP/s':>8} {'of ceil':>7} {'peak RSS':>9}  notes"
    print(header)
    rows = []
    tmp = tempfile.TemporaryDirectory()
    for size in args.sizes:
        flops = conv_flops(size)
        # One child per (implementation, size): "numpy" once per conv algorithm, then torch.
        impls = [("numpy", c) for c in convs] + ([("torch", None)] if have_torch else [])
        res = {}
        for impl, c in impls:
            label = f"np {c}" if impl == "numpy" else "torch"
            args.conv = c or convs[0]
            args.ref = os.path.join(tmp.name, f"grad{size}-{args.conv}.npy")  # torch checks against the first
            res[label] = r = run_child(args, impl, size)
            r["label"] = label
            if "error" in r:
                print(f"{size:>5} {label:>14} failed: {r['error']}")
                continue
            t = median(r["times"])
            r.update(median_s=t, gflops=flops / t / 1e9, conv_gflop=flops / 1e9, conv=c)
            ok = [(k, v) for k, v in res.items() if k != label and "median_s" in v]
            if impl == "torch":
                notes = "; ".join(f"{k}/torch time {v['median_s'] / t:.2f}x, "
                                  f"RSS {v['peak_rss_mb'] / r['peak_rss_mb']:.2f}x" for k, v in ok)
                notes += f"; gradients agree to {r.get('grad_rel_err', float('nan')):.0e}"
            else:
                notes = "; ".join(f"time {t / v['median_s']:.2f}x {k}" for k, v in ok)
            print(f"{size:>5} {label:>14} {t:8.3f} {min(r['times']):7.3f} {r['gflops']:8.0f} "
                  f"{r['gflops'] / ceiling:7.0%} {r['peak_rss_mb']:7.0f}MB  {notes}", flush=True)
            rows.append(r)
    if args.concurrent > 1:
        rows += concurrent_table(args, rows, convs, have_torch)
    print(f"\n(conv FLOPs per iteration: {', '.join(f'{s}px {conv_flops(s) / 1e9:.0f} G' for s in args.sizes)}; "
          f"'of ceil' = GFLOP/s over the matmul ceiling)")
    if args.json:
        Path(args.json).write_text(json.dumps({"ceiling_gflops": ceiling, "blas": blas_info(), "pins": pins,
                                               "conv": conv, "threads": args.threads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
