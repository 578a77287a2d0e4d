"""Build the tutorial notebooks from their sources and run them, keeping the outputs.

Each tutorial is written as a plain Python file in ``tutorials/src/`` in the
"percent" format: cells start with ``# %%`` (code) or ``# %% [markdown]``
(Markdown, every line prefixed with ``# ``). This script turns each into
``tutorials/NN_name.ipynb`` and executes it top to bottom, so the committed
notebooks carry the outputs of a full run of the current code:

    python tutorials/build.py                 # all, at full size
    python tutorials/build.py 03 04           # only these
    SCRATCHNST_TUTORIAL_SIZE=small python tutorials/build.py   # quick check

The notebooks read ``SCRATCHNST_TUTORIAL_SIZE`` (``full``, the default, or
``small``) in their first code cell, so CI can run them fast
(tests/test_tutorials.py).
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"


def parse_percent(text):
    """Split a percent-format script into notebook cells."""
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind is not None and body.strip():
            if kind == "markdown":
                body = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.splitlines())
                cells.append(nbformat.v4.new_markdown_cell(body))
            else:
                cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build(src, execute=True, timeout=1800):
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_percent(src.read_text())
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    out = HERE / (src.stem + ".ipynb")
    if execute:
        t = time.perf_counter()
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}})
        client.execute()
        print(f"{out.name}: ran in {time.perf_counter() - t:.0f} s")
    nbformat.write(nb, out)
    return out


def main(argv):
    sources = sorted(SRC.glob("*.py"))
    if argv:
        sources = [s for s in sources if any(s.stem.startswith(a) for a in argv)]
    for src in sources:
        build(src)


if __name__ == "__main__":
    main(sys.argv[1:])
