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
        raise error(f"{what} {path} is not valid YAML: {exc}") from None
