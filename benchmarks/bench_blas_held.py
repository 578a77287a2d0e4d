"""One objective evaluation with BLAS held at one thread throughout, against BLAS left its own threads.

scratchnst's threads split the convolutions' work and hold BLAS at one thread inside
them (``scratchnst/network/fast/threads.py``). Between those passes the costs' Gram
products (and L-BFGS's dot products) are small BLAS calls of their own. This script
measures what holding BLAS at one thread for the whole evaluation
(``threads.blas_held``, what :class:`scratchnst.method.objective.Objective` does) is
worth against leaving those calls to BLAS's threads: both settings alternate,
``--rounds`` times ``--repeats`` evaluations each, on Gatys' objective (relu4_2 content,
relu1_1 ... relu5_1 style) of a bundled photo and painting. Run from the repository root:

    python benchmarks/bench_blas_held.py                    # 384 x 256 px
    python benchmarks/bench_blas_held.py --size 512 512 --rounds 4
"""

import argparse
import contextlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=2, default=[384, 256], metavar=("W", "H"))
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import numpy as np

    import scratchnst
    from scratchnst.files import images
    from scratchnst.method import objective
    from scratchnst.network.fast.threads import num_threads

    W, H = args.size
    net = scratchnst.load_vgg19(dtype="float32")
    content = net.preprocess(images.resize_to(images.load_image(images.bundled_image("chelsea")), (H, W)))
    style = net.preprocess(images.load_image(images.bundled_image("starry_night"), long_side=max(H, W)))
    obj = objective.Objective(net, content, [style])
    x = content.copy()
    held = objective.blas_held
    settings = {"held (the default)": held, "BLAS's own threads": lambda xp: contextlib.nullcontext()}
    times = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, hold in settings.items():
            objective.blas_held = hold
            try:
                obj.value_and_grad(x)  # one untimed, after the switch
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    obj.value_and_grad(x)
                    times[name].append(time.perf_counter() - t)
            finally:
                objective.blas_held = held
    print(f"{W}x{H} px, {num_threads()} threads, {args.rounds} rounds x {args.repeats} evaluations, alternating")
    for name, t in times.items():
        print(f"  {name:20s}: median {np.median(t) * 1e3:6.0f} ms, min {min(t) * 1e3:6.0f} ms")
    a, b = (np.median(t) for t in times.values())
    print(f"  held / own threads: {a / b:.2f}x (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
