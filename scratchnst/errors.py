"""The one exception type users see.

Every error caused by bad input (a missing file, a wrong shape, an unknown layer
name, CuPy asked for without a GPU) is raised as :class:`ScratchNSTError` with a
message that fits on one line and says what to do. The command-line tool prints
such messages as ``scratchnst: error: ...`` and exits with status 2; anything
else is a bug and keeps its traceback.
"""


class ScratchNSTError(Exception):
    """Bad input or an unusable environment, described in one line."""


def one_line(e):
    """An exception's message squeezed onto one line (some Pillow and pickle messages wrap)."""
    return " ".join(str(e).split()) or type(e).__name__
