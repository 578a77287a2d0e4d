"""``scratchnst stylize``: the command artists use.

    scratchnst stylize photo.jpg starry_night -o out.png --size 512
    scratchnst stylize --resume out.ckpt.npz -o out.png      # continue a stopped run

Writes ``out.png`` (settings and seed in its PNG metadata), ``out.losses.png``
(the loss curve) and ``out.ckpt.npz`` (a checkpoint to ``--resume`` from); which
files, checked how and written in what order, is :mod:`scratchnst.cli.outputs`.

With ``--resume`` the checkpoint's settings hold. Options that only say how to
report and save (``--save-every``, ``--checkpoint-every``, ``--no-plot``,
``--quiet``, ``--force``, ``--explain``) apply, ``--iterations`` may continue the run
further, and any other setting given must equal the checkpoint's, or the command
refuses in one line naming the option: a setting silently ignored would be a lie.
"""

import argparse
import dataclasses
import math
import sys
import time

from scratchnst.errors import ScratchNSTError
from scratchnst.network import architecture
from scratchnst.transfer.levels import scale_sizes
from scratchnst.transfer.loop import load_inputs, stylize
from scratchnst.transfer.settings import POOLING, PRESERVE_COLOR, RESUMABLE, Settings, check_resume

# ------------------------------------------------------------------ argument types


def _number(text, kind, what, positive=False):
    try:
        value = kind(text)
    except ValueError:
        value = _whole_number(text, what) if kind is int else None
        if value is None:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{what} must be finite, got {text!r}")
    if value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError(f"{what} must be {'positive' if positive else 'non-negative'}, got {text!r}")
    return value


