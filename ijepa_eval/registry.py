"""One small name → factory registry for every pluggable kind (datasets, tasks): lazy entries,
collisions are errors, typos get a suggestion.

An entry is the object itself or a ``"module:attribute"`` string imported on first use, so
listing adapters never imports h5py or `datasets`.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any


class Registry:
    """Names of one kind of thing (``"dataset"``) mapped to factories."""

    def __init__(self, kind: str, error: type[Exception]) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, Any] = {}

    def register(self, name: str, entry: Any) -> None:
        """Add ``name``; a name that is already taken is an error, never a silent override."""
        if name in self._entries:
            raise self.error(f"{self.kind} {name!r} is already registered; pick another name")
        self._entries[name] = entry

    def get(self, name: str) -> Any:
        """The factory for ``name``; an unknown name suggests the closest known ones."""
        if name not in self._entries:
            close = self.suggest(name)
            if close:
                hint = f"did you mean {' or '.join(map(repr, close))}?"
            else:
                hint = f"known {self.kind}s: {', '.join(sorted(self._entries))}"
            raise self.error(f"unknown {self.kind} {name!r}; {hint}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def suggest(self, name: str, cutoff: float = 0.6) -> list[str]:
        """Up to three known names close to ``name``, closest first (none: an empty list)."""
        return difflib.get_close_matches(name, self._entries, n=3, cutoff=cutoff)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, Any]]:
        """(name, factory) pairs in the order they were registered."""
        return [(name, self.get(name)) for name in self._entries]

    def __contains__(self, name: object) -> bool:
        return name in self._entries
