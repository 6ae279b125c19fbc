"""Reading a dataset's JSON annotation file, and showing what it holds in one-line errors.

Shared by the adapters whose labels live in JSON (CLEVR's scenes, iNaturalist's COCO-style
files): every way the file can be unreadable is a `DataError` that names it and says what was
found, never a traceback from the parser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ijepa_eval.errors import DataError


def read_json(path: Path, what: str) -> Any:
    """The parsed document; an unreadable, empty or non-JSON file is a `DataError` saying it is
    not the ``what`` it should be (``"CLEVR scenes file"``)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not data.strip():
        raise DataError(f"{path} is not a {what}: it is empty")
    try:
        return json.loads(data)  # bytes: UTF-8/16/32 detected as JSON allows
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise DataError(f"{path} is not a {what}: not valid JSON ({exc})") from None


def shown(value: Any, limit: int = 60) -> str:
    """A value as it stands in the JSON file (``"7"``, ``null``, ``true``), cut short."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kind(value: Any) -> str:
    """How JSON would name a value's type, for messages."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    kinds.update({int: "a number", float: "a number", type(None): "null"})
    return kinds.get(type(value), type(value).__name__)


def is_index(value: Any) -> bool:
    """A whole number >= 0 as JSON writes one (``7``; not ``"7"``, ``7.0`` or ``true``)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