def _whole_number(text, what):
    """``1e3`` as 1000 for an integer option; None if ``text`` is no number at all."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}")
    return int(value)


def weight(text):
    return _number(text, float, "a weight")


def positive_float(text):
    return _number(text, float, "this value", positive=True)


def count(text):
    return _number(text, int, "a count")


def positive_int(text):
    return _number(text, int, "this value", positive=True)


def layer_list(text):
    return [s for s in text.replace(",", " ").split() if s]


def weight_list(text):
    return [weight(s) for s in text.replace(",", " ").split() if s]


def layer_weights(text):
    """``--style-layer-weights``: numbers, or ``auto`` (scratchnst.method.balance)."""
    return "auto" if text.strip() == "auto" else weight_list(text)


# ------------------------------------------------------------------ arguments

# Settings field -> its option. Every one defaults to None, "not given", so that a
# resumed run can tell a setting the user typed from a default (see the module's docstring).
SETTING_OPTIONS = {
    "size": "--size", "iterations": "--iterations", "optimizer": "--optimizer", "lr": "--lr",
    "history": "--history", "scales": "--scales", "init": "--init", "noise_ratio": "--noise-ratio",
    "seed": "--seed", "device": "--device", "dtype": "--dtype", "preset": "--preset",
    "alpha": "--content-weight", "beta": "--style-weight", "tv_weight": "--tv-weight",
    "content_layers": "--content-layers", "style_layers": "--style-layers",
    "style_layer_weights": "--style-layer-weights", "style_blend": "--style-blend",
    "style_scale": "--style-scale", "pooling": "--pooling", "preserve_color": "--preserve-color",
    "weights": "--weights", "normalized": "--normalized", "tile": "--tile",
}


def add_arguments(p):
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="CONTENT STYLE [STYLE ...]: files or bundled names (astronaut, starry_night, ...)")
    p.add_argument("-o", "--output", required=True, help="output image (.png keeps the settings in its metadata)")
    add_settings_arguments(p)


def add_settings_arguments(p, defaults=None, keep_checkpoint=True):
    """The options of a run; each setting's default (``defaults``, a :class:`Settings`) is applied by
    :func:`settings_from_args`, so that argparse leaves None for an option not given. ``keep_checkpoint``
    False (the demo): no periodic checkpoints unless asked, as :func:`run_stylize` keeps none."""
    d = defaults or Settings(content="", styles=[])
    p.set_defaults(settings_defaults=d)
    g = p.add_argument_group("size and optimisation")
    g.add_argument("--size", type=positive_int, help=f"long side of the output in pixels ({d.size})")
    g.add_argument("--iterations", type=count,
                   help=f"per scale ({d.iterations}); with --resume, more continue the run")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), help=f"({d.optimizer})")
    g.add_argument("--lr", type=positive_float, help=f"Adam's step size in pixel units ({d.lr})")
    g.add_argument("--history", type=positive_int, help=f"L-BFGS history size ({d.history})")
    g.add_argument("--scales", type=count,
                   help="coarse-to-fine levels, each twice the last (0: automatic) (1; 3 from noise or blend)")
    g.add_argument("--init", help="content, noise, blend (noise-ratio of noise in the content) or an image path")
    g.add_argument("--noise-ratio", type=weight, help=f"for --init blend ({d.noise_ratio})")
    g.add_argument("--seed", type=count, help=f"random seed; same seed, same image ({d.seed})")
    g.add_argument("--device", choices=("cpu", "gpu"), help="gpu needs CuPy (scratchnst[gpu])")
    g.add_argument("--dtype", choices=("float32", "float64"), help=f"({d.dtype})")
    g.add_argument("--tile", type=positive_int, metavar="N",
                   help="evaluate in tiles of N x N px plus a halo: the same result in the memory of one tile, "
                        "for images too large for memory (the error that refuses a run says which N fits)")
    g.add_argument("--threads", type=positive_int,
                   help="CPU threads (OMP_NUM_THREADS if set, else every CPU this process may use); "
                        "lower it to share the machine")
    g = p.add_argument_group("the loss")
    g.add_argument("--preset", help="normalisation of the costs: gatys, course, jcjohnson, pytorch-tutorial (gatys)")
    g.add_argument("--content-weight", "--alpha", dest="alpha", type=weight, help="alpha (the preset's default)")
    g.add_argument("--style-weight", "--beta", dest="beta", type=weight, help="beta (the preset's default)")
    g.add_argument("--tv-weight", type=weight, help=f"total variation weight ({d.tv_weight})")
    g.add_argument("--content-layers", type=layer_list, help="(relu4_2)")
    g.add_argument("--style-layers", type=layer_list, help="(relu1_1,...,relu5_1)")
    g.add_argument("--style-layer-weights", type=layer_weights,
                   help="one weight per style layer, or auto: equal style terms at the content (the preset's)")
    g.add_argument("--style-blend", type=weight_list, help="one weight per style image (equal)")
    g.add_argument("--style-scale", type=positive_float,
                   help=f"style image size relative to the output ({d.style_scale})")
    g.add_argument("--pooling", choices=POOLING, help="(max; avg from noise or blend)")
    g.add_argument("--preserve-color", choices=PRESERVE_COLOR,
                   help="keep the content's colours: luminance-only transfer or style histogram matching")
    g.add_argument("--weights", help="VGG19 weights file (the bundled weights/vgg19.h5)")
    g.add_argument("--normalized", action=argparse.BooleanOptionalAction,
                   help="Gatys' normalised VGG19, every channel's mean activation 1 (the preset's: gatys yes)")
    g = p.add_argument_group("output")
    g.add_argument("--save-every", type=count, default=0, help="write an intermediate image every N iterations")
    every, default = (25, "25; 0: only at the end of each scale") if keep_checkpoint else (
        0, "0: only if the run stops early")
    g.add_argument("--checkpoint-every", type=count, default=every,
                   help=f"save a checkpoint every N iterations ({default})")
    g.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue the run saved in this checkpoint: its settings hold; --iterations may be raised, "
                        "the output options apply, other settings must match it")
    g.add_argument("--no-plot", action="store_true", help="do not write the loss plot")
    g.add_argument("--explain", action="store_true",
                   help="print the constant each preset puts in front of every layer, and each style layer's "
                        "share of the style loss and of its gradient at the content image, then run")
    g.add_argument("--force", action="store_true", help="run even if the memory estimate says it will not fit")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no estimate")


def given_settings(args):
    """{Settings field: value} of the setting options given on the command line."""
    return {name: getattr(args, name) for name in SETTING_OPTIONS if getattr(args, name, None) is not None}


def settings_from_args(args, content, styles):
    return dataclasses.replace(args.settings_defaults, content=content, styles=list(styles),
                               **given_settings(args)).validate()


def resumed_settings(checkpoint, args):
    """The checkpoint's settings with what ``--resume`` may change; a conflicting option is refused by name."""
    stored = Settings.from_dict(checkpoint["settings"])
    given = given_settings(args)
    for name, value in given.items():
        if name not in RESUMABLE and value != getattr(stored, name):
            raise ScratchNSTError(
                f"{SETTING_OPTIONS[name]} {_shown(value)} differs from the checkpoint's "
                f"{_shown(getattr(stored, name))}: --resume continues that run as it was set up "
                "(only --iterations and the output options apply)"
            )
    settings = dataclasses.replace(stored, **{k: v for k, v in given.items() if k in RESUMABLE}).validate()
    return check_resume(checkpoint, settings)


def _shown(value):
    return ",".join(str(v) for v in value) if isinstance(value, list) else str(value)


# ------------------------------------------------------------------ checks before work


