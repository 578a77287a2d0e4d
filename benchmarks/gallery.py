"""The gallery: three bundled photos in three bundled styles, at the package's defaults, timed.

    python benchmarks/gallery.py                         # 384 px, 2 scales, 100 iterations each
    python benchmarks/gallery.py --size 256 --iterations 50 --out /tmp/sheet.png
    python benchmarks/gallery.py --demo-figure scratchnst-demo.png   # the README's demo picture

Each picture is one :func:`scratchnst.stylize` run with the defaults but for the
size, the coarse-to-fine levels and the iterations (given below, and printed), from
the content image. The contact sheet has the photos down the left, the styles
along the top, and each result where its row and column meet. For every picture
the script prints its time and its speckle (:func:`scratchnst.transfer.speckle.speckle`:
the share of spectral power in the top octave, the worst of Y, Cb and Cr) against its
style image's at the same size: near 1x or below is a clean picture, far above it a speckled one.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PHOTOS = ("astronaut", "chelsea", "grace_hopper")
STYLES = ("starry_night", "great_wave", "the_scream")


def fit(rgb, side):
    """``rgb`` scaled to fit a ``side`` x ``side`` cell, centred on white."""
    from PIL import Image

    img = Image.fromarray(rgb)
    img.thumbnail((side, side), Image.LANCZOS)
    cell = Image.new("RGB", (side, side), "white")
    cell.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return np.asarray(cell)


def demo_figure(result_png, out):
    """The README's picture: the demo's content, its style and ``result_png`` (what ``scratchnst demo`` wrote)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from scratchnst.files.images import bundled_image, load_image

    panels = [("content: astronaut (NASA)", load_image(bundled_image("astronaut"))),
              ("style: The Starry Night (van Gogh)", load_image(bundled_image("starry_night"))),
              ("scratchnst demo, 256 px", np.asarray(Image.open(result_png).convert("RGB")))]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for ax, (title, rgb) in zip(axes, panels):
        ax.imshow(rgb)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"demo figure: {out}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--scales", type=int, default=2)
    p.add_argument("--iterations", type=int, default=100, help="per level")
    p.add_argument("--cell", type=int, default=256, help="side of one picture on the sheet")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "gallery.png"))
    p.add_argument("--demo-figure", metavar="DEMO_PNG",
                   help="instead, compose the README's demo figure from this output of scratchnst demo")
    args = p.parse_args(argv)
    if args.demo_figure:
        demo_figure(args.demo_figure, REPO / "tutorials" / "figures" / "demo.png")
        return 0

    from PIL import Image

    import scratchnst
    from scratchnst.files.images import bundled_image, load_image
    from scratchnst.transfer.settings import Settings
    from scratchnst.transfer.speckle import speckle

    print(f"gallery: {len(PHOTOS)} photos x {len(STYLES)} styles at {args.size} px, {args.scales} scales, "
          f"{args.iterations} iterations per scale, defaults otherwise ({Settings(content='', styles=['']).preset} "
          f"preset, {Settings(content='', styles=['']).optimizer})", flush=True)
    gap, side = 8, args.cell
    n = 1 + len(STYLES)
    sheet = np.full((n * side + (n - 1) * gap, n * side + (n - 1) * gap, 3), 255, np.uint8)

    def put(row, col, rgb):
        y, x = row * (side + gap), col * (side + gap)
        sheet[y : y + side, x : x + side] = fit(rgb, side)

    styles = {s: load_image(bundled_image(s), args.size) for s in STYLES}
    for j, s in enumerate(STYLES):
        put(0, j + 1, styles[s])
    total, t_start = [], time.perf_counter()
    print(f"{'photo':>14} {'style':>14} {'seconds':>8} {'speckle':>8} {'style':>7} {'ratio':>6}")
    for i, photo in enumerate(PHOTOS):
        put(i + 1, 0, load_image(bundled_image(photo), args.size))
        for j, s in enumerate(STYLES):
            settings = Settings(content=photo, styles=[s], size=args.size, scales=args.scales,
                                iterations=args.iterations)
            t = time.perf_counter()
            rgb = scratchnst.stylize(settings).rgb
            seconds = time.perf_counter() - t
            total.append(seconds)
            ours, theirs = speckle(rgb)["worst"], speckle(styles[s])["worst"]
            print(f"{photo:>14} {s:>14} {seconds:8.0f} {ours:8.3f} {theirs:7.3f} {ours / theirs:5.2f}x", flush=True)
            put(i + 1, j + 1, rgb)
    Image.fromarray(sheet).save(args.out)
    print(f"\n{len(total)} pictures in {(time.perf_counter() - t_start) / 60:.1f} min "
          f"({np.median(total):.0f} s median per picture); sheet: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
