"""Seeing inside VGG19: feature maps, receptive fields, and the image patches a unit likes.

After Zeiler and Fergus (2014), "Visualizing and understanding convolutional
networks": shallow units respond to edges and colours, deeper ones to textures
and object parts. Four views, each a matplotlib figure (``matplotlib.figure.Figure``
directly, so no global backend is switched):

* :func:`feature_grid_figure` -- the maps of one layer for one image;
* :func:`top_patches` / :func:`patches_figure` -- for one unit (channel), the image
  regions, cropped to its receptive field (:func:`receptive_fields`), that
  activate it most over a set of images;
* :func:`units_figure` -- the synthetic inputs :func:`scratchnst.synthesis.maximize_unit`
  makes for a few units;
* :func:`reconstructions_figure` -- what each layer keeps of an image
  (:func:`scratchnst.synthesis.reconstruct`).

The command ``scratchnst visualize {features,patches,maximize,reconstruct}`` is at
the end of the module.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from .atomic import atomic_path, check_writable
from .backend import to_numpy
from .errors import ScratchNSTError
from .synthesis import check_unit

# ------------------------------------------------------------------ receptive fields


class ReceptiveField(NamedTuple):
    """Where in the input one unit of a layer looks, along either axis.

    Attributes
    ----------
    size : int
        Side r of the square input window that can influence one unit.
    jump : int
        Input pixels between neighbouring units of the layer (its total stride).
    start : float
        Centre of unit 0's window in input pixels (x.5 after a pool: a 2x2
        window's centre falls between pixels).
    """

    size: int
    jump: int
    start: float

    @property
    def offset(self):
        """First input pixel of unit 0's window; negative where it hangs into the zero padding."""
        return int(self.start - (self.size - 1) / 2)


def receptive_fields():
    """The receptive field of every VGG19 layer, computed from the architecture.

    Returns
    -------
    dict layer name -> :class:`ReceptiveField`, in network order.

    Notes
    -----
    Walk the layers from the input (r = 1, j = 1, start = 0). A k x k op with
    stride s and padding p maps (r, j, start) to

        r' = r + (k - 1) j,   j' = j s,   start' = start + ((k - 1) / 2 - p) j.

    VGG19's 3x3 convolutions (pad 1, stride 1) give r' = r + 2j and leave j and
    start alone; its 2x2 pools (stride 2, no pad) give r' = r + j, j' = 2j,
    start' = start + j / 2. ReLUs change nothing. So r = 3, 5, 6 (pool1), 10, 14,
    16 (pool2), 24 (relu3_1), 68 (relu4_1), 156 (relu5_1) and 268 at pool5, where
    one unit sees more than a whole 224 px image.
    """
    from .vgg import LAYERS

    r, j, start = 1, 1, 0.0
    table = {}
    for name in LAYERS:
        if name.startswith("conv"):
            r += 2 * j
        elif name.startswith("pool"):
            r, start, j = r + j, start + j / 2, 2 * j
        table[name] = ReceptiveField(r, j, start)
    return table


def receptive_field_box(layer, i, j, shape):
    """The input window of unit (i, j) of ``layer``, clipped to an image of ``shape``.

    Parameters
    ----------
    layer : str
    i, j : int
        Row and column of the unit in the layer's (h, w) map.
    shape : (H, W)
        Input image size.

    Returns
    -------
    (y0, y1, x0, x1) : ints, half-open: ``img[y0:y1, x0:x1]``. Rows and columns
    outside the image (zero padding, which carries no picture) are cut off.
    """
    rf = receptive_fields()[layer]
    y0, x0 = rf.offset + i * rf.jump, rf.offset + j * rf.jump
    H, W = shape
    return max(y0, 0), min(y0 + rf.size, H), max(x0, 0), min(x0 + rf.size, W)


# ------------------------------------------------------------------ feature maps


def top_channels(act, n):
    """Indices of the ``n`` channels of ``act`` (C, h, w) with the largest mean, largest first."""
    means = to_numpy(act.reshape(act.shape[0], -1).mean(axis=1))  # (C,)
    return [int(c) for c in np.argsort(-means, kind="stable")[:n]]


