"""scratchnst: neural style transfer from scratch in NumPy, and on the GPU through CuPy."""

__version__ = "0.1.0"

from .errors import ScratchNSTError  # noqa: E402
from .vgg import LAYERS, VGG19, load_vgg19  # noqa: E402

__all__ = ["LAYERS", "VGG19", "ScratchNSTError", "__version__", "load_vgg19"]
