"""What importing scratchnst costs: `python -X importtime` and fresh-interpreter wall times.

    python benchmarks/import_time.py                  # this checkout
    python benchmarks/import_time.py --against REV    # and a git revision, side by side

Each figure is the median over ``--repeats`` fresh interpreters, run alternately for
the two trees so that both see the same machine load. ``--against`` checks REV out
into a temporary git worktree and removes it afterwards.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "PIL", "h5py", "matplotlib", "tqdm")

# (what is measured, interpreter arguments, the module whose -X importtime total is reported)
CASES = (
    ("import scratchnst", ["-c", "import scratchnst"], "scratchnst"),
    ("import scratchnst.cli", ["-c", "import scratchnst.cli"], "scratchnst.cli"),
    ("scratchnst --help", ["-m", "scratchnst", "--help"], None),
    ("first use of the API", ["-c", "from scratchnst import load_vgg19, Objective, minimize"], None),
)


def run(tree, args, importtime=False):
    """Run a fresh interpreter on ``tree``; return (wall seconds, stderr)."""
    flags = ["-X", "importtime"] if importtime else []
    t = time.perf_counter()
    r = subprocess.run([sys.executable, *flags, *args], cwd=tree, capture_output=True, text=True,
                       env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - t, r.stderr


def importtime_ms(stderr, module):
    """The cumulative microseconds -X importtime reports for ``module``, in ms."""
    rows = [line.split("|") for line in stderr.splitlines() if line.startswith("import time:")]
    return [int(r[1]) / 1000 for r in rows if r[2].strip() == module][-1]


def heavy_modules(tree):
    """Which of the heavy third-party packages ``import scratchnst`` loads."""
    code = f"import sys, scratchnst; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    return subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}).stdout.strip()


def measure(trees, repeats):
    """{(label, case): (median wall ms, median importtime ms or None)}, trees run alternately."""
    walls = {(label, c[0]): [] for label in trees for c in CASES}
    imps = {(label, c[0]): [] for label in trees for c in CASES}
    for _ in range(repeats):
        for name, args, module in CASES:
            for label, tree in trees.items():
                walls[label, name].append(run(tree, args)[0] * 1000)
                if module:
                    imps[label, name].append(importtime_ms(run(tree, args, importtime=True)[1], module))
    return {k: (statistics.median(walls[k]), statistics.median(imps[k]) if imps[k] else None) for k in walls}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", metavar="REV", help="also measure this git revision, side by side")
    p.add_argument("--repeats", type=int, default=9)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": REPO}
        if args.against:
            old = Path(tmp) / "old"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(old), args.against],
                           check=True)
            trees = {args.against[:10]: old, "this tree": REPO}
        try:
            base = statistics.median(run(REPO, ["-c", "pass"])[0] * 1000 for _ in range(args.repeats))
            results = measure(trees, args.repeats)
            print(f"median of {args.repeats} fresh interpreters; a bare `python -c pass` takes {base:.0f} ms")
            print(f"{'':24s}" + "".join(f"{label:>34s}" for label in trees))
            for name, _, _ in CASES:
                cells = []
                for label in trees:
                    wall, imp = results[label, name]
                    cells.append(f"{wall:6.0f} ms" + (f" (importtime {imp:6.1f} ms)" if imp is not None else " " * 24))
                print(f"{name:24s}" + "".join(f"{c:>34s}" for c in cells))
            for label, tree in trees.items():
                print(f"`import scratchnst` loads, in {label}: {heavy_modules(tree)}")
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)


if __name__ == "__main__":
    main()
