"""Style transfer end to end: images in, optimised image out.

    settings = Settings(content="astronaut", styles=["starry_night"], size=256)
    result = stylize(settings)               # Result: .rgb (H, W, 3) uint8, .history, ...

The steps, each in its own function so a reader can follow them; a :class:`Run`
carries what passes from one to the next:

1. :func:`start_run` loads the network, the content at ``size`` (long side) and each
   style at ``size * style_scale`` (:func:`load_inputs`), applies colour preservation
   when asked, and plans the coarse-to-fine levels (:mod:`scratchnst.transfer.levels`:
   half resolution first for large outputs). :func:`resume_run` does the same from a
   checkpoint and takes up its level, loss history, RNG and optimizer state.
2. :func:`run_level`, once per level: resizes the inputs, builds the
   :class:`scratchnst.Objective`, starts from
   :func:`~scratchnst.transfer.levels.initial_image` (the content, noise, the course's
   blend ``noise_ratio * noise + (1 - noise_ratio) * content``, or a file) at level 0
   and from the previous level's result upsampled after that, and minimises with
   L-BFGS or Adam (:mod:`scratchnst.method.optimize`).
3. :func:`after_iteration`, after every iteration: records the loss terms, reports
   progress, writes snapshots and periodic checkpoints.
4. :func:`save_checkpoint_of` writes what :func:`resume_run` needs to continue exactly:
   at the end of each level, every ``checkpoint_every`` iterations, and at the end.
5. :func:`finish` turns the last image into RGB (colour restored) and a :class:`Result`,
   hands it to the caller to write (``on_result``), then writes the final checkpoint.

Stopping early. Ctrl-C, SIGTERM (as :class:`~scratchnst.files.atomic.Terminated`, where
the caller has asked for it) and a file that cannot be written mid-run (a full disk)
end the run after its last completed iteration, and :func:`finish` saves that as it
saves a finished run. Every save (snapshots, checkpoints, the caller's image) runs
with signals held (:func:`~scratchnst.files.atomic.signals_held`): a Ctrl-C during a
save lets it finish, then stops the run.

Pixel range: the optimisers work on an unconstrained image (see
:mod:`scratchnst.method.optimize`); it is clipped to 0..255 only when written out.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scratchnst.backend import to_backend, to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.files import images
from scratchnst.files.atomic import WriteError, interruption, signals_held
from scratchnst.method.objective import Objective
from scratchnst.method.optimize import minimize
from scratchnst.transfer.levels import at_size, finish_rgb, initial_image, preserve_color_inputs, scale_sizes, upsample
from scratchnst.transfer.settings import DEVICES, Settings, check_resume

TERMS = ("total", "content", "style", "tv")


@dataclass
class Result:
    rgb: np.ndarray  # (H, W, 3) uint8, the final image
    settings: Settings
    history: dict  # per-iteration {"total": [...], "content": [...], "style": [...], "tv": [...], "level": [...]}
    iterations: int  # done at the final level
    loss: float  # the loss of ``rgb``'s image (known even when no iteration ran)
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM, during the run or while it was being saved
    stopped_by: BaseException | None = None  # KeyboardInterrupt, Terminated or the WriteError that stopped it
    checkpoint_error: str | None = None  # why the final checkpoint could not be written (one line)


@dataclass(frozen=True)
class Hooks:
    """What the caller hears of a run and where it is saved; see :func:`stylize`."""

    on_iteration: Callable | None = None
    on_level: Callable | None = None
    on_snapshot: Callable | None = None
    snapshot_every: int = 0
    checkpoint_path: str | Path | None = None
    checkpoint_every: int = 0
    on_result: Callable | None = None
    keep_checkpoint: bool = True


@dataclass
class Run:
    """Everything a run carries from one level to the next: the loop's only state.

    ``opt`` is the optimizer of the last completed iteration (or finished level) and
    ``opt_level`` the level it ran at; they change together, and a checkpoint stores
    them together, so it never pairs a level with another level's optimizer state.
    ``opt`` is None until the first iteration of this process (or the first level
    finished, for a level with no iterations).
    """

    settings: Settings
    net: object  # the VGG19 of :mod:`scratchnst.network.vgg`
    content: np.ndarray  # (H, W, 3) uint8 at full size as loaded: colour restoration's reference
    content_in: np.ndarray  # (H, W, 3) uint8, what the network is shown (after colour preservation)
    styles_in: list  # [(h, w, 3) uint8], likewise
    sizes: list  # long side of each level, smallest first
    rng: np.random.Generator
    history: dict = field(default_factory=lambda: {k: [] for k in (*TERMS, "level")})
    first_level: int = 0
    resume_state: dict | None = None  # optimizer state that ``first_level`` resumes from
    opt: object = None
    opt_level: int = 0
    stopped_by: BaseException | None = None  # what ended the run early (see :class:`Result`)


class Level(NamedTuple):
    """What stays fixed while one level is optimised."""

    index: int  # 0 is the coarsest
    objective: Objective
    original: np.ndarray  # (H, W, 3) uint8 content as loaded, at this level's size


# ------------------------------------------------------------------ 1. start


def load_inputs(settings):
    """Content (H, W, 3) uint8 at ``size``, and each style at ``size * style_scale``."""
    content = images.load_image(images.resolve_image_path(settings.content), long_side=settings.size)
    style_side = max(16, round(settings.size * settings.style_scale))
    styles = [images.load_image(images.resolve_image_path(s), long_side=style_side) for s in settings.styles]
    return content, styles


def start_run(settings, inputs=None):
    """A fresh :class:`Run`: settings checked, network and images loaded, levels planned.

    ``inputs``: (content, [styles]) RGB uint8 arrays already loaded by :func:`load_inputs`,
    or None to load them here.
    """
    from scratchnst.files.weights import load_vgg19

    settings.validate()
    net = load_vgg19(settings.weights, dtype=settings.dtype, backend=DEVICES[settings.device],
                     pooling=settings.pooling, normalized=settings.normalized_network())
    content, styles = inputs if inputs is not None else load_inputs(settings)
    content_in, styles_in = preserve_color_inputs(content, styles, settings.preserve_color)
    return Run(settings=settings, net=net, content=content, content_in=content_in, styles_in=styles_in,
               sizes=scale_sizes(settings.size, settings.scales), rng=np.random.default_rng(settings.seed))


def resume_run(checkpoint, inputs=None, settings=None):
    """A :class:`Run` that continues from a checkpoint's state.

    ``settings``: None takes the checkpoint's; else they may differ from them only as
    :func:`~scratchnst.transfer.settings.check_resume` allows (more iterations). The
    checkpoint's level is run again from its optimizer state: the rest of its
    iterations, or none if that level had finished, in which case the next level
    starts from its result upsampled, as in the uninterrupted run.
    """
    settings = Settings.from_dict(checkpoint["settings"]) if settings is None else settings
    run = start_run(check_resume(checkpoint, settings), inputs)
    run.first_level = int(checkpoint["level"])
    run.history = {k: list(v) for k, v in checkpoint["history"].items()}
    run.rng.bit_generator.state = checkpoint["rng"]
    net = run.net
    run.resume_state = {
        k: (to_backend(v, net.backend, net.dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
        for k, v in checkpoint["optimizer"].items()
    }
    return run


# ------------------------------------------------------------------ 2. one level


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
        beta=settings.style_weight(),
        tv_weight=settings.tv_weight,
        normalization=settings.preset,
        tile=settings.tile,
    )


def optimizer_options(settings):
    if settings.optimizer == "lbfgs":
        return {"history_size": settings.history}
    return {"lr": settings.lr}


def original_at(run, index):
    """The content as loaded (before colour preservation), at level ``index``'s size."""
    return at_size(run.content, [], run.sizes[index], run.sizes[-1])[0]