def preflight(settings, content_shape, style_shapes=(), force=False, quiet=False):
    """Print the memory and time estimate; refuse a run that would not fit in memory, saying what to lower."""
    from scratchnst.backend import device_memory_bytes
    from scratchnst.transfer import estimate

    H, W = content_shape
    itemsize = 4 if settings.dtype == "float32" else 8
    deepest = architecture.deepest(list(settings.content_layers) + list(settings.style_layers))
    # L-BFGS adds one (s, y) pair per iteration, so it never holds more pairs than a level's iterations.
    kept = estimate.optimizer_images(settings.optimizer, min(settings.history, settings.iterations))
    if settings.tile:
        run = estimate.tiled_memory_bytes(H, W, settings.tile, itemsize=itemsize, optimizer_images=kept,
                                          layers=list(settings.content_layers) + list(settings.style_layers),
                                          content_layers=settings.content_layers, device=settings.device)
    else:
        run = estimate.memory_bytes(H, W, itemsize=itemsize, deepest=deepest, optimizer_images=kept,
                                    device=settings.device)
    parts = {
        "run": run,
        "styles": estimate.style_memory_bytes(style_shapes, itemsize=itemsize, deepest=deepest,
                                              device=settings.device),
        "history": (kept - estimate.optimizer_images(settings.optimizer, 0)) * 3 * H * W * itemsize,
    }
    need = max(parts["run"], parts["styles"])
    have, where = (device_memory_bytes(), "GPU memory") if settings.device == "gpu" else (
        estimate.available_memory_bytes(), "available memory")
    if not quiet:
        line = f"scratchnst: {W}x{H} px, estimated peak memory {need / 2**30:.1f} GiB"
        if settings.device == "cpu":
            per_iter = estimate.seconds_per_iteration(H, W, estimate.matmul_gflops(), deepest)
            evals = 1.25 if settings.optimizer == "lbfgs" else 1.0  # L-BFGS: some extra line-search evaluations
            total = per_iter * evals * settings.iterations * _scale_cost(settings)
            line += f", ~{per_iter * evals:.1f} s/iteration, ~{_duration(total)} in all (rough)"
        print(line)
    if have is not None and need > 0.9 * have and not force:
        what = f"{W}x{H} px"
        if parts["styles"] > parts["run"]:
            h, w = max(style_shapes, key=lambda s: s[0] * s[1])
            what += f" with a {w}x{h} px style image"
        raise ScratchNSTError(
            f"{what} needs about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB of {where} is free; "
            f"try {_what_to_lower(settings, parts, 0.9 * have, 3 * H * W * itemsize, kept)} (or --force to try anyway)"
        )


