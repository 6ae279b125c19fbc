"""Reading weight files without ever running code from them.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers; a pickle that asks
for anything else is refused before that object is created. Every failure becomes one
`CheckpointError` line that names the file and says what to do.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors

from ijepa_eval.atomic import atomic_path
from ijepa_eval.errors import CheckpointError


def write_weights(path: str | os.PathLike[str], payload: Any) -> None:
    """``torch.save`` atomically, and byte-for-byte the same for the same tensors.

    Saving to a file object fixes the zip archive's inner name (saving to a path names it after
    the temporary file), so equal weights hash equal and keep their feature-cache entries.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


def read_weights(path: Path) -> Any:
    """Load a ``.pth``/``.pt``/``.pth.tar``/``.bin`` or ``.safetensors`` file onto the CPU."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, expected a weights file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes); download it again")
    if path.suffix == ".safetensors":
        try:
            return load_safetensors(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from exc
    return _torch_load(path)


def _torch_load(path: Path) -> Any:
    mmap = zipfile.is_zipfile(path)  # the modern format maps lazily; legacy pickles cannot
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported global" in text:
            found = re.search(r"GLOBAL (\S+)", text)
            asks = f" (it asks for {found.group(1)})" if found else ""
            raise CheckpointError(
                f"refusing to load {path}: it pickles Python objects other than tensors and plain "
                f"containers{asks}, and unpickling those could run code. If you trust the file, "
                "re-save just its state dicts: torch.save({'target_encoder': sd}, 'clean.pth')"
            ) from exc
        raise CheckpointError(f"{path} is corrupt or not a PyTorch checkpoint ({text})") from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({str(exc).splitlines()[0][:200]}); "
            "download or copy it again"
        ) from exc
