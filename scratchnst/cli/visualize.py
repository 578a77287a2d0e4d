"""``scratchnst visualize {features,patches,maximize,reconstruct}``: see inside VGG19 from the shell.

Each view is a figure of :mod:`scratchnst.inside`; this module checks the options
cheaply, loads VGG19, computes, and saves the figure atomically.
"""

import math

from scratchnst.errors import ScratchNSTError
from scratchnst.files.images import image_files
from scratchnst.inside.figures import (
    check_figure_output,
    feature_grid_figure,
    patches_figure,
    reconstructions_figure,
    save_figure,
    units_figure,
)
from scratchnst.inside.patches import top_channels, top_patches
from scratchnst.inside.receptive_fields import receptive_field_box
from scratchnst.inside.synthesis import check_unit
from scratchnst.network.architecture import check_layers


def add_arguments(parser):
    """``scratchnst visualize {features,patches,maximize,reconstruct}``."""
    common = dict(weights=None, device="cpu", seed=0)
    sub = parser.add_subparsers(dest="view", metavar="VIEW", required=True)

    def view(name, help_):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("-o", "--output", required=True, help="figure file (.png, .pdf, .svg)")
        p.add_argument("--weights", help="VGG19 weights (default: bundled / $SCRATCHNST_WEIGHTS)")
        p.add_argument("--device", choices=("cpu", "gpu"), help="numpy or cupy (default cpu)")
        p.add_argument("--seed", type=int, help="random seed (default 0)")
        p.set_defaults(**common)
        return p

    p = view("features", "feature maps of one layer for one image")
    p.add_argument("image", help="image file or bundled image name (e.g. astronaut)")
    p.add_argument("--layer", required=True, help="e.g. relu3_1")
    p.add_argument("--channels", type=int, nargs="+", help="channels to show (default: the most active)")
    p.add_argument("-n", type=int, default=15, help="how many of the most active channels (default 15)")
    p.add_argument("--size", type=int, default=256, help="long side of the image in px (default 256)")

    p = view("patches", "the image patches that activate one unit most")
    p.add_argument("--layer", required=True)
    p.add_argument("--unit", type=int, required=True, help="channel index")
    p.add_argument("--images", help="folder of images (default: the bundled images)")
    p.add_argument("-k", type=int, default=9, help="number of patches (default 9)")
    p.add_argument("--per-image", type=int, default=2, help="at most this many per image (default 2)")
    p.add_argument("--size", type=int, default=224, help="long side of each image in px (default 224)")

    p = view("maximize", "synthesise the input that maximises each of some units")
    p.add_argument("--layer", required=True)
    p.add_argument("--units", type=int, nargs="+", required=True)
    p.add_argument("--where", choices=("mean", "centre"), default="mean",
                   help="maximise the mean over the map (a texture) or the centre unit (cropped to its field)")
    p.add_argument("--size", type=int, default=64, help="image side in px (default 64)")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--lr", type=float, default=3.0, help="step length in pixel values (default 3)")
    p.add_argument("--jitter", type=int, default=4)
    p.add_argument("--blur", type=float, default=1.0, help="Gaussian blur sigma every 4 steps (0: none)")
    p.add_argument("--decay", type=float, default=0.01, help="L2 decay per step towards the mean pixel")
    p.add_argument("--tv", type=float, default=0.0, help="total-variation weight")

    p = view("reconstruct", "rebuild an image from one layer's activations (or Gram matrix) from noise")
    p.add_argument("image")
    p.add_argument("--layers", "--layer", nargs="+", required=True, dest="layers")
    p.add_argument("--style", action="store_true", help="match Gram matrices (texture) instead of activations")
    p.add_argument("--size", type=int, default=128, help="long side of the image in px (default 128)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--method", choices=("lbfgs", "adam"), default="lbfgs")


# The views are for looking at: at 4096 px, relu1_1 alone is 64 x 4096^2 floats (4 GiB).
MAX_SIZE = 4096


def _in_range(value, option, lo, hi=math.inf, *, above=False, below=False):
    """A one-line error unless ``value`` is finite and from ``lo`` to ``hi`` (open ends: ``above``, ``below``)."""
    ok = (math.isfinite(value) and (value > lo if above else value >= lo)
          and (value < hi if below else value <= hi))
    if not ok:
        low = f"above {lo}" if above else f"at least {lo}"
        high = "" if hi == math.inf else f" and {'below' if below else 'at most'} {hi}"
        raise ScratchNSTError(f"{option} must be a finite number {low}{high}, got {value}")


