"""Gatys' normalisation of VGG19: the mean activation of every conv filter, written into the weights file.

Gatys, Ecker and Bethge (2016) used VGG19 "normalised by scaling the weights such that
the mean activation of each convolutional filter over images and positions is equal
to one". This script measures those means on the ORIGINAL network and stores them in
the weights file; ``scratchnst.load_vgg19(normalized=True)`` then rescales kernels and
biases with them (``scratchnst.files.weights.normalize_params``).

    python weights/normalize.py                          # weights/vgg19.h5, 256 px: measure, print, write
    python weights/normalize.py --dry-run --compare-size 384   # print only, and the factors' change at 384 px
    python weights/normalize.py --prepare-calibration   # re-make weights/calibration/ (needs scikit-image)

What is measured, exactly:

- the calibration set :func:`calibration_paths`: every bundled picture of
  ``scratchnst/data/images`` (4 photographs, 6 paintings) and the photographs of
  ``weights/calibration`` (CC0 / public-domain samples of scikit-image; SOURCES.md there);
- each image resized so that its longer side is ``--size`` px (256 by default: the
  demo's size and the scale of VGG's training crops, 224 px cut from images whose
  shorter side was 256 to 512 px; and small enough that tests/test_normalized.py
  can re-check every channel in seconds);
- the original network (no factors), float64, VGG's own max pooling;
- for conv layer ``convB_K``, f[c] = the mean over images of the mean over positions
  of ``reluB_K``'s channel c (every image counts the same, whatever its shape);
- a channel that is zero on every image and position (dead on this set) gets f = 1:
  it stays as it was, rather than being divided by zero.

The factors go into group ``normalization`` of the weights file, one (C,) float64
dataset per conv layer, with attributes naming the images (and their sha256), the
size and the statistic. The file is rewritten atomically; nothing else in it changes.
"""

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone without installing

from scratchnst.files.atomic import atomic_path  # noqa: E402
from scratchnst.files.images import load_image  # noqa: E402
from scratchnst.files.weights import BUNDLED, FACTORS, load_vgg19  # noqa: E402
from scratchnst.network.architecture import CONV_LAYERS  # noqa: E402

SIZE = 256
IMAGE_DIRS = (ROOT / "scratchnst" / "data" / "images", ROOT / "weights" / "calibration")
CALIBRATION = ROOT / "weights" / "calibration"
# The scikit-image samples copied into weights/calibration (licences in SOURCES.md there).
SKIMAGE_SAMPLES = ("coffee", "rocket")
# ImageNet's published per-channel RGB statistics (0..1), as torchvision's preprocessing uses them.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STATISTIC = "mean over images of each image's mean over positions of relu_l, original network, max pooling"


def relu_of(conv):
    """``conv3_2`` -> ``relu3_2``: the activation whose mean normalises the conv."""
    return "relu" + conv[len("conv"):]


def calibration_paths():
    """The calibration images, in a fixed order: the bundled pictures, then weights/calibration's."""
    return [p for d in IMAGE_DIRS for p in sorted(d.glob("*.jpg"))]


def load_calibration(paths, size=SIZE):
    """Each image as RGB uint8 (H, W, 3), its longer side ``size`` px."""
    return [load_image(p, long_side=size) for p in paths]


def channel_means(net, rgbs):
    """{conv name: (n_images, C) float64}: each image's mean over positions of every relu's channels."""
    relus = [relu_of(c) for c in CONV_LAYERS]
    out = {c: [] for c in CONV_LAYERS}
    for rgb in rgbs:
        acts = net.forward(net.preprocess(rgb), relus)
        for c in CONV_LAYERS:
            out[c].append(np.asarray(acts[relu_of(c)], np.float64).mean(axis=(1, 2)))
    return {c: np.stack(v) for c, v in out.items()}


def factors_from_means(means):
    """({conv: (C,) factors}, {conv: number of dead channels}): mean over images; dead channels get 1."""
    factors, dead = {}, {}
    for c, m in means.items():
        f = m.mean(axis=0)
        dead[c] = int((f <= 0).sum())
        factors[c] = np.where(f > 0, f, 1.0)
    return factors, dead


def compute_factors(rgbs, weights=None):
    """Factors and dead-channel counts of the original network in ``weights`` on ``rgbs`` (float64)."""
    net = load_vgg19(weights, dtype="float64", pooling="max", normalized=False)
    return factors_from_means(channel_means(net, rgbs))


def rgb_statistics(rgbs):
    """Mean and std of R, G, B (0..1) over every pixel of ``rgbs``, as ImageNet's are computed."""
    px = np.concatenate([r.reshape(-1, 3) for r in rgbs]).astype(np.float64) / 255.0
    return px.mean(axis=0), px.std(axis=0)


def relative_spread(a, b):
    """{conv: |a - b| / ((a + b) / 2) per channel}, over channels alive in both."""
    out = {}
    for c in CONV_LAYERS:
        alive = (a[c] > 0) & (b[c] > 0)
        out[c] = np.abs(a[c] - b[c])[alive] / ((a[c] + b[c])[alive] / 2)
    return out


