"""Where the user keeps datasets: configured once, used by every task.

``IJEPA_EVAL_DATA_<KEY>`` (e.g. ``IJEPA_EVAL_DATA_IMAGENET=/datasets/imagenet``) wins; otherwise
the ``data:`` mapping of the user config file (``$IJEPA_EVAL_CONFIG``, else
``$XDG_CONFIG_HOME/ijepa-eval/config.yaml``, else ``~/.config/ijepa-eval/config.yaml``)::

    data:
      imagenet: /datasets/imagenet
      imagenet_1pct_file: /datasets/imagenet/1percent.txt
      clevr: /datasets/CLEVR_v1.0

The file is checked whole when a location is looked up: ``data`` must map names to paths, and a
top-level key other than ``data`` is an error with a did-you-mean, not silently ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ijepa_eval.errors import UserError
from ijepa_eval.schema import build, unknown_key
from ijepa_eval.yaml_file import read_yaml


@dataclass(frozen=True)
class UserConfig:
    """The user config file's sections; a key it does not know is an error, not ignored."""

    data: dict[str, str | None] = field(default_factory=dict)  # dataset key → its location


def config_path() -> Path:
    if os.environ.get("IJEPA_EVAL_CONFIG"):
        return Path(os.environ["IJEPA_EVAL_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "ijepa-eval" / "config.yaml"


def load_user_config(path: Path | None = None) -> UserConfig:
    """The user config file, checked whole: every error names the file and the key."""
    path = config_path() if path is None else path
    if not path.is_file():
        return UserConfig()
    raw = read_yaml(path, "config file")
    if raw is None:
        return UserConfig()
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must hold a mapping (e.g. 'data: {{imagenet: …}}')")
    if raw.get("data", {}) is None:  # an empty ``data:`` section
        raw = {**raw, "data": {}}
    try:
        config = build(UserConfig, raw, unknown=unknown_key("key"))
    except UserError as exc:
        raise UserError(f"config file {path}: {exc}") from None
    for key, value in config.data.items():
        if not isinstance(key, str):
            raise UserError(f"config file {path}: data keys are dataset names, not {key!r}")
        if not (value is None or isinstance(value, str)):
            raise UserError(f"config file {path}: data.{key} must be a path, not {value!r}")
    return config


def env_name(key: str) -> str:
    return f"IJEPA_EVAL_DATA_{key.upper()}"


def data_root(key: str) -> str | None:
    """The configured location for ``key``, or None."""
    if os.environ.get(env_name(key)):
        return os.environ[env_name(key)]
    return load_user_config().data.get(key)


def require_data_root(key: str, what: str) -> str:
    """The configured location for ``key``; an error that says how to configure it if unset."""
    root = data_root(key)
    if root is None:
        raise UserError(
            f"no location configured for {what}: pass --data, or set {env_name(key)}=/path, "
            f"or add 'data: {{{key}: /path}}' to {config_path()}"
        )
    return root
