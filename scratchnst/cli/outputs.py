"""The files a ``stylize`` or ``demo`` run writes: named, checked before the run, written image first.

    outputs = Outputs("out.png", plot=True, snapshots=False)
    outputs.check(input_paths(settings, resume))     # before any work: one-line errors
    result = stylize(..., checkpoint_path=outputs.checkpoint, on_snapshot=outputs.snapshot,
                     on_result=outputs.write)         # the image first, then the run's checkpoint
    status, line = outputs.report(result, "stylize", seconds)

Beside ``out.png`` (the image) a run writes ``out.losses.png`` (the loss plot),
``out.ckpt.npz`` (the checkpoint to ``--resume`` from) and, with ``--save-every``,
snapshots such as ``out.scale1.iter0010.png``. Every one of them is checked before
the first iteration: its folder must take a new file, no directory may stand in its
way, and none may be one of the run's inputs (through links too), so a run can never
overwrite its own photo or checkpoint of origin; the checkpoint a run resumes from is
the one exception, as ``--resume out.ckpt.npz -o out.png`` continues it in place.

Exit statuses (:meth:`Outputs.report`): 0, everything written; 130 (Ctrl-C) and 143
(SIGTERM), stopped early with the image and a checkpoint written; 1, the image was
written but the checkpoint or the loss plot could not be, or a write failed mid-run;
2, no image (the image itself could not be written; and every refusal before the run).
"""

import json
import os
import re
import signal
from pathlib import Path

from scratchnst import __version__
from scratchnst.errors import ScratchNSTError
from scratchnst.files import images
from scratchnst.files.atomic import Terminated, WriteError, check_writable, remove_stale_temporaries
from scratchnst.transfer.loop import output_path_for
from scratchnst.transfer.settings import INITS

SNAPSHOT = r"\.scale\d+\.iter\d+\.png"  # a snapshot's name, after the output's stem
EXIT_SIGNAL = {KeyboardInterrupt: 128 + signal.SIGINT, Terminated: 128 + signal.SIGTERM}


def input_paths(settings, resume=None):
    """[(what, path)] of every file a run reads: images, ``--init`` image, checkpoint, weights."""
    from scratchnst.files.weights import weights_path

    paths = [("content image", images.resolve_image_path(settings.content))]
    paths += [("style image", images.resolve_image_path(s)) for s in settings.styles]
    if settings.init not in INITS:
        paths.append(("--init image", images.resolve_image_path(settings.init)))
    if resume is not None:
        paths.append(("--resume checkpoint", Path(resume)))
    paths.append(("weights file", weights_path(settings.weights)))
    return paths


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file: equal once links are followed, or hard links of one file."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def metadata_of(result):
    """The image's metadata: every setting and the seed, so the same settings give the same image."""
    return {
        "Software": f"scratchnst {__version__}",
        "scratchnst:settings": json.dumps(result.settings.to_dict(), sort_keys=True),
        "scratchnst:seed": str(result.settings.seed),
        "scratchnst:iterations": str(result.iterations),
    }


class Outputs:
    """The files of one run and what became of them (``wrote``, ``failed``: one phrase each)."""

    def __init__(self, image, *, plot=True, snapshots=False):
        self.image = Path(image)
        self.checkpoint = output_path_for(self.image, ".ckpt.npz")
        self.plot = output_path_for(self.image, ".losses.png") if plot else None
        self.snapshots = snapshots
        self.wrote, self.failed = [], []

    def _names(self):
        """A regular expression of every name this run may write in the image's folder."""
        stem = re.escape(self.image.stem)
        return rf"{re.escape(self.image.name)}|{stem}(\.ckpt\.npz|\.losses\.png|{SNAPSHOT})"

    def check(self, inputs, resume=None):
        """Refuse, before any work, outputs that cannot be written or that are inputs (one line each).

        ``inputs``: :func:`input_paths`. ``resume``: the checkpoint resumed from, which
        the run may overwrite with its new checkpoint. Temporaries that killed runs left
        for these names are removed first.
        """
        images.check_image_output(self.image)
        remove_stale_temporaries(self.image.parent, self._names())
        for path in (self.checkpoint, self.plot):
            if path is not None:
                check_writable(path)
        snapshot = re.compile(re.escape(self.image.stem) + SNAPSHOT)
        if self.snapshots:
            for entry in self.image.parent.iterdir():
                if snapshot.fullmatch(entry.name) and entry.is_dir():
                    raise ScratchNSTError(f"cannot write snapshot {entry}: it is a directory")
        for what, path in inputs:
            for out in (self.image, self.checkpoint, self.plot):
                if out is None or (out == self.checkpoint and resume is not None and same_file(path, resume)):
                    continue
                if same_file(out, path):
                    raise ScratchNSTError(f"the output {out} would overwrite the {what} {path}; choose another -o")
            if self.snapshots and snapshot.fullmatch(path.name) and same_file(path.parent, self.image.parent):
                raise ScratchNSTError(f"a snapshot would overwrite the {what} {path}; choose another -o")

    def snapshot(self, level, iteration, rgb):
        """``--save-every``'s image of ``iteration`` at ``level`` (0: the coarsest)."""
        images.save_image(output_path_for(self.image, f".scale{level + 1}.iter{iteration:04d}.png"), rgb)

    def write(self, result):
        """Write the image, then the loss plot; a failure is noted, not raised, so the checkpoint still comes."""
        self._attempt("image", self.image, images.save_image, self.image, result.rgb, metadata=metadata_of(result))
        if self.plot is not None and result.history["total"]:
            from scratchnst.files.plot import plot_losses

            self._attempt("loss plot", self.plot, plot_losses, result.history, self.plot)

    def _attempt(self, what, path, write, *args, **kwargs):
        try:
            write(*args, **kwargs)
        except WriteError as e:
            self.failed.append(str(e))
        else:
            self.wrote.append(f"{what} {path}")

    def report(self, result, command, seconds):
        """(exit status, one line) on what the run did and wrote; see the module's docstring for the statuses."""
        stopped = result.stopped_by
        if isinstance(stopped, WriteError):
            self.failed.insert(0, f"stopped at iteration {result.iterations}: {stopped}")
        if result.checkpoint_error:
            if result.checkpoint_error != str(stopped):
                self.failed.append(result.checkpoint_error)
        elif self.checkpoint.is_file():
            self.wrote.append(f"checkpoint {self.checkpoint}")
        wrote = f"wrote {', '.join(self.wrote)}" if self.wrote else "wrote nothing"
        resume = f"scratchnst {command} --resume {self.checkpoint} -o {self.image}"
        if self.failed:
            image_written = f"image {self.image}" in self.wrote
            return (1 if image_written else 2), f"scratchnst: error: {'; '.join(self.failed)}; {wrote}"
        if result.interrupted:
            status = EXIT_SIGNAL[Terminated if isinstance(stopped, Terminated) else KeyboardInterrupt]
            go_on = f". Continue with: {resume}" if self.checkpoint.is_file() else ""
            return status, f"scratchnst: interrupted; {wrote}{go_on}"
        minutes = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
        return 0, f"scratchnst: done in {minutes}, final loss {result.loss:.4g}; {wrote}"
