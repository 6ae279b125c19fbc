"""Reading weight files without ever running code from them.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers; a pickle that asks
for anything else is refused before that object is created. Every failure becomes one
`CheckpointError` line that names the file and says what to do.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import struct
import warnings
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


def read_weights(path: Path, *, mmap: bool = True) -> Any:
    """Load a ``.pth``/``.pt``/``.pth.tar``/``.bin`` or ``.safetensors`` file onto the CPU.

    ``mmap=False`` reads every tensor into memory (for state that is updated in place and whose
    file is replaced while it is held, such as a training checkpoint being resumed).
    """
    if not path.exists():
        raise CheckpointError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, expected a weights file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes); download it again")
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        try:
            return load_safetensors(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from exc
    return _torch_load(path, mmap=mmap and zipfile.is_zipfile(path))


def _torch_load(path: Path, *, mmap: bool) -> Any:
    """``torch.load(weights_only=True)``; a failure is told apart as code, damage or not ours.

    The modern zip format maps lazily (``mmap``); legacy pickles cannot. A malformed file can
    make the unpickler raise nearly anything, so every failure is diagnosed from the file itself.
    """
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as exc:  # each failure becomes one CheckpointError below
            raise _diagnose(path, exc) from exc  # (and torch's warnings on the way are moot)
    for w in said:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return loaded


def _diagnose(path: Path, exc: Exception) -> CheckpointError:
    """Why ``torch.load`` refused ``path``: a pickle asking for code, damage, or not a checkpoint.

    Only the file's structure is read (`pickletools.genops` parses opcodes, it calls nothing), so
    the refusal to run code is claimed only for a complete pickle that names the refused global;
    random bytes and a truncated pickle are called what they are.
    """
    text = str(exc)
    found = re.search(r"GLOBAL (\S+)", text)
    wanted = found.group(1).rstrip(".,:") if found else None
    zipped = zipfile.is_zipfile(path)
    pickles = [] if zipped else _leading_pickles(path)
    if wanted and (zipped or any(wanted in names for names, _ in pickles)):
        return CheckpointError(
            f"refusing to load {path}: it pickles Python objects other than tensors and plain "
            f"containers (it asks for {wanted}), and unpickling those could run code. If you "
            "trust the file, re-save just its state dicts: "
            "torch.save({'target_encoder': sd}, 'clean.pth')"
        )
    with open(path, "rb") as f:
        head = f.read(4)
    if not zipped and not head.startswith(b"PK") and not _starts_a_pickle(head):
        return CheckpointError(
            f"{path} is not a readable checkpoint: it is not a PyTorch zip archive, a pickle or "
            "a safetensors file; check that the path names the weights file"
        )
    if pickles and not pickles[0][1]:  # a whole pickle, but torch.save's files open with a magic
        return CheckpointError(
            f"{path} is a pickle but not one torch.save wrote ({_reason(exc)}); load it where it "
            "was made and re-save its state dicts with torch.save"
        )
    return CheckpointError(
        f"{path} is truncated or corrupt ({_reason(exc)}); download or copy it again"
    )


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file under another name: an 8-byte header length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= path.stat().st_size - 8


def _starts_a_pickle(head: bytes) -> bool:
    """Protocol 2+ pickles (every ``torch.save`` since 2016) start with PROTO and the protocol."""
    return len(head) >= 2 and head[0] == pickle.PROTO[0] and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL


# The number a legacy (non-zip) torch.save file pickles first.
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def _leading_pickles(path: Path, limit: int = 8) -> list[tuple[set[str], bool]]:
    """The complete pickles ``path`` starts with: the globals each names, and whether it is
    torch's magic number. Stops at the first cut or malformed one.

    A legacy ``torch.save`` file is several pickles in a row (magic number, protocol, system
    info, the object, storage keys) followed by raw tensor bytes.
    """
    found: list[tuple[set[str], bool]] = []
    with open(path, "rb") as f:
        for _ in range(limit):
            if not _starts_a_pickle(f.read(2)):
                break
            f.seek(-2, os.SEEK_CUR)
            names: set[str] = set()
            strings: list[str] = []
            magic = False
            try:
                for op, arg, _pos in pickletools.genops(f):
                    if op.name == "GLOBAL":
                        names.add(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL":
                        names.add(".".join(strings[-2:]))
                    elif isinstance(arg, str):
                        strings.append(arg)
                    magic |= arg == _TORCH_MAGIC and op.name == "LONG1"
            except Exception:  # genops raises ValueError and more on a cut or malformed pickle
                break
            found.append((names, magic))
    return found


def _reason(exc: Exception) -> str:
    """The informative line of a loader error (torch's weights-only ones open with boilerplate)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if "WeightsUnpickler error" in line:
            return lines[i + 1][:200]
    return (lines[0] if lines else type(exc).__name__)[:200]
