"""scratchnst: neural style transfer from scratch in NumPy, and on the GPU through CuPy."""

__version__ = "0.1.0"

from .errors import ScratchNSTError  # noqa: E402
from .losses import PRESETS, explain  # noqa: E402
from .objective import Objective  # noqa: E402
from .optim import LBFGS, Adam, minimize  # noqa: E402
from .transfer import Settings, stylize  # noqa: E402
from .vgg import LAYERS, VGG19, load_vgg19  # noqa: E402

__all__ = [
    "LAYERS", "LBFGS", "PRESETS", "VGG19", "Adam", "Objective", "ScratchNSTError", "Settings",
    "__version__", "explain", "load_vgg19", "minimize", "stylize",
]