def run_level(run, index, hooks):
    """Optimise level ``index``, then checkpoint it (but the last); on return ``run.opt`` holds its result.

    The level starts from the resumed optimizer state if ``run`` was resumed at this
    level, else from :func:`~scratchnst.transfer.levels.initial_image` (level 0) or the
    previous level's image upsampled to this level's (H, W).
    """
    settings, net = run.settings, run.net
    content, styles = at_size(run.content_in, run.styles_in, run.sizes[index], run.sizes[-1])
    level = Level(index, build_objective(settings, net, content, styles), original_at(run, index))
    H, W = content.shape[:2]
    if hooks.on_level:
        hooks.on_level(index, len(run.sizes), (H, W))
    state, x0 = run.resume_state, None
    run.resume_state = None  # used once: the next level starts from this one's image
    if state is None:
        x0 = (initial_image(settings, net.preprocess(content), net, run.rng) if run.opt is None
              else upsample(run.opt.x, net, (3, H, W)))
    # Overflow to inf or NaN is reported in one line by after_iteration, not as NumPy warnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = minimize(level.objective.value_and_grad, x0, method=settings.optimizer,
                          max_iter=settings.iterations, callback=partial(after_iteration, run, hooks, level),
                          state=state, **optimizer_options(settings))
    check_finite(result.x)
    run.opt, run.opt_level = result.optimizer, index
    if index < len(run.sizes) - 1 and hooks.keep_checkpoint:  # the last level's is finish's
        with signals_held():
            save_checkpoint_of(run, hooks.checkpoint_path)


