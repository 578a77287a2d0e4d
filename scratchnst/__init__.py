"""scratchnst: neural style transfer from scratch in NumPy, and on the GPU through CuPy."""

__version__ = "0.1.0"

from .errors import ScratchNSTError  # noqa: E402

__all__ = ["ScratchNSTError", "__version__"]