def print_spread(title, a, b):
    """Per layer: the per-channel relative differences of factors ``a`` and ``b`` (median, 90th percentile,
    max), and the same for the layer's mean factor (the layer's overall scale)."""
    spread = relative_spread(a, b)
    print(title)
    print(f"  {'layer':8s} {'median':>8s} {'90th pct':>9s} {'max':>8s}   {'layer mean':>10s}")
    for c, s in spread.items():
        m = abs(a[c].mean() - b[c].mean()) / ((a[c].mean() + b[c].mean()) / 2)
        print(f"  {c:8s} {np.median(s):8.1%} {np.percentile(s, 90):9.1%} {s.max():8.1%}   {m:10.1%}")
    every = np.concatenate(list(spread.values()))
    print(f"  {'all':8s} {np.median(every):8.1%} {np.percentile(every, 90):9.1%} {every.max():8.1%}")


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_factors(path, factors, names, hashes, size, dead):
    """Rewrite ``path`` with group ``normalization`` (replacing any older one); everything else copied as is."""
    import h5py

    with atomic_path(path) as tmp:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in src:
                if name != FACTORS:
                    src.copy(src[name], dst, name=name)
            g = dst.create_group(FACTORS)
            g.attrs["statistic"] = STATISTIC
            g.attrs["long_side"] = np.int64(size)
            g.attrs["images"] = np.array(names, dtype=h5py.string_dtype())
            g.attrs["images_sha256"] = np.array(hashes, dtype=h5py.string_dtype())
            g.attrs["dead_channels_set_to_1"] = np.int64(sum(dead.values()))
            g.attrs["script"] = "weights/normalize.py"
            for c in CONV_LAYERS:
                g.create_dataset(c, data=np.asarray(factors[c], np.float64))
    return path


def prepare_calibration():
    """Copy scikit-image's CC0 / public-domain photographs into weights/calibration as small JPEGs.

    As the bundled pictures were prepared (scratchnst/data/images/SOURCES.md): RGB, Lanczos
    down to a longer side of at most 512 px, pasted into a new image so no metadata
    carries over, baseline JPEG quality 90.
    """
    import skimage
    import skimage.data
    from PIL import Image

    CALIBRATION.mkdir(exist_ok=True)
    for name in SKIMAGE_SAMPLES:
        img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        scale = min(1.0, 512 / max(img.size))
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
        clean = Image.new("RGB", img.size)
        clean.paste(img)
        clean.save(CALIBRATION / f"{name}.jpg", quality=90)
        print(f"wrote weights/calibration/{name}.jpg {clean.size[0]}x{clean.size[1]} "
              f"from scikit-image {skimage.__version__} skimage.data.{name}()")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(BUNDLED), help="weights file to measure and extend (weights/vgg19.h5)")
    p.add_argument("--size", type=int, default=SIZE, help=f"longer side of each image in px ({SIZE})")
    p.add_argument("--dry-run", action="store_true", help="print the statistics, write nothing")
    p.add_argument("--compare-size", type=int, help="also print how far the factors move at this size")
    p.add_argument("--prepare-calibration", action="store_true",
                   help="re-make weights/calibration/ from scikit-image's samples, then stop")
    args = p.parse_args(argv)
    if args.prepare_calibration:
        prepare_calibration()
        return 0

    paths = calibration_paths()
    names = [str(q.relative_to(ROOT)) for q in paths]
    rgbs = load_calibration(paths, args.size)
    print(f"calibration set: {len(paths)} images, longer side {args.size} px: {', '.join(q.stem for q in paths)}")

    mean, std = rgb_statistics(rgbs)
    print("RGB over all pixels (0..1)   mean (R, G, B)        std (R, G, B)")
    print(f"  calibration set            ({mean[0]:.3f}, {mean[1]:.3f}, {mean[2]:.3f})   "
          f"({std[0]:.3f}, {std[1]:.3f}, {std[2]:.3f})")
    print(f"  ImageNet (published)       {IMAGENET_MEAN}   {IMAGENET_STD}")

    net = load_vgg19(args.weights, dtype="float64", pooling="max", normalized=False)
    means = channel_means(net, rgbs)
    factors, dead = factors_from_means(means)
    print(f"dead channels (mean 0 on every image; factor set to 1): {sum(dead.values())} of "
          f"{sum(len(f) for f in factors.values())}" + "".join(f", {c}: {n}" for c, n in dead.items() if n))
    print(f"  {'layer':8s} {'min':>10s} {'median':>10s} {'max':>10s}")
    for c in CONV_LAYERS:
        f = factors[c]
        print(f"  {c:8s} {f.min():10.4g} {np.median(f):10.4g} {f.max():10.4g}")

    half_a, _ = factors_from_means({c: m[0::2] for c, m in means.items()})
    half_b, _ = factors_from_means({c: m[1::2] for c, m in means.items()})
    print_spread("split-half stability (images 1, 3, 5, ... against 2, 4, 6, ...): |f_a - f_b| / mean",
                 half_a, half_b)
    if args.compare_size:
        other, _ = factors_from_means(channel_means(net, load_calibration(paths, args.compare_size)))
        print_spread(f"size: factors at {args.compare_size} px against {args.size} px", factors, other)
    if args.dry_run:
        return 0
    write_factors(args.weights, factors, names, [_sha256(q) for q in paths], args.size, dead)
    print(f"wrote group {FACTORS}/ ({len(CONV_LAYERS)} datasets) into {args.weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
