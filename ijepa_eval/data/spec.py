"""Dataset specs on the command line: ``NAME:ROOT``, or a bare ``ROOT`` for an image folder.

Examples: ``clevr_count:/data/CLEVR_v1.0``, ``hf:owner/name``, ``cifar10:~/data``,
``/data/imagenet`` (= ``imagefolder:/data/imagenet``). Only a registered adapter name counts as
``NAME``; a prefix that looks like a name but is not one is an error with a suggestion, so a typo
is never taken for a path.
"""

from __future__ import annotations

import re

from ijepa_eval.data.load import DATASETS
from ijepa_eval.errors import DataError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]+")


def parse_spec(spec: str) -> tuple[str, str]:
    """``(adapter name, root)`` for a spec string."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in DATASETS:
        if not rest:
            raise DataError(f"dataset spec {spec!r} has no root after '{prefix}:'")
        return prefix, rest
    if sep and _NAME.fullmatch(prefix) and not rest.startswith(("\\", "//")):
        DATASETS.get(prefix)  # raises "unknown dataset …; did you mean …?"
    if not spec:
        raise DataError("empty dataset spec; use NAME:ROOT or a folder")
    return "imagefolder", spec


def parse_options(pairs: list[str]) -> dict[str, str]:
    """``["image_column=img", ...]`` → ``{"image_column": "img", ...}``."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise DataError(f"option {pair!r} is not KEY=VALUE")
        options[key.strip().replace("-", "_")] = value
    return options
