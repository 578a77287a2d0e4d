"""Where in the input one unit of a VGG19 layer looks: its receptive field, from the architecture.

    receptive_fields()["relu4_1"]                    # ReceptiveField(size=68, jump=8, start=3.5)
    receptive_field_box("relu4_1", i, j, (H, W))     # (y0, y1, x0, x1) of unit (i, j) in the image
"""

from typing import NamedTuple

from scratchnst.network.architecture import KIND, LAYERS


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
    r, j, start = 1, 1, 0.0
    table = {}
    for name in LAYERS:
        if KIND[name] == "conv":
            r += 2 * j
        elif KIND[name] == "pool":
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
