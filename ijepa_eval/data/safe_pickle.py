"""Read CIFAR's pickled batches without a general unpickler.

A pickle can name any importable callable and call it, so loading a user's file with
``pickle.load`` can run arbitrary code. The CIFAR batches (pickled by Python 2's cPickle) need
exactly three globals to rebuild their numpy arrays; this unpickler resolves those and refuses
every other global before anything is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ijepa_eval.errors import DataError

try:  # numpy >= 2 keeps the implementation in numpy._core; old pickles still say numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: only numpy array reconstruction is allowed"
            ) from None


def load_array_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` allowing only plain containers and numpy arrays of plain dtypes.

    Python 2 strings are decoded as latin-1 (what numpy needs for the raw array bytes), the
    same choice torchvision makes. Anything else is a `DataError` naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # a malformed pickle can raise nearly anything; none of it is ours
        raise DataError(f"{path} is not a safe CIFAR batch file: {exc}") from None
    _refuse_object_arrays(obj, path)
    return obj


def _refuse_object_arrays(obj: Any, path: Path) -> None:
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise DataError(f"{path} holds an object array; CIFAR batches hold plain numbers")
    if isinstance(obj, dict):
        for value in obj.values():
            _refuse_object_arrays(value, path)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _refuse_object_arrays(value, path)
