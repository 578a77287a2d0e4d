"""Figures of what VGG19's units respond to, as ``matplotlib.figure.Figure`` (no global backend is switched).

* :func:`feature_grid_figure` -- the maps of one layer for one image;
* :func:`patches_figure` -- the patches :func:`scratchnst.inside.patches.top_patches` finds for one unit;
* :func:`units_figure` -- the inputs :func:`scratchnst.inside.synthesis.maximize_unit` makes;
* :func:`reconstructions_figure` -- what each layer keeps of an image
  (:func:`scratchnst.inside.synthesis.reconstruct`);
* :func:`save_figure` -- written atomically, the whole file or nothing.

matplotlib is imported inside each function, so importing this module stays cheap.
"""

from pathlib import Path

import numpy as np

from scratchnst.backend import to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.files.atomic import atomic_path, check_writable
from scratchnst.inside.receptive_fields import receptive_fields


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


def check_figure_output(path):
    """Raise a one-line error now, before any computing, if a figure cannot be saved at ``path``."""
    from matplotlib.figure import Figure

    path = Path(path)
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise ScratchNSTError(f"cannot save {path}: unknown figure extension {path.suffix!r}; use .png, .pdf or .svg")
    return check_writable(path)


def save_figure(fig, path, dpi=110):
    """Write a figure atomically (:mod:`scratchnst.files.atomic`): the whole file or nothing."""
    path = check_figure_output(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:].lower(), dpi=dpi)
    return path
