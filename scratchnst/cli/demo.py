"""``scratchnst demo``: the bundled photo in the style of the bundled painting.

No arguments needed. The defaults are chosen to finish in under three minutes on
a 2-core laptop CPU; every ``stylize`` option can still be given. A first run should
leave a picture and its loss plot, nothing more: the demo writes a checkpoint only
when it is stopped early (Ctrl-C, SIGTERM), and removes it once a run completes.

``--init noise`` and ``--init blend`` run twice the iterations (200 a level, on the three
levels those starts default to), unless ``--iterations`` is given: that is what reaches the
content start's loss with an image that reads as the photo (benchmarks/README.md).
"""

from scratchnst.cli.stylize import add_settings_arguments, run_stylize, settings_from_args
from scratchnst.transfer.settings import NOISE_INITS, Settings

CONTENT = "astronaut"
STYLE = "starry_night"
DEMO = Settings(content=CONTENT, styles=[STYLE], size=256, iterations=100)


def add_arguments(p):
    p.add_argument("-o", "--output", default="scratchnst-demo.png", help="output image (scratchnst-demo.png)")
    p.add_argument("--content", default=CONTENT, help=f"content image ({CONTENT})")
    p.add_argument("--style", default=STYLE, help=f"style image ({STYLE})")
    add_settings_arguments(p, defaults=DEMO, keep_checkpoint=False)


def run(args):
    if args.iterations is None and args.init in NOISE_INITS and not args.resume:
        args.iterations = 2 * DEMO.iterations
    settings = None if args.resume else settings_from_args(args, args.content, [args.style])
    return run_stylize(settings, args.output, args, keep_checkpoint=False)
