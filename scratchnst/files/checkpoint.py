"""Checkpoints of a stylization run: the image, the optimizer state, the settings.

A checkpoint is one ``.npz`` file (NumPy's zip of arrays; read back with
``allow_pickle=False``, so loading one never runs code). Arrays go in as arrays;
everything else (settings, counters, the RNG state, loss history) goes into one
JSON document stored under the key ``"meta"``. Nested state such as L-BFGS's
history, a list of arrays, is flattened to keys like ``optim/s/3`` with a JSON
placeholder ``{"__array__": "optim/s/3"}`` where the array was.

Writes are atomic (:mod:`scratchnst.files.atomic`), so an interrupted save leaves the
previous checkpoint intact.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from scratchnst.backend import to_numpy
from scratchnst.errors import ScratchNSTError
from scratchnst.files.atomic import atomic_path

VERSION = 1


def _flatten(value, prefix, arrays):
    """Replace arrays in a nested dict/list structure by placeholders; collect them."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0:
        arrays[prefix] = to_numpy(value)
        return {"__array__": prefix}
    if isinstance(value, dict):
        return {str(k): _flatten(v, f"{prefix}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_flatten(v, f"{prefix}/{i}", arrays) for i, v in enumerate(value)]
    if hasattr(value, "item"):  # 0-d array or NumPy scalar
        return value.item()
    return value


def _unflatten(value, arrays):
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        return {k: _unflatten(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_unflatten(v, arrays) for v in value]
    return value


def save_checkpoint(path, state):
    """Write ``state`` (a nested dict of arrays, numbers, strings, lists) atomically."""
    path = Path(path)
    arrays = {}
    meta = _flatten(state, "state", arrays)
    doc = json.dumps({"version": VERSION, "state": meta})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(doc), **arrays)  # a file object: np.savez would add .npz to a name
    return path


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`; one-line error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ScratchNSTError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        doc = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise ScratchNSTError(f"{path} is not a readable scratchnst checkpoint ({e})") from None
    if doc.get("version") != VERSION:
        raise ScratchNSTError(f"{path}: checkpoint version {doc.get('version')} is not supported")
    return _unflatten(doc["state"], arrays)