def check_numbers(args):
    """Every numeric option of ``args``' view, finite and in range, before any work (one-line errors).

    Sizes are 1 to :data:`MAX_SIZE` px (too small an image for the layer is the
    network's own one-line error), counts and steps at least 1, the seed at least 0;
    for ``maximize``: ``--lr`` above 0, ``--jitter``, ``--blur`` and ``--tv`` at least 0,
    and ``--decay`` from 0 to below 1 (1 would wipe the image every step).
    """
    _in_range(args.seed, "--seed", 0)
    _in_range(args.size, "--size", 1, MAX_SIZE)
    counts = {"features": ("n",), "patches": ("k", "per_image"), "maximize": ("steps",),
              "reconstruct": ("steps",)}[args.view]
    for name in counts:
        _in_range(getattr(args, name), "-" + name if len(name) == 1 else "--" + name.replace("_", "-"), 1)
    if args.view == "maximize":
        _in_range(args.lr, "--lr", 0, above=True)
        _in_range(args.jitter, "--jitter", 0)
        _in_range(args.blur, "--blur", 0)
        _in_range(args.decay, "--decay", 0, 1, below=True)
        _in_range(args.tv, "--tv", 0)


def run(args):
    """Validate everything that can be checked cheaply, then load VGG19, compute, and save."""
    layers = args.layers if args.view == "reconstruct" else [args.layer]
    check_layers(layers)
    check_numbers(args)
    output = check_figure_output(args.output)
    image = paths = None
    if args.view in ("features", "reconstruct"):
        from scratchnst.files.images import load_image, resolve_image_path

        image = load_image(resolve_image_path(args.image), long_side=args.size)
    if args.view == "features":
        for c in args.channels or []:
            check_unit(args.layer, c)
    elif args.view == "patches":
        check_unit(args.layer, args.unit)
        paths = image_files(args.images)
    elif args.view == "maximize":
        for u in args.units:
            check_unit(args.layer, u)
    from scratchnst.files.weights import load_vgg19

    net = load_vgg19(args.weights, backend="cupy" if args.device == "gpu" else "numpy")
    fig = VIEWS[args.view](net, args, image=image, paths=paths)
    save_figure(fig, output)
    print(f"wrote {output}")
    return 0


def _features(net, args, image, **_):
    act = net.forward(net.preprocess(image), [args.layer])[args.layer]
    channels = args.channels or top_channels(act, min(args.n, act.shape[0]))
    return feature_grid_figure(act, args.layer, channels, image=image)


def _patches(net, args, paths, **_):
    found = top_patches(net, args.layer, args.unit, paths, k=args.k, per_image=args.per_image, long_side=args.size)
    return patches_figure(found, args.layer, args.unit)


def _maximize(net, args, **_):
    from scratchnst.inside.synthesis import maximize_unit

    tiles = []
    for u in args.units:
        x, _ = maximize_unit(net, args.layer, u, size=args.size, steps=args.steps, lr=args.lr, where=args.where,
                             jitter=args.jitter, blur_sigma=args.blur, decay=args.decay, tv_weight=args.tv,
                             seed=args.seed)
        img = net.deprocess(x)
        if args.where == "centre":
            target = "conv" + args.layer[4:] if args.layer.startswith("relu") else args.layer
            h, w = net.forward(x, [target])[target].shape[1:]
            y0, y1, x0, x1 = receptive_field_box(args.layer, h // 2, w // 2, img.shape[:2])
            img = img[y0:y1, x0:x1]
        tiles.append(img)
    return units_figure(tiles, args.layer, args.units, f"({args.where}, {args.steps} steps)")


def _reconstruct(net, args, image, **_):
    from scratchnst.inside.synthesis import reconstruct

    x0 = net.preprocess(image)
    results = []
    for layer in args.layers:
        x, history = reconstruct(net, x0, layer, style=args.style, steps=args.steps, method=args.method,
                                 seed=args.seed)
        results.append((layer, net.deprocess(x), history[-1]))
    return reconstructions_figure(image, results, "Texture synthesis" if args.style else "Content reconstruction")


VIEWS = {"features": _features, "patches": _patches, "maximize": _maximize, "reconstruct": _reconstruct}
