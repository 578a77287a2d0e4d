"""Style transfer end to end: images in, optimised image out.

    settings = Settings(content="astronaut", styles=["starry_night"], size=256)
    result = stylize(settings)               # Result: .rgb (H, W, 3) uint8, .history, ...

The steps, each in its own function so a reader can follow them:

1. :func:`prepare_images` loads the content at ``size`` (long side) and each style at
   ``size * style_scale``, and applies colour preservation (Gatys et al.,
   "Preserving Color in Neural Artistic Style Transfer", 2016) when asked.
2. :func:`scale_sizes` plans coarse-to-fine levels for large outputs: the image is
   optimised at half resolution first, then upsampled and refined, which is far
   cheaper than starting at full size and gives coherent large-scale structure.
3. :func:`initial_image` makes the starting point: the content, noise, the
   course's blend ``noise_ratio * noise + (1 - noise_ratio) * content``, or a file.
4. :func:`run_level` minimises :class:`scratchnst.Objective` with L-BFGS or Adam
   (:mod:`scratchnst.method.optimize`) at one level, reporting progress through a callback
   and writing checkpoints that :func:`stylize` can resume from exactly.

Pixel range: the optimisers work on an unconstrained image (see
:mod:`scratchnst.method.optimize`); it is clipped to 0..255 only when written out.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchnst.backend import to_backend, to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.files import images
from scratchnst.method.objective import Objective
from scratchnst.method.optimize import minimize
from scratchnst.transfer.settings import DEVICES, Settings


@dataclass
class Result:
    rgb: np.ndarray  # (H, W, 3) uint8, the final image
    settings: Settings
    history: dict  # per-iteration {"total": [...], "content": [...], "style": [...], "tv": [...]}
    iterations: int  # done at the final level
    interrupted: bool = False


# ------------------------------------------------------------------ 1. images


def load_inputs(settings):
    """Content (H, W, 3) uint8 at ``size``, and each style at ``size * style_scale``."""
    content = images.load_image(images.resolve_image_path(settings.content), long_side=settings.size)
    style_side = max(16, round(settings.size * settings.style_scale))
    styles = [images.load_image(images.resolve_image_path(s), long_side=style_side) for s in settings.styles]
    return content, styles


def preserve_color_inputs(content, styles, mode):
    """Colour preservation applied to the inputs (Gatys et al. 2016b).

    ``histogram``: each style image's colours are matched to the content's (mean
    and covariance) before transfer. ``luminance``: transfer runs on luminance
    only; the style luminance is matched to the content's mean and spread, and
    both are replicated to three channels (the output's colour is put back in
    :func:`restore_color`).
    """
    from scratchnst.method import color

    if mode == "none":
        return content, styles
    if mode == "histogram":
        matched = [color.match_color_histogram(s.astype(np.float64), content.astype(np.float64)) for s in styles]
        return content, [_to_uint8(m) for m in matched]
    grey = [color.luminance_only_inputs(content, s) for s in styles]  # [(content grey, style grey)]
    return _to_uint8(grey[0][0]), [_to_uint8(g[1]) for g in grey]


def restore_color(rgb, content_rgb, mode):
    """For ``luminance`` mode: the stylised luminance with the content's colour (YIQ)."""
    from scratchnst.method import color

    if mode != "luminance":
        return rgb
    out = color.luminance_only_output(rgb.astype(np.float64), content_rgb.astype(np.float64))
    return _to_uint8(out)


def _to_uint8(a):
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ 2. scales


def scale_sizes(size, scales):
    """Long sides of the coarse-to-fine levels, smallest first.

    ``scales`` levels, each half the next (``0``: as many as keep the smallest at
    256 px or more, one level for sizes up to 512).
    """
    if scales == 0:
        scales = 1
        while size / 2**scales >= 256:
            scales += 1
    sizes = [max(16, round(size / 2**k)) for k in range(scales - 1, -1, -1)]
    return sizes


# ------------------------------------------------------------------ 3. start


