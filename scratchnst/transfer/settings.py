"""Every choice of a stylization run, in one dataclass, checked before any heavy work.

:class:`Settings` is what the command line fills in, what a checkpoint and the
output PNG's metadata store, and what :func:`scratchnst.transfer.loop.stylize` reads.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from scratchnst.errors import ScratchNSTError
from scratchnst.method.objective import STYLE_LAYERS
from scratchnst.method.presets import get_preset
from scratchnst.network import architecture
from scratchnst.network.vgg import POOLING

DEVICES = {"cpu": "numpy", "gpu": "cupy"}
MAX_SIZE = 16384  # long side, in pixels, of the output and of the style images
RESUMABLE = ("iterations",)  # the settings a resumed run may change
INITS = ("content", "noise", "blend")
NOISE_INITS = ("noise", "blend")  # the starts that take NOISE_START
# What ``pooling`` and ``scales`` left unset (None) become, by where the image starts.
# From the content image, max pooling on one level, as Gatys et al. From noise or the
# course's blend, average pooling and three coarse-to-fine levels: on one level the run
# ends as the style's texture over pixel-level speckle (VGG barely sees it); coarse to fine
# removes the speckle and average pooling lets the content through (benchmarks/README.md,
# "Gatys' normalised network, the style weight, and starting from noise").
CONTENT_START = {"pooling": "max", "scales": 1}
NOISE_START = {"pooling": "avg", "scales": 3}
COARSEST_SIDE = 64  # px: NOISE_START's levels stop halving here (a 256 px run: 64, 128, 256)
PRESERVE_COLOR = ("none", "luminance", "histogram")


@dataclass
class Settings:
    """Every choice of a run. Written into the output PNG and the checkpoint.

    ``content`` and ``styles`` are file paths or names of bundled images. ``alpha``
    and ``beta`` None take the preset's defaults. ``init`` is ``content``,
    ``noise``, ``blend`` (``noise_ratio`` of noise mixed into the content) or an
    image path. ``scales`` is the number of coarse-to-fine levels (1: single scale;
    0: automatic, halving until the long side is at most 256 px). ``pooling`` and
    ``scales`` left None follow ``init`` (:data:`CONTENT_START`, :data:`NOISE_START`, with
    levels no smaller than :data:`COARSEST_SIDE`);
    :meth:`validate` fills them in.
    ``style_layer_weights``: one number per style layer, None (the preset's) or
    ``"auto"`` (equal style terms at the content image: :mod:`scratchnst.method.balance`).
    ``normalized``: True runs Gatys' normalised VGG19 (``load_vgg19(normalized=True)``),
    False the weights as trained, None what the preset was published with
    (:attr:`scratchnst.method.presets.Normalization.normalized`: True for ``gatys`` only).
    ``tile``: None evaluates the objective on the whole image at once; N, on tiles of
    at most N x N pixels plus a halo: the same loss and gradient, in memory bounded
    by the tile (:mod:`scratchnst.method.tiled`).
    """

    content: str
    styles: list
    style_blend: list | None = None
    size: int = 512
    style_scale: float = 1.0
    iterations: int = 500
    optimizer: str = "lbfgs"
    lr: float = 2.0
    history: int = 10
    preset: str = "gatys"
    alpha: float | None = None
    beta: float | None = None
    tv_weight: float = 0.0
    content_layers: list = field(default_factory=lambda: ["relu4_2"])
    style_layers: list = field(default_factory=lambda: list(STYLE_LAYERS))
    style_layer_weights: list | str | None = None  # numbers, "auto" (scratchnst.method.balance) or the preset's
    pooling: str | None = None  # None: by init (CONTENT_START, NOISE_START)
    init: str = "content"
    noise_ratio: float = 0.6
    preserve_color: str = "none"
    scales: int | None = None  # None: by init (CONTENT_START, NOISE_START)
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    weights: str | None = None
    tile: int | None = None
    normalized: bool | None = None  # Gatys' normalised VGG19? None: as the preset was published (gatys: yes)

    def validate(self):
        """One-line errors for settings that cannot work, before any heavy work; fills the unset
        ``pooling`` and ``scales`` in from ``init``."""
        if not self.styles:
            raise ScratchNSTError("give at least one style image")
        if not (isinstance(self.size, int) and 16 <= self.size <= MAX_SIZE):
            raise ScratchNSTError(f"size must be an integer from 16 to {MAX_SIZE} pixels, got {self.size!r}")
        start = dict(NOISE_START if self.init in NOISE_INITS else CONTENT_START)
        while start["scales"] > 1 and self.size / 2 ** (start["scales"] - 1) < COARSEST_SIDE:
            start["scales"] -= 1  # a small image gets fewer levels, not ones too small for VGG
        for name, value in start.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.pooling not in POOLING:
            raise ScratchNSTError(f"pooling must be max or avg, got {self.pooling!r}")
        if not (self.style_scale > 0 and math.isfinite(self.style_scale)):
            raise ScratchNSTError(f"style scale must be a positive number, got {self.style_scale!r}")
        if self.size * self.style_scale > MAX_SIZE:
            raise ScratchNSTError(f"style scale {self.style_scale:g} makes the style images "
                                  f"{self.size * self.style_scale:.0f} px; at most {MAX_SIZE} px")
        if not (isinstance(self.iterations, int) and self.iterations >= 0):
            raise ScratchNSTError(f"iterations must be a non-negative integer, got {self.iterations!r}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise ScratchNSTError(f"optimizer must be lbfgs or adam, got {self.optimizer!r}")
        if self.device not in DEVICES:
            raise ScratchNSTError(f"device must be cpu or gpu, got {self.device!r}")
        if self.dtype not in ("float32", "float64"):
            raise ScratchNSTError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.preserve_color not in PRESERVE_COLOR:
            raise ScratchNSTError(f"preserve-color must be one of {', '.join(PRESERVE_COLOR)}")
        if not 0 <= self.noise_ratio <= 1:
            raise ScratchNSTError(f"noise ratio must be between 0 and 1, got {self.noise_ratio!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ScratchNSTError(f"learning rate must be a positive number, got {self.lr!r}")
        if not (isinstance(self.history, int) and self.history >= 1):
            raise ScratchNSTError(f"history must be a positive integer, got {self.history!r}")
        if not (isinstance(self.scales, int) and 0 <= self.scales <= 8):
            raise ScratchNSTError(f"scales must be an integer from 0 (auto) to 8, got {self.scales!r}")
        if self.tile is not None and (isinstance(self.tile, bool) or not isinstance(self.tile, int)
                                      or not 1 <= self.tile <= MAX_SIZE):
            raise ScratchNSTError(f"tile must be an integer from 1 to {MAX_SIZE} pixels (or None: untiled), "
                                  f"got {self.tile!r}")
        architecture.check_layers(list(self.content_layers) + list(self.style_layers))
        if isinstance(self.style_layer_weights, str) and self.style_layer_weights != "auto":
            raise ScratchNSTError(f"style layer weights must be numbers or auto, got {self.style_layer_weights!r}")
        if not (self.normalized is None or isinstance(self.normalized, bool)):
            raise ScratchNSTError(f"normalized must be true, false or unset, got {self.normalized!r}")
        if self.style_blend is not None and len(self.style_blend) != len(self.styles):
            raise ScratchNSTError(
                f"{len(self.style_blend)} style blend weights for {len(self.styles)} style images"
            )
        return self

    def normalized_network(self):
        """Whether the run uses Gatys' normalised VGG19: ``normalized``, or when None the preset's choice."""
        return get_preset(self.preset).normalized if self.normalized is None else self.normalized

    def style_weight(self):
        """beta: ``beta`` if given, else the preset's for the network this run uses (``normalized_network``)."""
        if self.beta is not None:
            return self.beta
        preset = get_preset(self.preset)
        if self.normalized_network() != preset.normalized and preset.beta_other_network is not None:
            return preset.beta_other_network
        return preset.beta

    def to_dict(self):
        return dataclasses.asdict(self)

    def changed_from(self, other):
        """Names of the settings that differ from ``other``'s, but those :data:`RESUMABLE`."""
        return [f.name for f in dataclasses.fields(self)
                if f.name not in RESUMABLE and getattr(self, f.name) != getattr(other, f.name)]

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in dataclasses.fields(cls)}
        d = {"normalized": False, **d}  # settings stored before the option existed ran the original network
        return cls(**{k: v for k, v in d.items() if k in names})


def check_resume(checkpoint, settings):
    """Refuse ``settings`` that would not continue ``checkpoint``'s run; return them.

    A resumed run keeps every setting of the checkpoint but the :data:`RESUMABLE` ones,
    and its ``iterations`` (per level) cannot drop below what the checkpoint's level
    has already done: more iterations continue the run.
    """
    stored = Settings.from_dict(checkpoint["settings"])
    changed = settings.changed_from(stored)
    if changed:
        name = changed[0]
        raise ScratchNSTError(f"{name} {getattr(settings, name)!r} differs from the checkpoint's "
                              f"{getattr(stored, name)!r}; a resumed run keeps every setting but the iterations")
    done, level = int(checkpoint["optimizer"]["n_iter"]), int(checkpoint["level"])
    if settings.iterations < done:
        raise ScratchNSTError(f"iterations {settings.iterations} is fewer than the {done} the checkpoint has "
                              f"done at scale {level + 1}; give --iterations {done} or more")
    return settings
