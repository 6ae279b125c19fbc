"""Where the user keeps datasets: configured once, used by every task.

``IJEPA_EVAL_DATA_<KEY>`` (e.g. ``IJEPA_EVAL_DATA_IMAGENET=/datasets/imagenet``) wins; otherwise
the ``data:`` mapping of the user config file (``$IJEPA_EVAL_CONFIG``, else
``$XDG_CONFIG_HOME/ijepa-eval/config.yaml``, else ``~/.config/ijepa-eval/config.yaml``)::

    data:
      imagenet: /datasets/imagenet
      imagenet_1pct_file: /datasets/imagenet/1percent.txt
      clevr: /datasets/CLEVR_v1.0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ijepa_eval.errors import UserError
from ijepa_eval.yaml_file import read_yaml


def config_path() -> Path:
    if os.environ.get("IJEPA_EVAL_CONFIG"):
        return Path(os.environ["IJEPA_EVAL_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "ijepa-eval" / "config.yaml"


def _config() -> dict[str, Any]:
    path = config_path()
    if not path.is_file():
        return {}
    data = read_yaml(path, "config file") or {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping (e.g. 'data: {{imagenet: …}}')")
    return data


def env_name(key: str) -> str:
    return f"IJEPA_EVAL_DATA_{key.upper()}"


def data_root(key: str) -> str | None:
    """The configured location for ``key``, or None."""
    if os.environ.get(env_name(key)):
        return os.environ[env_name(key)]
    value = (_config().get("data") or {}).get(key)
    return None if value is None else str(value)


def require_data_root(key: str, what: str) -> str:
    """The configured location for ``key``; an error that says how to configure it if unset."""
    root = data_root(key)
    if root is None:
        raise UserError(
            f"no location configured for {what}: pass --data, or set {env_name(key)}=/path, "
            f"or add 'data: {{{key}: /path}}' to {config_path()}"
        )
    return root
