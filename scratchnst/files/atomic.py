"""Writing a file so that it is either complete or absent.

Every file scratchnst writes (images, figures, checkpoints, weights) goes through
:func:`atomic_path`: the writer fills a temporary file in the destination's
directory, which is flushed to disk and renamed over the destination with
:func:`os.replace` (atomic on one file system) only when the writer finished
without error. A failure, Ctrl-C or a kill therefore never leaves a truncated
file, and an earlier file at the destination survives intact.
"""

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from scratchnst.errors import ScratchNSTError


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    The temporary file is created empty with mode 0o666 minus the umask (as a plain
    ``open`` would; ``tempfile.mkstemp``'s 0o600 would stick to the result). Errors
    of the file system become a one-line :class:`ScratchNSTError` naming ``path``.
    """
    path = Path(path)
    directory = path.parent
    if path.is_dir():
        raise ScratchNSTError(f"cannot write {path}: it is a directory")
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    except FileNotFoundError:
        raise ScratchNSTError(f"cannot write {path}: directory {directory} does not exist") from None
    except OSError as e:
        raise ScratchNSTError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        yield tmp
        # Without fsync a crash just after the rename can leave an empty file on
        # some file systems: the rename may reach the disk before the data.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        raise ScratchNSTError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(path):
    """Raise a one-line error now, before minutes of work, if ``path`` cannot be written."""
    path = Path(path)
    directory = path.parent
    if not directory.is_dir():
        raise ScratchNSTError(f"cannot write {path}: directory {directory} does not exist")
    if path.is_dir():
        raise ScratchNSTError(f"cannot write {path}: it is a directory")
    if not os.access(directory, os.W_OK):
        raise ScratchNSTError(f"cannot write {path}: directory {directory} is not writable")
    return path
