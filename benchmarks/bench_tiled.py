"""Tiled against untiled evaluation: seconds per value_and_grad and peak memory, size by size.

One evaluation is the Objective's ``value_and_grad`` (content at relu4_2, style at
relu1_1 ... relu5_1, float32, NumPy). Run from the repository root:

    python benchmarks/bench_tiled.py                        # 512 and 1024 px both ways, then 4096 px tiled once
    python benchmarks/bench_tiled.py --sizes 128 --big 256  # a quick check that it runs
    python benchmarks/bench_tiled.py --tile 512 --big 0     # another tile, no big run

Every (size, tile) runs in a fresh child process, so its peak resident memory
(``ru_maxrss``) is its own. The targets (content and style passes) are built before
the clock starts; their peak is in the RSS column, which is the whole child's.
``per px`` compares each row's seconds per pixel with the untiled run at the largest
of ``--sizes`` (the goal: at most 2.5x for the 4096 px tiled run, within ~4 GB).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def child(size, tile, warmup, repeats):
    """Time ``repeats`` evaluations at ``size`` px (``tile`` None: untiled); a JSON-able result."""
    import numpy as np

    import scratchnst
    from scratchnst.method.objective import Objective

    rng = np.random.default_rng(0)
    net = scratchnst.load_vgg19(dtype="float32")
    content, style = (rng.uniform(-110, 130, (3, size, size)).astype(np.float32) for _ in range(2))
    t = time.perf_counter()
    obj = Objective(net, content, [style], tile=tile)
    setup = time.perf_counter() - t
    del style
    x = content + rng.standard_normal(content.shape, dtype=np.float32)
    del content
    for _ in range(warmup):
        obj.value_and_grad(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        loss, _ = obj.value_and_grad(x)
        times.append(time.perf_counter() - t)
    return {"size": size, "tile": tile, "times": times, "setup_s": setup, "loss": loss,
            "tiles": len(obj.plan.tiles) if obj.plan else 1,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux


def run_child(size, tile, warmup, repeats, threads):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", str(size), str(tile or 0), str(warmup), str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"size": size, "tile": tile, "error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    from scratchnst.method.tiled import DEFAULT_TILE

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="timed tiled and untiled")
    p.add_argument("--big", type=int, default=4096, help="one tiled run at this size, 1 evaluation (0: none)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help=f"owned tile side (default {DEFAULT_TILE})")
    p.add_argument("--repeats", type=int, default=3, help="timed evaluations per case (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--child", type=int, nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        size, tile, warmup, repeats = args.child
        print(json.dumps(child(size, tile or None, warmup, repeats)))
        return 0

    # The untiled run at the largest size first: every other row's time per pixel is read against it.
    largest = max(args.sizes)
    cases = [(largest, None)] + [(s, t) for s in args.sizes for t in (None, args.tile) if (s, t) != (largest, None)]
    if args.big:
        cases.append((args.big, args.tile))
    print(f"tile {args.tile} px, {args.threads} threads, float32; per px: seconds per pixel over the untiled "
          f"{largest} px run's\n")
    print(f"{'size':>5} {'tile':>6} {'tiles':>5} {'s/eval':>8} {'setup s':>8} {'per px':>7} {'peak RSS':>9}  loss")
    rows, reference = [], None
    for size, tile in cases:
        big = size == args.big and size not in args.sizes
        r = run_child(size, tile, 0 if big else args.warmup, 1 if big else args.repeats, args.threads)
        rows.append(r)
        if "error" in r:
            print(f"{size:>5} {tile or '-':>6} failed: {r['error']}", flush=True)
            continue
        t = sorted(r["times"])[len(r["times"]) // 2]
        per_px = t / size**2
        if tile is None and size == largest:
            reference = per_px
        ratio = f"{per_px / reference:6.2f}x" if reference else "      -"
        print(f"{size:>5} {tile or '-':>6} {r['tiles']:>5} {t:8.2f} {r['setup_s']:8.2f} {ratio:>7} "
              f"{r['peak_rss_mb']:7.0f}MB  {r['loss']:.6g}", flush=True)
    by = {(r["size"], r["tile"]): r for r in rows if "error" not in r}
    for size in args.sizes:
        a, b = by.get((size, None)), by.get((size, args.tile))
        if a and b:
            print(f"{size} px: tiled/untiled loss {b['loss'] / a['loss'] - 1:+.1e} relative, "
                  f"time {sorted(b['times'])[len(b['times']) // 2] / sorted(a['times'])[len(a['times']) // 2]:.2f}x, "
                  f"RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"tile": args.tile, "threads": args.threads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
