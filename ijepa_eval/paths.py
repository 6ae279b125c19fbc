"""Where ijepa-eval keeps its cache and finds its bundled specs."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The root of everything ijepa-eval caches (downloads, hashes, features).

    ``IJEPA_EVAL_CACHE`` overrides it; otherwise ``$XDG_CACHE_HOME/ijepa-eval`` or
    ``~/.cache/ijepa-eval``.
    """
    env = os.environ.get("IJEPA_EVAL_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ijepa-eval"


def resource_path(relative: str) -> Path:
    """A bundled spec file or folder (``checkpoints/registry.yaml``, ``tasks``).

    The wheel ships them under ``ijepa_eval/_resources``; a source checkout (editable install)
    has them at the repository root.
    """
    for base in (_PACKAGE_DIR / "_resources", _PACKAGE_DIR.parent):
        candidate = base / relative
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"bundled resource {relative!r} is missing from this installation")
