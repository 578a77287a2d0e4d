"""VGG19's layer table: every fact about the architecture, in one place.

VGG19 ("configuration E" of Simonyan and Zisserman 2014) is five blocks of 3x3
convolutions (pad 1, stride 1), each convolution followed by a ReLU and each block
closed by a 2x2 pool (stride 2). Everything else in scratchnst that needs a
layer's name, its channels, where the pools fall or an activation's shape reads
it from here:

    LAYERS                       # conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ... pool5
    CONV_CHANNELS["conv3_1"]     # (256, 128): (out, in) channels of its kernel
    channels("relu4_2")          # 512
    activation_shapes(224, 224)  # {"conv1_1": (64, 224, 224), ..., "pool5": (512, 7, 7)}
"""

from scratchnst.errors import ScratchNSTError

# (output channels, number of convolutions) of each block.
BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def _walk():
    """(name, kind, out channels, in channels) of every layer, in network order."""
    table, c_in = [], 3
    for b, (c_out, n_convs) in enumerate(BLOCKS, start=1):
        for k in range(1, n_convs + 1):
            table.append((f"conv{b}_{k}", "conv", c_out, c_in))
            table.append((f"relu{b}_{k}", "relu", c_out, c_out))
            c_in = c_out
        table.append((f"pool{b}", "pool", c_out, c_out))
    return tuple(table)


TABLE = _walk()  # 37 rows: 16 conv, 16 relu, 5 pool
LAYERS = tuple(name for name, *_ in TABLE)
KIND = {name: kind for name, kind, *_ in TABLE}  # "conv", "relu" or "pool"
CONV_LAYERS = tuple(name for name, kind, *_ in TABLE if kind == "conv")  # the 16 that hold weights
CONV_CHANNELS = {name: (c_out, c_in) for name, kind, c_out, c_in in TABLE if kind == "conv"}  # kernel (O, C)
_CHANNELS = {name: c_out for name, _, c_out, _ in TABLE}

LAYER_NAMES_HINT = "names are conv1_1 ... conv5_4, relu1_1 ... relu5_4, pool1 ... pool5"


def check_layers(layers, what="VGG19 layer name(s)"):
    """The names as a tuple; a one-line error for any that is not a VGG19 layer."""
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    unknown = [name for name in layers if name not in KIND]
    if unknown:
        raise ScratchNSTError(f"unknown {what} {', '.join(map(repr, unknown))}; {LAYER_NAMES_HINT}")
    return layers


def channels(layer):
    """Channels of a layer's activation (``relu3_1`` -> 256, ``pool5`` -> 512)."""
    return _CHANNELS[check_layers(layer)[0]]


def depth(layer):
    """Position of a layer in :data:`LAYERS` (conv1_1 is 0)."""
    return LAYERS.index(check_layers(layer)[0])


def deepest(layers):
    """The layer of ``layers`` that comes last in the network."""
    return max(check_layers(layers), key=LAYERS.index)


def activation_shapes(H, W, deepest="pool5"):
    """{name: (C, h, w)} of every layer up to ``deepest`` for an (H, W) input.

    Convolutions keep h and w (3x3, pad 1); each pool halves them, floored.
    """
    shapes, h, w = {}, H, W
    for name, kind, c_out, _ in TABLE[: depth(deepest) + 1]:
        if kind == "pool":
            h, w = h // 2, w // 2
        shapes[name] = (c_out, h, w)
    return shapes