def check_finite(x, what="image"):
    xp_isfinite = np.isfinite(to_numpy(x)).all()
    if not xp_isfinite:
        raise ScratchNSTError(f"the {what} became NaN or infinite; lower --lr or the style weight")


# ------------------------------------------------------------------ 3. every iteration


def _weighted_terms(objective):
    """The loss split into its weighted parts, which sum to the total."""
    t = objective.terms
    return {
        "total": t["total"],
        "content": objective.alpha * t["content"],
        "style": objective.beta * t["style"],
        "tv": objective.tv_weight * t["tv"],
    }


def after_iteration(run, hooks, level, opt):
    """The optimiser's callback after each iteration of ``level``: record and report it.

    Raises a one-line error when the loss stops being finite. Returns None, so the
    optimiser never stops early on its account.
    """
    if not math.isfinite(opt.f):
        raise ScratchNSTError(
            f"the loss became {opt.f} at iteration {opt.n_iter}; lower --lr or the style weight, "
            "or use --dtype float64"
        )
    run.opt, run.opt_level = opt, level.index
    parts = _weighted_terms(level.objective)
    for k in TERMS:
        run.history[k].append(parts[k])
    run.history["level"].append(level.index)
    if hooks.on_iteration:
        hooks.on_iteration(level.index, len(run.sizes), opt.n_iter, parts)
    snapshot = hooks.snapshot_every and hooks.on_snapshot and opt.n_iter % hooks.snapshot_every == 0
    checkpoint = hooks.checkpoint_every and opt.n_iter % hooks.checkpoint_every == 0
    if not (snapshot or checkpoint):
        return  # nothing to write: no signal handlers to swap on this iteration
    with signals_held():  # a Ctrl-C stops the run once these files are whole
        if snapshot:
            hooks.on_snapshot(level.index, opt.n_iter, finish_rgb(run.net, opt.x, level.original, run.settings))
        if checkpoint:
            save_checkpoint_of(run, hooks.checkpoint_path)


# ------------------------------------------------------------------ 4. checkpoints


def save_checkpoint_of(run, path):
    """Write ``run``'s state to ``path`` for :func:`resume_run` (nothing if ``path`` is None).

    The level stored is ``run.opt_level``, the one whose optimizer state is stored. So
    a checkpoint taken after level k-1 finished but before level k's first iteration
    is level k-1's final checkpoint again: a resume runs no iteration there and starts
    level k from the upsampled image, as if the level had just begun.
    """
    from scratchnst.files.checkpoint import save_checkpoint

    if path is None:
        return
    save_checkpoint(path, {
        "settings": run.settings.to_dict(), "level": run.opt_level, "history": run.history,
        "rng": run.rng.bit_generator.state, "optimizer": run.opt.state_dict(),
    })


def output_path_for(base, suffix):
    """``out.png`` -> ``out.<suffix>`` beside it (``out.losses.png``, ``out.ckpt.npz``)."""
    base = Path(base)
    return base.with_name(base.stem + suffix)


# ------------------------------------------------------------------ 5. the end, and the whole run


