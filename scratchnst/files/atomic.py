"""Writing a file so that it is either complete or absent, even when the user stops the run.

Every file scratchnst writes (images, figures, checkpoints, weights) goes through
:func:`atomic_path`: the writer fills a temporary file in the destination's
directory, which is flushed to disk and renamed over the destination with
:func:`os.replace` (atomic on one file system) only when the writer finished
without error. A failure, Ctrl-C or a kill therefore never leaves a truncated
file, and an earlier file at the destination survives intact.

Signals. Ctrl-C (SIGINT) and a polite kill (SIGTERM) are how a user stops a long
run, and the run answers by saving its image and a checkpoint, so a signal must not
cut that save short. :func:`signals_held` holds both while files are written and
delivers a held one once the writing is done; a second signal during the same
writing is delivered at once (the user insists), which abandons the write in
progress: its temporary goes, the previous file stays. :func:`sigterm_interrupts`
makes SIGTERM raise :class:`Terminated`, a KeyboardInterrupt, so everything that
saves on Ctrl-C saves on SIGTERM too. Only a kill that cannot be caught (SIGKILL,
a power cut) can leave a temporary behind; :func:`remove_stale_temporaries` clears
such leftovers of our own naming away before the next run writes there.
"""

import os
import re
import secrets
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from scratchnst.errors import ScratchNSTError

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
NAME_MAX = 255  # bytes in one file name, on every common file system

# ".NAME.XXXXXXXX.tmp": what atomic_path creates beside NAME, and all that remove_stale_temporaries removes.
TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")


class WriteError(ScratchNSTError):
    """A file could not be written: a missing folder, no permission, a full disk, a directory in the way."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where :func:`sigterm_interrupts` is in force.

    A KeyboardInterrupt, so a run saves its image and checkpoint on it as on Ctrl-C;
    the command line tells the two apart only for the exit status (143, not 130).
    """


# ------------------------------------------------------------------ writing


def _temporary_beside(path):
    """Create (empty) and return a fresh temporary ``.NAME.XXXXXXXX.tmp`` in ``path``'s directory.

    Mode 0o666 minus the umask, as a plain ``open`` would make it (``tempfile.mkstemp``'s
    0o600 would stick to the result).
    """
    directory = path.parent
    if not directory.is_dir():
        raise WriteError(f"cannot write {path}: directory {directory} does not exist")
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a directory")
    name = path.name
    while len(os.fsencode(f".{name}.12345678.tmp")) > NAME_MAX and len(name) > 1:
        name = name[:-1]  # a destination name near the limit: a shorter temporary, still recognisably its
    tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
    return tmp


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    Errors of the file system become a one-line :class:`WriteError` naming ``path``.
    Any exception (Ctrl-C included) removes the temporary and leaves ``path`` as it was.
    """
    path = Path(path)
    tmp = _temporary_beside(path)
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
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(path):
    """Raise a one-line :class:`WriteError` now, before minutes of work, if ``path`` cannot be written.

    A temporary is created beside ``path`` and removed again: ``os.access`` alone says
    yes to root everywhere, ``/proc`` and read-only mounts included.
    """
    path = Path(path)
    _temporary_beside(path).unlink()
    return path


def remove_stale_temporaries(directory, names):
    """Remove what killed writes left in ``directory``: temporaries of files whose name ``names`` matches.

    Only our own naming (:data:`TEMPORARY`, regular files) is touched. ``names``: a regular
    expression that must match the whole destination name (``out\\.png``). Returns the
    paths removed.
    """
    names = re.compile(names)
    removed = []
    for entry in Path(directory).iterdir():
        m = TEMPORARY.fullmatch(entry.name)
        if m and names.fullmatch(m["name"]) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


# ------------------------------------------------------------------ signals


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()  # the only thread Python delivers signals to


def _raise_terminated(signum, frame):
    raise Terminated


def interruption(signum):
    """The exception that signal ``signum`` raises in a run: :class:`Terminated` or KeyboardInterrupt."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) instead of killing at once."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM while the block writes files; deliver a held one when it ends.

    Yields the list of held signal numbers. A caller that has dealt with them (it marked
    its result as interrupted, say) empties the list before the block ends, and nothing
    is delivered. A second signal during the block is delivered at once, through the
    handler in force before the block (KeyboardInterrupt for SIGINT), so two Ctrl-Cs
    always get out; the write it interrupts is abandoned whole (:func:`atomic_path`).
    A signal that was being ignored stays ignored. Outside the main thread, where
    Python handles no signals, nothing is held.
    """
    held = []
    if not _in_main_thread():
        yield held
        return
    previous = {}

    def restore():
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        previous.clear()

    def hold(signum, frame):
        if not held:
            held.append(signum)
            return
        handler = previous.get(signum, signal.SIG_DFL)
        restore()
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)

    for signum in HELD_SIGNALS:
        handler = signal.getsignal(signum)
        if handler != signal.SIG_IGN:
            previous[signum] = signal.SIG_DFL if handler is None else handler
            signal.signal(signum, hold)
    try:
        yield held
    finally:
        restore()
    if held:
        signal.raise_signal(held[0])  # through the handler just restored