def initial_image(settings, content_x, net, rng):
    """The starting image in the network's input space, shaped like ``content_x``."""
    xp = net.xp
    if settings.init == "content":
        return content_x.copy()
    # Noise: uniform over the pixel range, drawn on the host so CPU and GPU runs agree.
    lo, hi = net.prep.pixel_bounds()
    shape = content_x.shape
    noise = rng.uniform(lo[:, None, None], hi[:, None, None], size=shape)
    noise = to_backend(noise, net.backend, net.dtype)
    if settings.init == "noise":
        return noise
    if settings.init == "blend":
        r = settings.noise_ratio
        return xp.asarray(r * noise + (1 - r) * content_x, dtype=net.dtype)
    H, W = shape[1:]
    rgb = images.load_image(images.resolve_image_path(settings.init))
    return net.preprocess(images.resize_to(rgb, (H, W)))


# ------------------------------------------------------------------ 4. optimise


def build_objective(settings, net, content_rgb, style_rgbs):
    return Objective(
        net,
        net.preprocess(content_rgb),
        [net.preprocess(s) for s in style_rgbs],
        content_layers=tuple(settings.content_layers),
        style_layers=tuple(settings.style_layers),
        style_layer_weights=settings.style_layer_weights,
        style_blend=settings.style_blend,
        alpha=settings.alpha,
        beta=settings.beta,
        tv_weight=settings.tv_weight,
        normalization=settings.preset,
    )


def optimizer_options(settings):
    if settings.optimizer == "lbfgs":
        return {"history_size": settings.history}
    return {"lr": settings.lr}


def run_level(settings, objective, x0, *, state=None, callback=None):
    """Minimise at one level; ``callback(opt, terms)`` after every iteration (True stops).

    Raises a one-line error when the loss or the image stops being finite.
    """

    def step_done(opt):
        if not math.isfinite(opt.f):
            raise ScratchNSTError(
                f"the loss became {opt.f} at iteration {opt.n_iter}; lower --lr or the style weight, "
                "or use --dtype float64"
            )
        return callback(opt, objective.terms) if callback else None

    return minimize(
        objective.value_and_grad,
        x0,
        method=settings.optimizer,
        max_iter=settings.iterations,
        callback=step_done,
        state=state,
        **optimizer_options(settings),
    )


def check_finite(x, what="image"):
    xp_isfinite = np.isfinite(to_numpy(x)).all()
    if not xp_isfinite:
        raise ScratchNSTError(f"the {what} became NaN or infinite; lower --lr or the style weight")


def upsample(x, net, shape):
    """Resize an input-space image to (3, H, W) for the next, finer level (bicubic on the host)."""
    rgb_like = to_numpy(x).astype(np.float32).transpose(1, 2, 0)
    from PIL import Image

    channels = [
        np.asarray(Image.fromarray(rgb_like[..., c], mode="F").resize((shape[2], shape[1]), Image.BICUBIC))
        for c in range(3)
    ]
    return to_backend(np.stack(channels), net.backend, net.dtype)


def output_path_for(base, suffix):
    """``out.png`` -> ``out.<suffix>`` beside it (``out.losses.png``, ``out.ckpt.npz``)."""
    base = Path(base)
    return base.with_name(base.stem + suffix)


# ------------------------------------------------------------------ the whole run


def _weighted_terms(objective):
    """The loss split into its weighted parts, which sum to the total."""
    t = objective.terms
    return {
        "total": t["total"],
        "content": objective.alpha * t["content"],
        "style": objective.beta * t["style"],
        "tv": objective.tv_weight * t["tv"],
    }


