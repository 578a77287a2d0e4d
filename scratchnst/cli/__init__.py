"""The ``scratchnst`` command: :mod:`.main` dispatches, one module per subcommand does the work."""

from scratchnst.cli.main import main

__all__ = ["main"]