def finish(run, hooks=Hooks()):
    """The :class:`Result` of ``run``, saved: ``hooks.on_result(result)`` first, then the final checkpoint.

    The image is the last one of ``run`` as RGB uint8, at that image's level's size.
    Signals are held from here to the end, so a Ctrl-C or SIGTERM while the result is
    saved lets the saving finish and marks the result interrupted instead. A checkpoint
    that cannot be written is reported in ``result.checkpoint_error``, after the caller
    had the result. With ``hooks.keep_checkpoint`` False, a run that completes writes
    no final checkpoint and removes the one at ``hooks.checkpoint_path``.
    """
    with signals_held() as held:
        rgb = finish_rgb(run.net, run.opt.x, original_at(run, run.opt_level), run.settings)
        result = Result(rgb=rgb, settings=run.settings, history=run.history, iterations=run.opt.n_iter,
                        loss=float(run.opt.f), stopped_by=run.stopped_by,
                        interrupted=isinstance(run.stopped_by, KeyboardInterrupt))
        if hooks.on_result:
            hooks.on_result(result)
        _note_signal(result, held)
        path = hooks.checkpoint_path
        if path is not None and not hooks.keep_checkpoint and result.stopped_by is None:
            Path(path).unlink(missing_ok=True)
        elif path is not None:
            try:
                save_checkpoint_of(run, path)
            except WriteError as e:
                result.checkpoint_error = str(e)
        _note_signal(result, held)
    return result


def _note_signal(result, held):
    """A signal held while the result was saved marks it interrupted (unless something stopped it already)."""
    if held and result.stopped_by is None:
        result.interrupted, result.stopped_by = True, interruption(held[0])
    held.clear()


def stylize(settings, *, inputs=None, resume=None, on_iteration=None, on_level=None, checkpoint_path=None,
            checkpoint_every=0, on_snapshot=None, snapshot_every=0, on_result=None, keep_checkpoint=True):
    """Run style transfer; return a :class:`Result`.

    Parameters
    ----------
    settings : Settings or None
        With ``resume``, None takes the checkpoint's settings; given, they may differ from
        them only in more ``iterations`` (:func:`~scratchnst.transfer.settings.check_resume`).
    inputs : (content, [styles]) RGB uint8 arrays already loaded by :func:`load_inputs`, or None
    resume : dict or None
        A checkpoint's state (:func:`scratchnst.files.checkpoint.load_checkpoint`).
    on_iteration : callable(level, n_levels, iteration, terms) or None
        Called after every iteration with the weighted loss terms (for a progress bar).
    on_level : callable(level, n_levels, (H, W)) or None
        Called when a level starts.
    checkpoint_path, checkpoint_every : where and how often (in iterations) to save
        the run; also saved at the end of each level and at the end of the run.
    on_snapshot, snapshot_every : ``on_snapshot(level, iteration, rgb)`` every N iterations.
    on_result : callable(result) or None
        Called once with the :class:`Result`, before the final checkpoint is written and
        with signals held: the place to write the image, so that it comes first.
    keep_checkpoint : bool
        False: checkpoints only when the run stops early (and every ``checkpoint_every``
        iterations), and a run that completes removes the one at ``checkpoint_path``.

    Ctrl-C (KeyboardInterrupt, or its :class:`~scratchnst.files.atomic.Terminated`) or
    a :class:`~scratchnst.files.atomic.WriteError` mid-run ends the run early: the
    result, with ``stopped_by`` set (and ``interrupted=True`` for a signal), holds the
    last completed iteration's image (at that iteration's level's size) and is saved
    as a finished one is (:func:`finish`). Between levels, that is the finished level's
    result, and a resume starts the next level afresh (see :func:`save_checkpoint_of`).
    Before the first iteration of this process there is nothing new to save and the
    exception propagates.
    """
    hooks = Hooks(on_iteration=on_iteration, on_level=on_level, on_snapshot=on_snapshot,
                  snapshot_every=snapshot_every, checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every,
                  on_result=on_result, keep_checkpoint=keep_checkpoint)
    run = resume_run(resume, inputs, settings) if resume is not None else start_run(settings, inputs)
    try:
        for index in range(run.first_level, len(run.sizes)):
            run_level(run, index, hooks)
    except (KeyboardInterrupt, WriteError) as e:
        if run.opt is None:
            raise
        run.stopped_by = e
    return finish(run, hooks)
