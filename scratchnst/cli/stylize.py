"""``scratchnst stylize``: the command artists use.

    scratchnst stylize photo.jpg starry_night -o out.png --size 512
    scratchnst stylize --resume out.ckpt.npz -o out.png      # continue a stopped run

Writes ``out.png`` (settings and seed in its PNG metadata), ``out.losses.png``
(the loss curve) and ``out.ckpt.npz`` (a checkpoint to ``--resume`` from).
"""

import argparse
import json
import math
import sys
import time

from scratchnst import __version__
from scratchnst.errors import ScratchNSTError
from scratchnst.files.weights import weights_path
from scratchnst.network import architecture
from scratchnst.transfer.levels import scale_sizes
from scratchnst.transfer.loop import load_inputs, output_path_for, stylize
from scratchnst.transfer.settings import PRESERVE_COLOR, Settings

# ------------------------------------------------------------------ argument types


def _number(text, kind, what, positive=False):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{what} must be finite, got {text!r}")
    if value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError(f"{what} must be {'positive' if positive else 'non-negative'}, got {text!r}")
    return value


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


# ------------------------------------------------------------------ arguments


def add_arguments(p):
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="CONTENT STYLE [STYLE ...]: files or bundled names (astronaut, starry_night, ...)")
    p.add_argument("-o", "--output", required=True, help="output image (.png keeps the settings in its metadata)")
    add_settings_arguments(p)


def add_settings_arguments(p, defaults=None):
    d = defaults or Settings(content="", styles=[])
    g = p.add_argument_group("size and optimisation")
    g.add_argument("--size", type=positive_int, default=d.size, help=f"long side of the output in pixels ({d.size})")
    g.add_argument("--iterations", type=count, default=d.iterations, help=f"per scale ({d.iterations})")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), default=d.optimizer, help=f"({d.optimizer})")
    g.add_argument("--lr", type=positive_float, default=d.lr, help=f"Adam's step size in pixel units ({d.lr})")
    g.add_argument("--history", type=positive_int, default=d.history, help=f"L-BFGS history size ({d.history})")
    g.add_argument("--scales", type=count, default=d.scales,
                   help="coarse-to-fine levels, each twice the last (1: single scale; 0: automatic)")
    g.add_argument("--init", default=d.init,
                   help="content, noise, blend (noise-ratio of noise in the content) or an image path")
    g.add_argument("--noise-ratio", type=weight, default=d.noise_ratio, help=f"for --init blend ({d.noise_ratio})")
    g.add_argument("--seed", type=count, default=d.seed, help=f"random seed; same seed, same image ({d.seed})")
    g.add_argument("--device", choices=("cpu", "gpu"), default=d.device, help="gpu needs CuPy (scratchnst[gpu])")
    g.add_argument("--dtype", choices=("float32", "float64"), default=d.dtype, help=f"({d.dtype})")
    g = p.add_argument_group("the loss")
    g.add_argument("--preset", default=d.preset,
                   help="normalisation of the costs: gatys, course, jcjohnson, pytorch-tutorial (gatys)")
    g.add_argument("--content-weight", "--alpha", dest="alpha", type=weight, default=None,
                   help="alpha (the preset's default)")
    g.add_argument("--style-weight", "--beta", dest="beta", type=weight, default=None,
                   help="beta (the preset's default)")
    g.add_argument("--tv-weight", type=weight, default=d.tv_weight, help=f"total variation weight ({d.tv_weight})")
    g.add_argument("--content-layers", type=layer_list, default=d.content_layers, help="(relu4_2)")
    g.add_argument("--style-layers", type=layer_list, default=d.style_layers, help="(relu1_1,...,relu5_1)")
    g.add_argument("--style-layer-weights", type=weight_list, default=None,
                   help="one weight per style layer (the preset's)")
    g.add_argument("--style-blend", type=weight_list, default=None, help="one weight per style image (equal)")
    g.add_argument("--style-scale", type=positive_float, default=d.style_scale,
                   help="style image size relative to the output (1.0)")
    g.add_argument("--pooling", choices=("max", "avg"), default=d.pooling, help=f"({d.pooling})")
    g.add_argument("--preserve-color", choices=PRESERVE_COLOR, default=d.preserve_color,
                   help="keep the content's colours: luminance-only transfer or style histogram matching")
    g.add_argument("--weights", default=None, help="VGG19 weights file (the bundled weights/vgg19.h5)")
    g = p.add_argument_group("output")
    g.add_argument("--save-every", type=count, default=0, help="write an intermediate image every N iterations")
    g.add_argument("--checkpoint-every", type=count, default=25,
                   help="save a checkpoint every N iterations (25; 0: only at the end of each scale)")
    g.add_argument("--resume", default=None, help="continue the run saved in this checkpoint")
    g.add_argument("--no-plot", action="store_true", help="do not write the loss plot")
    g.add_argument("--explain", action="store_true",
                   help="print the constant each preset puts in front of every layer, then run")
    g.add_argument("--force", action="store_true", help="run even if the memory estimate says it will not fit")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def settings_from_args(args, content, styles):
    return Settings(
        content=content, styles=list(styles), style_blend=args.style_blend, size=args.size,
        style_scale=args.style_scale, iterations=args.iterations, optimizer=args.optimizer, lr=args.lr,
        history=args.history, preset=args.preset, alpha=args.alpha, beta=args.beta, tv_weight=args.tv_weight,
        content_layers=args.content_layers, style_layers=args.style_layers,
        style_layer_weights=args.style_layer_weights, pooling=args.pooling, init=args.init,
        noise_ratio=args.noise_ratio, preserve_color=args.preserve_color, scales=args.scales, seed=args.seed,
        device=args.device, dtype=args.dtype, weights=args.weights,
    ).validate()


