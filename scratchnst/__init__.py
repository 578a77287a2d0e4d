"""scratchnst: neural style transfer from scratch in NumPy, and on the GPU through CuPy.

The package is in parts, each a folder:

    backend.py, errors.py   the ground: NumPy or CuPy, and the one error users see
    network/                VGG19: reference layers, gradient checks, the network;
                            network/fast/ holds the fast convolutions
    method/                 Gatys' method: costs, presets, objective, optimisers, colour
    transfer/               a whole run: settings, levels, the loop, the estimate
    inside/                 seeing inside the network: receptive fields, synthesis, figures
    files/                  images, weights, checkpoints, safe PyTorch files, atomic writes
    cli/                    the ``scratchnst`` command, one module per subcommand

``network/`` and ``method/`` are the teaching core: they import nothing from
``transfer/``, ``inside/``, ``files/`` or ``cli/``.

The names below are the public API. Each is imported from its module the first time
it is used (PEP 562's module ``__getattr__``), so ``import scratchnst`` stays cheap:
the table doubles as a map of where each name lives.
"""

import importlib

__version__ = "0.1.0"

_API = {
    "ScratchNSTError": "scratchnst.errors",
    "LAYERS": "scratchnst.network.architecture",
    "VGG19": "scratchnst.network.vgg",
    "load_vgg19": "scratchnst.files.weights",
    "load_image": "scratchnst.files.images",
    "bundled_image": "scratchnst.files.images",
    "save_image": "scratchnst.files.images",
    "PRESETS": "scratchnst.method.presets",
    "explain": "scratchnst.method.presets",
    "Objective": "scratchnst.method.objective",
    "Adam": "scratchnst.method.adam",
    "LBFGS": "scratchnst.method.lbfgs",
    "minimize": "scratchnst.method.optimize",
    "Settings": "scratchnst.transfer.settings",
    "stylize": "scratchnst.transfer.loop",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'scratchnst' has no attribute {name!r}")


def __dir__():
    return __all__