def _grid(n, cols=None):
    cols = cols or int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def feature_grid_figure(act, layer, channels, *, image=None, title=None, cmap="magma"):
    """A grid of feature maps of one layer, each scaled to its own range.

    Parameters
    ----------
    act : ndarray (C, h, w)
        The layer's activations.
    layer : str
    channels : list of int
        Which maps to show, in order.
    image : ndarray uint8 (H, W, 3), optional
        The input, shown in the first panel for reference.
    title : str, optional
    cmap : str
        A matplotlib colormap; dark means small, bright means large.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Each map is scaled to its own min..max because channels differ in scale by
    orders of magnitude; a shared scale would show one bright map and the rest
    black. The panel title gives the channel and its maximum, so the scales can
    still be compared.
    """
    from matplotlib.figure import Figure

    act = to_numpy(act)
    panels = len(channels) + (image is not None)
    rows, cols = _grid(panels)
    fig = Figure(figsize=(2.2 * cols, 2.3 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    k = 0
    if image is not None:
        axes[0].imshow(image)
        axes[0].set_title("input", fontsize=10)
        k = 1
    for c in channels:
        m = act[c]
        lo, hi = float(m.min()), float(m.max())
        axes[k].imshow(m, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        axes[k].set_title(f"ch {c}  max {hi:.3g}", fontsize=10)
        k += 1
    for ax in axes:
        ax.set_axis_off()
    C, h, w = act.shape
    fig.suptitle(title or f"{layer}: {len(channels)} of {C} maps ({h}x{w}), each scaled to its own range",
                 fontsize=12)
    return fig


# ------------------------------------------------------------------ top patches


class Patch(NamedTuple):
    """One place in one image where a unit fires strongly."""

    score: float  # the activation there
    source: str  # image file name
    position: tuple  # (i, j) in the layer's map
    box: tuple  # (y0, y1, x0, x1) in the (resized) image, see receptive_field_box
    crop: np.ndarray  # uint8 (y1 - y0, x1 - x0, 3)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def image_paths(folder=None):
    """Image files of ``folder`` (sorted), or the bundled images when None."""
    from .images import IMAGE_DIR

    folder = Path(IMAGE_DIR if folder is None else folder)
    if not folder.is_dir():
        raise ScratchNSTError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise ScratchNSTError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return paths


def _strongest_positions(m, n, radius):
    """Up to n (i, j) of map m (h, w), greedily by value, no two within ``radius`` (Chebyshev)."""
    m = m.astype(np.float64).copy()
    found = []
    for _ in range(n):
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        if not np.isfinite(m[i, j]):
            break
        found.append((int(i), int(j)))
        # Neighbours see nearly the same pixels; suppress them so the patches differ.
        m[max(i - radius, 0) : i + radius + 1, max(j - radius, 0) : j + radius + 1] = -np.inf
    return found


def top_patches(net, layer, unit, images=None, *, k=9, per_image=2, long_side=224):
    """The image regions that activate one unit most, each cropped to its receptive field.

    Parameters
    ----------
    net : :class:`scratchnst.VGG19`
    layer : str
    unit : int
        Channel index.
    images : list of paths, or a folder, or None (the bundled images)
    k : int
        Number of patches returned.
    per_image : int
        At most this many from one image, at positions at least half a receptive
        field apart, so a single image of stripes cannot fill the grid.
    long_side : int
        Images are resized so their longer side is this, as the network sees them.

    Returns
    -------
    list of :class:`Patch`, strongest first.
    """
    from .images import load_image

    net.check_layers([layer])
    unit = check_unit(layer, unit)
    paths = image_paths(images) if images is None or not isinstance(images, (list, tuple)) else images
    rf = receptive_fields()[layer]
    radius = max(1, rf.size // (2 * rf.jump))
    found = []
    for path in paths:
        img = load_image(path, long_side=long_side)  # (H, W, 3)
        m = to_numpy(net.forward(net.preprocess(img), [layer])[layer][unit])  # (h, w)
        for i, j in _strongest_positions(m, per_image, radius):
            y0, y1, x0, x1 = box = receptive_field_box(layer, i, j, img.shape[:2])
            found.append(Patch(float(m[i, j]), Path(path).name, (i, j), box, img[y0:y1, x0:x1].copy()))
    found.sort(key=lambda p: -p.score)
    return found[:k]


def patches_figure(patches, layer, unit):
    """A grid of :func:`top_patches`, each titled with its image and activation."""
    from matplotlib.figure import Figure

    rows, cols = _grid(len(patches))
    fig = Figure(figsize=(2.3 * cols, 2.5 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, p in zip(axes, patches):
        ax.imshow(p.crop, interpolation="nearest")
        ax.set_title(f"{Path(p.source).stem[:16]}\nact {p.score:.3g}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    rf = receptive_fields()[layer]
    fig.suptitle(f"{layer} unit {unit}: top {len(patches)} patches (receptive field {rf.size} px)", fontsize=12)
    return fig


# ------------------------------------------------------------------ synthesised images


def units_figure(tiles, layer, units, subtitle=""):
    """Activation-maximisation images (uint8 (H, W, 3) each), one panel per unit."""
    from matplotlib.figure import Figure

    rows, cols = _grid(len(tiles), cols=min(len(tiles), 8))
    fig = Figure(figsize=(1.9 * cols, 2.1 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, tile, u in zip(axes, tiles, units):
        ax.imshow(tile, interpolation="nearest")
        ax.set_title(f"unit {u}", fontsize=10)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"{layer}: inputs that maximise each unit {subtitle}".rstrip(), fontsize=12)
    return fig


def reconstructions_figure(original, results, kind):
    """The original and one reconstruction per layer: ``results`` is [(layer, uint8 image, final cost)]."""
    from matplotlib.figure import Figure

    n = len(results) + 1
    rows, cols = _grid(n, cols=min(n, 6))
    aspect = original.shape[0] / original.shape[1]  # panel height follows the image: no empty bands
    fig = Figure(figsize=(2.6 * cols, (2.6 * aspect + 0.4) * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    axes[0].imshow(original)
    axes[0].set_title("original", fontsize=10)
    for ax, (layer, img, cost) in zip(axes[1:], results):
        ax.imshow(img)
        ax.set_title(f"{layer}  cost {cost:.2g}", fontsize=10)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"{kind} from a single layer, starting from noise", fontsize=12)
    return fig


# ------------------------------------------------------------------ writing figures


def check_output_path(path):
    """Raise a one-line error now, before any computing, if a figure cannot be saved at ``path``."""
    from matplotlib.figure import Figure

    path = Path(path)
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise ScratchNSTError(f"cannot save {path}: unknown figure extension {path.suffix!r}; use .png, .pdf or .svg")
    return check_writable(path)


def save_figure(fig, path, dpi=110):
    """Write a figure atomically (:mod:`scratchnst.atomic`): the whole file or nothing."""
    path = check_output_path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=dpi)
    return path


# ------------------------------------------------------------------ command line


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


def _positive(value, what):
    if value < 1:
        raise ScratchNSTError(f"{what} must be at least 1, got {value}")


def run(args):
    """Validate everything that can be checked cheaply, then load VGG19, compute, and save."""
    from .vgg import VGG19

    layers = args.layers if args.view == "reconstruct" else [args.layer]
    VGG19.check_layers(layers)
    output = check_output_path(args.output)
    image = paths = None
    if args.view in ("features", "reconstruct"):
        from .images import load_image, resolve_image_path

        _positive(args.size, "--size")
        image = load_image(resolve_image_path(args.image), long_side=args.size)
    if args.view == "features":
        for c in args.channels or []:
            check_unit(args.layer, c)
        _positive(args.n, "-n")
    elif args.view == "patches":
        check_unit(args.layer, args.unit)
        paths = image_paths(args.images)
        _positive(args.k, "-k")
        _positive(args.per_image, "--per-image")
    elif args.view == "maximize":
        for u in args.units:
            check_unit(args.layer, u)
        _positive(args.size, "--size")
    from .vgg import load_vgg19

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
    from .synthesis import maximize_unit

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
    from .synthesis import reconstruct

    x0 = net.preprocess(image)
    results = []
    for layer in args.layers:
        x, history = reconstruct(net, x0, layer, style=args.style, steps=args.steps, method=args.method,
                                 seed=args.seed)
        results.append((layer, net.deprocess(x), history[-1]))
    return reconstructions_figure(image, results, "Texture synthesis" if args.style else "Content reconstruction")


VIEWS = {"features": _features, "patches": _patches, "maximize": _maximize, "reconstruct": _reconstruct}