# ------------------------------------------------------------------ checks before work


def preflight(settings, content_shape, force=False, quiet=False):
    """Print the memory and time estimate; refuse a run that would not fit in memory."""
    from scratchnst.backend import device_memory_bytes
    from scratchnst.transfer import estimate

    H, W = content_shape
    itemsize = 4 if settings.dtype == "float32" else 8
    deepest = architecture.deepest(list(settings.content_layers) + list(settings.style_layers))
    images_kept = 2 * settings.history + 6 if settings.optimizer == "lbfgs" else 6
    need = estimate.memory_bytes(H, W, itemsize=itemsize, deepest=deepest, optimizer_images=images_kept,
                                 device=settings.device)
    if settings.device == "gpu":
        have = device_memory_bytes()
        where = "GPU memory"
    else:
        have = estimate.available_memory_bytes()
        where = "available memory"
    if not quiet:
        line = f"scratchnst: {W}x{H} px, estimated peak memory {need / 2**30:.1f} GiB"
        if settings.device == "cpu":
            per_iter = estimate.seconds_per_iteration(H, W, estimate.matmul_gflops(), deepest)
            evals = 1.25 if settings.optimizer == "lbfgs" else 1.0  # L-BFGS: some extra line-search evaluations
            total = per_iter * evals * settings.iterations * _scale_cost(settings)
            line += f", ~{per_iter * evals:.1f} s/iteration, ~{_duration(total)} in all (rough)"
        print(line, file=sys.stderr)
    if have is not None and need > 0.9 * have and not force:
        smaller = int(settings.size * math.sqrt(0.9 * have / need) / 16) * 16
        raise ScratchNSTError(
            f"{W}x{H} px needs about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB of {where} is free; "
            f"try --size {max(smaller, 64)} (or --force to try anyway)"
        )


def _scale_cost(settings):
    """Cost of all levels relative to the last: each coarser level is a quarter."""
    n = len(scale_sizes(settings.size, settings.scales))
    return sum(0.25**k for k in range(n))


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