def stylize(settings, *, inputs=None, resume=None, on_iteration=None, on_level=None, checkpoint_path=None,
            checkpoint_every=0, on_snapshot=None, snapshot_every=0):
    """Run style transfer; return a :class:`Result`.

    Parameters
    ----------
    settings : Settings
    inputs : (content, [styles]) RGB uint8 arrays already loaded by :func:`load_inputs`, or None
    resume : dict or None
        A checkpoint's state (:func:`scratchnst.files.checkpoint.load_checkpoint`); its
        settings replace ``settings``.
    on_iteration : callable(level, n_levels, iteration, terms) or None
        Called after every iteration with the weighted loss terms (for a progress bar).
    on_level : callable(level, n_levels, (H, W)) or None
        Called when a level starts.
    checkpoint_path, checkpoint_every : where and how often (in iterations) to save
        the run; also saved at the end of each level and on Ctrl-C.
    on_snapshot, snapshot_every : ``on_snapshot(level, iteration, rgb)`` every N iterations.

    Ctrl-C (KeyboardInterrupt) ends the run early: the checkpoint is written and the
    result, with ``interrupted=True``, holds the last completed iteration's image.
    """
    from scratchnst.files.checkpoint import save_checkpoint
    from scratchnst.files.weights import load_vgg19

    if resume is not None:
        settings = Settings.from_dict(resume["settings"])
    settings.validate()
    net = load_vgg19(settings.weights, dtype=settings.dtype, backend=DEVICES[settings.device],
                     pooling=settings.pooling)
    content_full, styles_full = inputs if inputs is not None else load_inputs(settings)
    content_full_cp, styles_full = preserve_color_inputs(content_full, styles_full, settings.preserve_color)
    sizes = scale_sizes(settings.size, settings.scales)
    rng = np.random.default_rng(settings.seed)
    history = {"total": [], "content": [], "style": [], "tv": [], "level": []}
    first_level, x, opt_state = 0, None, None
    if resume is not None:
        first_level = int(resume["level"])
        history = {k: list(v) for k, v in resume["history"].items()}
        rng.bit_generator.state = resume["rng"]
        opt_state = {k: (to_backend(v, net.backend, net.dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
                         else v) for k, v in resume["optimizer"].items()}

    def checkpoint(level, opt):
        if checkpoint_path is None:
            return
        save_checkpoint(checkpoint_path, {
            "settings": settings.to_dict(), "level": level, "history": history,
            "rng": rng.bit_generator.state, "optimizer": opt.state_dict(),
        })

    latest = {}
    interrupted = False
    for level in range(first_level, len(sizes)):
        content, styles = _at_size(content_full_cp, styles_full, sizes[level], sizes[-1])
        original, _ = _at_size(content_full, [], sizes[level], sizes[-1])  # for colour restoration
        objective = build_objective(settings, net, content, styles)
        H, W = content.shape[:2]
        if on_level:
            on_level(level, len(sizes), (H, W))
        if opt_state is None:
            if x is None:
                x = initial_image(settings, net.preprocess(content), net, rng)
            else:
                x = upsample(x, net, (3, H, W))

        def callback(opt, terms, level=level, objective=objective, original=original):
            latest["opt"] = opt
            parts = _weighted_terms(objective)
            for k in ("total", "content", "style", "tv"):
                history[k].append(parts[k])
            history["level"].append(level)
            if on_iteration:
                on_iteration(level, len(sizes), opt.n_iter, parts)
            if snapshot_every and on_snapshot and opt.n_iter % snapshot_every == 0:
                on_snapshot(level, opt.n_iter, finish_rgb(net, opt.x, original, settings))
            if checkpoint_every and opt.n_iter % checkpoint_every == 0:
                checkpoint(level, opt)

        try:
            result = run_level(settings, objective, x, state=opt_state, callback=callback)
        except KeyboardInterrupt:
            interrupted = True
            opt = latest.get("opt")
            if opt is None:
                raise
            checkpoint(level, opt)
            x = opt.x
            break
        opt_state = None
        x = result.x
        check_finite(x)
        checkpoint(level, result.optimizer)
        latest["opt"] = result.optimizer
    rgb = finish_rgb(net, x, original, settings)
    iterations = latest["opt"].n_iter if "opt" in latest else 0
    return Result(rgb=rgb, settings=settings, history=history, iterations=iterations, interrupted=interrupted)


def _at_size(content, styles, long_side, final_long_side):
    """Content and styles resized for a level whose long side is ``long_side``."""
    if long_side == final_long_side:
        return content, styles
    f = long_side / final_long_side
    content = images.resize_long_side(content, long_side)
    styles = [images.resize_long_side(s, max(16, round(max(s.shape[:2]) * f))) for s in styles]
    return content, styles


def finish_rgb(net, x, content_rgb, settings):
    """The optimised image as RGB uint8, colour restored for luminance-only transfer."""
    rgb = net.deprocess(x)
    return restore_color(rgb, content_rgb, settings.preserve_color)