def _what_to_lower(settings, parts, budget, image_bytes, kept):
    """The option that brings the estimate under ``budget``: what is over it decides.

    The style images when the run alone fits (``--style-scale``), else L-BFGS's history
    when its images outweigh the rest of the run, else tiles (the same image in the
    memory of a tile) when some tile fits, else the size (which shrinks all).
    """
    if parts["run"] <= budget:
        scale = float(f"{settings.style_scale * math.sqrt(budget / parts['styles']):.2g}")  # two digits
        return f"--style-scale {scale:g}"
    rest = parts["run"] - parts["history"]
    if parts["history"] > rest:
        fits = int((budget - rest) // (2 * image_bytes))  # each history entry keeps two images, s and y
        if fits >= 1:
            return f"--history {min(fits, settings.history - 1)}"
    tile = _tile_that_fits(settings, budget, kept)
    if tile:
        return f"--tile {tile} (the same image, computed in tiles)"
    smaller = int(settings.size * math.sqrt(budget / parts["run"]) / 16) * 16
    return f"--size {max(smaller, 64)}"


def _tile_that_fits(settings, budget, kept):
    """The largest ``--tile`` whose estimate fits ``budget`` at the final size, or None."""
    from scratchnst.transfer import estimate

    H, W = settings.size, settings.size  # the long side bounds both
    if settings.tile and settings.tile <= 16:
        return None
    try:
        tile = estimate.choose_tile(H, W, budget, itemsize=4 if settings.dtype == "float32" else 8,
                                    optimizer_images=kept,
                                    layers=list(settings.content_layers) + list(settings.style_layers),
                                    content_layers=settings.content_layers, device=settings.device)
    except ScratchNSTError:
        return None
    return tile if tile and (not settings.tile or tile < settings.tile) else None


def _scale_cost(settings):
    """Cost of all levels relative to the last: each coarser level is a quarter."""
    n = len(scale_sizes(settings.size, settings.scales))
    return sum(0.25**k for k in range(n))


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


# ------------------------------------------------------------------ the run


class Progress:
    """A tqdm bar over all iterations of all levels, showing the loss terms; on a terminal only."""

    def __init__(self, settings, quiet):
        from tqdm import tqdm

        levels = len(scale_sizes(settings.size, settings.scales))
        self.per_level = settings.iterations
        # disable=None: no bar when stderr is not a terminal, so an error in a log is its one line
        self.bar = tqdm(total=levels * settings.iterations, disable=True if quiet else None, unit="it",
                        dynamic_ncols=True, file=sys.stderr)

    def level(self, level, n_levels, shape):
        self.bar.set_description(f"scale {level + 1}/{n_levels} {shape[1]}x{shape[0]}")
        self.bar.n = level * self.per_level
        self.bar.refresh()

    def iteration(self, level, n_levels, it, terms):
        self.bar.n = level * self.per_level + it
        post = {"loss": f"{terms['total']:.3g}", "content": f"{terms['content']:.3g}", "style": f"{terms['style']:.3g}"}
        if terms["tv"]:
            post["tv"] = f"{terms['tv']:.3g}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(0)

    def close(self, failed=False):
        """Close the bar; after an error, clear it, so that the error stands on its own line."""
        self.bar.leave = not failed
        self.bar.close()


def run_stylize(settings, output, args, keep_checkpoint=True):
    """Shared by ``stylize`` and ``demo``: check everything, run, write image, plot and checkpoint.

    Returns the exit status (:mod:`scratchnst.cli.outputs`). ``keep_checkpoint`` False
    (the demo): a checkpoint only when the run stops early, removed once a run completes.
    """
    from scratchnst.cli.outputs import Outputs, input_paths
    from scratchnst.files.checkpoint import load_checkpoint

    if getattr(args, "threads", None):
        from scratchnst.network.fast.threads import set_num_threads

        set_num_threads(args.threads)  # how fast, not what: not a setting, so a resumed run may change it
    resume = None
    if args.resume:
        resume = load_checkpoint(args.resume)
        settings = resumed_settings(resume, args)
    outputs = Outputs(output, plot=not args.no_plot, snapshots=args.save_every > 0)
    outputs.check(input_paths(settings, args.resume), resume=args.resume)  # before any work
    content, styles = load_inputs(settings)
    preflight(settings, content.shape[:2], [s.shape[:2] for s in styles], force=args.force, quiet=args.quiet)
    if args.explain:
        explain(settings, content, styles)

    progress = Progress(settings, args.quiet)
    t0 = time.perf_counter()
    try:
        result = stylize(settings, inputs=(content, styles), resume=resume, on_iteration=progress.iteration,
                         on_level=progress.level, checkpoint_path=outputs.checkpoint,
                         checkpoint_every=args.checkpoint_every, on_snapshot=outputs.snapshot,
                         snapshot_every=args.save_every, on_result=outputs.write, keep_checkpoint=keep_checkpoint)
    except BaseException:
        progress.close(failed=True)
        raise
    progress.close()
    status, line = outputs.report(result, args.command, time.perf_counter() - t0)
    print(line, file=sys.stderr if status else sys.stdout)
    return status


def explain(settings, content, styles):
    """Print the effective constant per layer for the chosen preset and weights, then each style
    layer's share of the style loss and of its gradient's norm at the content image, at full size
    (:func:`scratchnst.method.balance.style_shares`)."""
    from scratchnst.method.balance import format_shares, style_shares
    from scratchnst.method.presets import explain as explain_preset
    from scratchnst.transfer.loop import build_objective, start_run

    shapes = architecture.activation_shapes(*content.shape[:2])  # every layer's (C, h, w) for an H x W input
    auto = settings.style_layer_weights == "auto"
    weights = None if auto else settings.style_layer_weights  # auto: the preset's, before equalising
    explain_preset(settings.preset, shapes, content_layers=settings.content_layers,
                   style_layers=settings.style_layers, style_layer_weights=weights,
                   alpha=settings.alpha, beta=settings.style_weight(), show=True)
    run = start_run(settings, (content, styles))
    objective = build_objective(settings, run.net, run.content_in, run.styles_in)
    network = "normalised" if settings.normalized_network() else "original"
    print(f"style layers at the content image, {network} VGG19{', auto weights' if auto else ''}:")
    print(format_shares(style_shares(objective, run.net.preprocess(run.content_in))))


def run(args):
    if args.resume:
        if args.images:
            raise ScratchNSTError("with --resume, give no images: the checkpoint holds every setting")
        return run_stylize(None, args.output, args)
    if len(args.images) < 2:
        raise ScratchNSTError("give a content image and at least one style image (or --resume CHECKPOINT)")
    settings = settings_from_args(args, args.images[0], args.images[1:])
    return run_stylize(settings, args.output, args)
