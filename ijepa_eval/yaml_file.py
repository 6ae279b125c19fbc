"""Reading the project's YAML files (task specs, configs, registries, references, tolerances)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ijepa_eval.errors import UserError


def read_yaml(
    path: str | os.PathLike[str], what: str, *, error: type[UserError] = UserError
) -> Any:
    """The parsed document; an unreadable file or bad YAML is one `error` naming `what` and path.

    Only `yaml.safe_load`: a file never constructs Python objects. Callers check the shape.
    """
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {_one_line(exc)}") from None


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's several-line report (with a drawing of the spot) as one line: what, where."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem is None:
        return " ".join(str(exc).split())
    where = exc.problem_mark
    at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
    started = exc.context_mark
    context = (
        f" ({exc.context} that starts at line {started.line + 1}, column {started.column + 1})"
        if exc.context and started is not None
        else ""
    )
    return f"{exc.problem}{at}{context}"
