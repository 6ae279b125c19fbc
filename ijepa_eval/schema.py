"""Settings as frozen dataclasses, built from YAML mappings and ``KEY=VALUE`` assignments.

One validator serves task specs, probe parameters and pretraining configs: every key is checked
against the dataclass's fields (a typo is an error with a did-you-mean), every value against the
field's type hint (a wrong type names the key and what it expects) and against the range a field
declared with `bounded` allows (``data.batch_size must be ≥ 1, not -4``); nested dataclasses are
built recursively. Nothing is constructed from a mapping that has not passed these checks, so a
bad setting stops a run before any work. One parser reads ``KEY=VALUE`` pairs for ``-p``, ``-o``
and pretraining overrides: dotted keys nest (``optimization.lr=1e-3``) and values are YAML.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ijepa_eval.errors import UserError

UnknownKeyMessage = Callable[[str, list[str]], str]
_RANGE = "range"  # the metadata key of a bounded field
_ASCENDING = "ascending"  # ... and of a [low, high] pair that must not run backwards


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a number: ``ge``/``gt`` below, ``le``/``lt`` above (any may be None)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def admits(self, x: float) -> bool:
        """In range and finite (NaN compares false with everything, so it is refused here)."""
        return math.isfinite(x) and not (
            (self.ge is not None and x < self.ge)
            or (self.gt is not None and x <= self.gt)
            or (self.le is not None and x > self.le)
            or (self.lt is not None and x >= self.lt)
        )

    def __str__(self) -> str:
        """``≥ 1``, ``> 0``, ``≤ 1``, or ``in (0, 1]`` when bounded on both sides."""
        low = (self.ge, "≥", "[") if self.ge is not None else (self.gt, ">", "(")
        high = (self.le, "≤", "]") if self.le is not None else (self.lt, "<", ")")
        if low[0] is not None and high[0] is not None:
            return f"in {low[2]}{low[0]:g}, {high[0]:g}{high[2]}"
        bound, sign, _ = low if low[0] is not None else high
        return f"{sign} {bound:g}"


def bounded(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    ascending: bool = False,
) -> Any:
    """A dataclass field whose number (or each number of a list) `build` keeps in a range.

    ``batch_size: int = bounded(128, ge=1)``; None, where the type allows it, is always admitted.
    ``ascending``: a ``[low, high]`` list whose items must not decrease.
    """
    return dataclasses.field(
        default=default, metadata={_RANGE: Range(ge, gt, le, lt), _ASCENDING: ascending}
    )


def did_you_mean(key: str, known: Iterable[str]) -> list[str]:
    """Up to three known names close to ``key`` (the shared spelling of every suggestion)."""
    return difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)


def unknown_key(what: str) -> UnknownKeyMessage:
    """The usual wording: ``unknown <what> 'epoch'; did you mean 'epochs'?``."""

    def message(key: str, known: list[str]) -> str:
        head = f"unknown {what} '{key}'"
        close = did_you_mean(key, known)
        if close:
            return f"{head}; did you mean {' or '.join(map(repr, close))}?"
        return f"{head}; known: {', '.join(sorted(known)) or 'none'}"

    return message


def build(
    cls: type,
    raw: Any,
    *,
    prefix: str = "",
    unknown: UnknownKeyMessage | None = None,
    error: type[UserError] = UserError,
    known: list[str] | None = None,
) -> Any:
    """Instantiate dataclass ``cls`` from the mapping ``raw``, checking every key and value.

    ``prefix`` is prepended to key names in messages (``optimization.``); ``known`` lists every
    dotted key for suggestions (default: all keys of ``cls``). Errors are raised as ``error``.
    """
    known = all_keys(cls) if known is None else known
    unknown = unknown or unknown_key("key")
    where = prefix.rstrip(".") or "the settings"
    if not isinstance(raw, Mapping):
        raise error(f"{where} must be a mapping, not {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    required = [f.name for f in dataclasses.fields(cls) if f.init and _required(f)]
    missing = [name for name in required if name not in raw]
    if missing:
        raise error(f"missing field '{prefix}{missing[0]}'")
    bounds = {f.name: f.metadata for f in dataclasses.fields(cls) if _RANGE in f.metadata}
    values = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise error(unknown(dotted, known))
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            values[key] = build(
                kind, value or {}, prefix=f"{dotted}.", unknown=unknown, error=error, known=known
            )
        else:
            values[key] = coerce(value, kind, dotted, error)
            if key in bounds:
                _check_range(values[key], bounds[key][_RANGE], dotted, error)
                if bounds[key][_ASCENDING]:
                    _check_ascending(values[key], dotted, error)
    return cls(**values)


def _check_range(value: Any, allowed: Range, key: str, error: type[UserError] = UserError) -> None:
    """``error`` naming ``key`` and the range, unless ``value`` (each item of a list) is in it."""
    items = value if isinstance(value, tuple) else (value,)
    numbers = [v for v in items if isinstance(v, int | float) and not isinstance(v, bool)]
    if all(allowed.admits(v) for v in numbers):
        return
    each = " (each)" if isinstance(value, tuple) else ""
    shown = list(value) if isinstance(value, tuple) else value
    raise error(f"{key} must be {allowed}{each}, not {shown!r}")


def _check_ascending(value: Any, key: str, error: type[UserError]) -> None:
    if isinstance(value, tuple) and any(a > b for a, b in zip(value, value[1:], strict=False)):
        raise error(f"{key} must be [low, high] with low ≤ high, not {list(value)}")


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def coerce(value: Any, kind: Any, key: str, error: type[UserError] = UserError) -> Any:
    """``value`` as the type hint ``kind``, or ``error`` saying what ``key`` must be."""
    if kind is Any:
        return value
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return coerce(value, options[0], key, error)
        for option in options:
            try:
                return coerce(value, option, key, error)
            except UserError:
                continue
        raise error(f"{key} must be {' or '.join(map(_name, options))}, not {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise error(f"{key} must be one of {', '.join(map(repr, args))}, not {value!r}")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            items = list(value) if isinstance(value, list | tuple) else [value]
            return tuple(_item(v, args[0], key, _name(kind), error) for v in items)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise error(f"{key} must be {_name(kind)}, not {value!r}")
        return tuple(_item(v, a, key, _name(kind), error) for v, a in zip(value, args, strict=True))
    if origin is dict or kind is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise error(f"{key} must be a mapping, not {value!r}")
    if dataclasses.is_dataclass(kind):
        return value if isinstance(value, kind) else build(kind, value, prefix=f"{key}.")
    if kind is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)  # YAML reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    elif kind is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise error(f"{key} must be {_name(kind)}, not {value!r}")


def _item(value: Any, kind: Any, key: str, expected: str, error: type[UserError]) -> Any:
    try:
        return coerce(value, kind, key, error)
    except UserError:
        raise error(f"{key} must be {expected}, not {value!r}") from None


_PLURAL = {float: "numbers", int: "integers", str: "strings", bool: "true/false values"}


def _name(kind: Any) -> str:
    """How messages spell a type: ``int``, ``a list of numbers``, ``a list of 2 numbers``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_PLURAL.get(args[0], _name(args[0]))}"
        if len(set(args)) == 1:
            return f"a list of {len(args)} {_PLURAL.get(args[0], _name(args[0]))}"
        return f"a list of {len(args)} values"
    return getattr(kind, "__name__", str(kind))


def all_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of dataclass ``cls`` and its nested dataclasses (for suggestions)."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        keys.append(f"{prefix}{f.name}")
        if dataclasses.is_dataclass(hints[f.name]):
            keys += all_keys(hints[f.name], f"{prefix}{f.name}.")
    return keys


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_assignments(pairs: Iterable[str], flag: str, *, typed: bool = True) -> dict[str, Any]:
    """``["optimization.lr=1e-3", "seed=1"]`` → ``{"optimization": {"lr": 0.001}, "seed": 1}``.

    Values are read as YAML (``[0.1, 1]``, ``5``, ``true``; text that is not valid YAML stays
    text), or kept as text with ``typed=False`` (dataset options: a revision ``1.0`` is not a
    number); dashes in keys become underscores; a dotted key nests. ``flag`` names the option
    in messages (``-p``, ``override``).
    """
    import yaml

    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or any(not part for part in key.split(".")):
            raise UserError(f"{flag} {pair!r} is not key=value (e.g. lr=1e-3)")
        try:
            value = yaml.safe_load(text) if typed else text
        except yaml.YAMLError:
            value = text
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"{flag} {pair!r} sets a key inside a value")
        node[leaf] = value
    return nested
