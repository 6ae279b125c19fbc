"""Package exports resolved on first use.

The CLI imports every subpackage on start; resolving their public names lazily keeps torch, timm
and pandas out of `ijepa-eval --help` and out of commands that never touch a model.

A package may export a function named like one of its modules (`ijepa_eval.features.extract`
is both). Importing that module makes Python bind the module to the package's attribute, which
would hide the function; the package's class refuses that one binding, so the exported name
always means the function, as an eager ``from .extract import extract`` in ``__init__`` would.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping, Sequence
from importlib import import_module
from typing import Any


class _LazyPackage(types.ModuleType):
    _lazy_homes: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        homes = self.__dict__.get("_lazy_homes", {})
        if name not in homes:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(import_module(homes[name]), name)
        super().__setattr__(name, value)  # later lookups skip this method
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        shadows_export = name in self.__dict__.get("_lazy_homes", {}) and isinstance(
            value, types.ModuleType
        )
        if not shadows_export:
            super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*self.__dict__, *self._lazy_homes})


def lazy_exports(package: str, homes: Mapping[str, Sequence[str]]) -> list[str]:
    """Make `package`'s names (`homes` maps module -> names) import on first use; its __all__."""
    module = sys.modules[package]
    module.__class__ = _LazyPackage
    module.__dict__["_lazy_homes"] = {name: home for home, names in homes.items() for name in names}
    return sorted(module.__dict__["_lazy_homes"])
