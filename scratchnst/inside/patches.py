"""What a unit responds to in real images: its most active channels, and the patches that excite it most.

After Zeiler and Fergus (2014), "Visualizing and understanding convolutional
networks": shallow units respond to edges and colours, deeper ones to textures
and object parts. :func:`top_patches` finds, over a set of images, the places
where one channel fires most, each cropped to the unit's receptive field
(:mod:`scratchnst.inside.receptive_fields`).
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from scratchnst.backend import to_numpy
from scratchnst.files.images import image_files, load_image
from scratchnst.inside.receptive_fields import receptive_field_box, receptive_fields
from scratchnst.inside.synthesis import check_unit


def top_channels(act, n):
    """Indices of the ``n`` channels of ``act`` (C, h, w) with the largest mean, largest first."""
    means = to_numpy(act.reshape(act.shape[0], -1).mean(axis=1))  # (C,)
    return [int(c) for c in np.argsort(-means, kind="stable")[:n]]


class Patch(NamedTuple):
    """One place in one image where a unit fires strongly."""

    score: float  # the activation there
    source: str  # image file name
    position: tuple  # (i, j) in the layer's map
    box: tuple  # (y0, y1, x0, x1) in the (resized) image, see receptive_field_box
    crop: np.ndarray  # uint8 (y1 - y0, x1 - x0, 3)


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
    net.check_layers([layer])
    unit = check_unit(layer, unit)
    paths = image_files(images) if images is None or not isinstance(images, (list, tuple)) else images
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
