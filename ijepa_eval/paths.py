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


def preset_names(folder: str) -> list[str]:
    """The YAML presets bundled in ``folder`` (``tasks/pretrain``, ``tasks/finetune``)."""
    try:
        found = resource_path(folder)
    except FileNotFoundError:
        return []
    return sorted(p.stem for p in found.glob("*.yaml"))


def find_preset(source: str | os.PathLike[str], folder: str, what: str) -> Path:
    """A YAML file, or the name of a preset bundled in ``folder``; else one line naming the
    presets there (``what``: how the error calls it, e.g. "fine-tuning preset or file")."""
    import difflib

    from ijepa_eval.errors import UserError

    path = Path(source).expanduser()
    if path.is_file():
        return path
    name = str(source)
    if path.suffix not in (".yaml", ".yml") and "/" not in name:
        try:
            return resource_path(f"{folder}/{name}.yaml")
        except FileNotFoundError:
            pass
    known = preset_names(folder)
    hint = difflib.get_close_matches(name, known, n=3)
    close = f"; did you mean {' or '.join(hint)}?" if hint else ""
    raise UserError(f"no {what} named {name!r}{close} (presets: {', '.join(known)})")