# ------------------------------------------------------------------ the run


class Progress:
    """A tqdm bar over all iterations of all levels, showing the loss terms."""

    def __init__(self, settings, quiet):
        from tqdm import tqdm

        levels = len(scale_sizes(settings.size, settings.scales))
        self.per_level = settings.iterations
        self.bar = tqdm(total=levels * settings.iterations, disable=quiet, unit="it", dynamic_ncols=True,
                        file=sys.stderr)

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

    def close(self):
        self.bar.close()


def run_stylize(settings, output, args, resume=None):
    """Shared by ``stylize`` and ``demo``: run, then write image, plot and checkpoint."""
    from scratchnst.files import images
    from scratchnst.files.checkpoint import load_checkpoint

    output = images.check_image_output(output)
    ckpt = output_path_for(output, ".ckpt.npz")
    plot = output_path_for(output, ".losses.png")
    if args.resume:
        resume = load_checkpoint(args.resume)
        settings = Settings.from_dict(resume["settings"]).validate()
    # Bad files fail now, before the estimate and the progress bar.
    weights_path(settings.weights)
    content, styles = load_inputs(settings)
    if args.explain:
        explain(settings, content.shape[:2])
    preflight(settings, content.shape[:2], force=args.force, quiet=args.quiet)

    def snapshot(level, it, rgb):
        images.save_image(output_path_for(output, f".scale{level + 1}.iter{it:04d}.png"), rgb)

    progress = Progress(settings, args.quiet)
    t0 = time.perf_counter()
    try:
        result = stylize(settings, inputs=(content, styles), resume=resume, on_iteration=progress.iteration,
                         on_level=progress.level, checkpoint_path=ckpt, checkpoint_every=args.checkpoint_every,
                         on_snapshot=snapshot, snapshot_every=args.save_every)
    finally:
        progress.close()
    elapsed = time.perf_counter() - t0
    metadata = {
        "Software": f"scratchnst {__version__}",
        "scratchnst:settings": json.dumps(result.settings.to_dict(), sort_keys=True),
        "scratchnst:seed": str(result.settings.seed),
        "scratchnst:iterations": str(result.iterations),
    }
    images.save_image(output, result.rgb, metadata=metadata)
    wrote = [f"image {output}"]
    if not args.no_plot and result.history["total"]:
        from scratchnst.files.plot import plot_losses

        plot_losses(result.history, plot)
        wrote.append(f"loss plot {plot}")
    wrote.append(f"checkpoint {ckpt}")
    if result.interrupted:
        print(f"scratchnst: interrupted; wrote {', '.join(wrote)}. Continue with: "
              f"scratchnst stylize --resume {ckpt} -o {output}", file=sys.stderr)
        return 130
    final = result.history["total"][-1] if result.history["total"] else float("nan")
    print(f"scratchnst: done in {_duration(elapsed)}, final loss {final:.4g}; wrote {', '.join(wrote)}")
    return 0


def explain(settings, shape):
    """Print the effective constant per layer for the chosen preset and weights."""
    from scratchnst.method.presets import explain as explain_preset

    shapes = architecture.activation_shapes(*shape)  # every layer's (C, h, w) for an H x W input
    explain_preset(settings.preset, shapes, content_layers=settings.content_layers,
                   style_layers=settings.style_layers, style_layer_weights=settings.style_layer_weights,
                   alpha=settings.alpha, beta=settings.beta, show=True)


def run(args):
    if args.resume:
        if args.images:
            raise ScratchNSTError("with --resume, give no images: the checkpoint holds every setting")
        return run_stylize(None, args.output, args)
    if len(args.images) < 2:
        raise ScratchNSTError("give a content image and at least one style image (or --resume CHECKPOINT)")
    settings = settings_from_args(args, args.images[0], args.images[1:])
    return run_stylize(settings, args.output, args)
