"""``--data`` on the command line, one parser for every command: ``NAME:ROOT`` or a path.

Examples: ``clevr_count:/data/CLEVR_v1.0``, ``hf:owner/name``, ``cifar10:~/data``,
``/data/imagenet``. Only a registered adapter name counts as ``NAME``; a prefix that looks like a
name but is not one is an error with a suggestion, so a typo is never taken for a path. A bare
path is read by the adapter the caller fixes (a CLEVR task reads CLEVR), else by the format
found on disk (`detect_format`: a folder holding ``cifar-10-batches-py`` is ``cifar10``), else,
when nothing is there yet, as an image folder, whose loader then says what is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

from ijepa_eval.data.detect import detect_format
from ijepa_eval.data.load import DATASETS
from ijepa_eval.errors import DataError
from ijepa_eval.schema import parse_assignments

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]+")


def parse_spec(spec: str, *, adapter: str | None = None, who: str = "this task") -> tuple[str, str]:
    """``(adapter name, root)`` for a ``--data`` string; ``adapter`` fixes the format."""
    if not spec:
        raise DataError("empty dataset spec; use NAME:ROOT or a folder")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in DATASETS:
        if not rest:
            raise DataError(f"dataset spec {spec!r} has no root after '{prefix}:'")
        if adapter is not None and prefix != adapter:
            raise DataError(f"{who} reads {adapter} data, not {prefix}: pass the folder")
        return prefix, rest
    if sep and _NAME.fullmatch(prefix) and not rest.startswith(("\\", "//")):
        DATASETS.get(prefix)  # raises "unknown dataset …; did you mean …?"
    if adapter is not None:
        return adapter, spec
    if Path(spec).expanduser().exists():
        return detect_format(spec), spec
    return "imagefolder", spec


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``-o`` adapter options: ``["image_column=img", ...]`` → ``{"image_column": "img", ...}``."""
    return parse_assignments(pairs, "option", typed=False)
