"""The ``scratchnst`` command: :mod:`.main` dispatches, one module per subcommand does the work.

``outputs.py`` names, checks and writes a stylization's files and sets its exit status.
"""

from scratchnst.cli.main import main

__all__ = ["main"]
