"""What to extract: which blocks, which tokens, stored how.

Parsed from the CLI's short forms (``--layers last4``, ``--tokens grid:4x4``) into one frozen
value that is part of the cache key.
"""

from __future__ import annotations

from dataclasses import dataclass

from ijepa_eval.errors import UserError

STORE_DTYPES = ("float16", "float32", "bfloat16")


@dataclass(frozen=True)
class FeatureSpec:
    """``layers``: block indices (0-based, ascending); ``tokens``: ``none``, ``all`` or a grid."""

    layers: tuple[int, ...]
    tokens: str = "none"
    store_dtype: str = "float16"

    @property
    def token_grid(self) -> tuple[int, int] | None:
        if not self.tokens.startswith("grid:"):
            return None
        h, w = self.tokens.removeprefix("grid:").split("x")
        return int(h), int(w)

    def covers(self, other: FeatureSpec) -> bool:
        """Whether features stored for ``self`` contain everything ``other`` asks for."""
        return (
            set(other.layers) <= set(self.layers)
            and other.store_dtype == self.store_dtype
            and other.tokens in ("none", self.tokens)
        )


def parse_layers(text: str | int | list[int] | tuple[int, ...], depth: int) -> tuple[int, ...]:
    """``last``, ``last4``, ``all``, or indices like ``0,5,11`` (negative counts from the end)."""
    if isinstance(text, int):
        picks = [text]
    elif isinstance(text, list | tuple):
        picks = list(text)
    elif text == "last":
        picks = [depth - 1]
    elif text.startswith("last") and text[4:].isdigit():
        picks = list(range(depth - int(text[4:]), depth))
    elif text == "all":
        picks = list(range(depth))
    else:
        try:
            picks = [int(x) for x in text.split(",")]
        except ValueError:
            raise UserError(
                f"--layers {text!r}: use last, last4, all, or block indices like 0,5,11"
            ) from None
    resolved = sorted({p + depth if p < 0 else p for p in picks})
    bad = [p for p in picks if not -depth <= p < depth]
    if bad or not resolved or resolved[0] < 0:
        raise UserError(
            f"--layers {text!r}: block index out of range for an encoder of depth {depth} "
            f"(valid: 0..{depth - 1}, or -{depth}..-1)"
        )
    return tuple(resolved)


def parse_tokens(text: str, grid: tuple[int, int]) -> str:
    """``none``, ``all``, or ``grid:HxW`` where H and W divide the patch grid."""
    if text in ("none", "all"):
        return text
    if text.startswith("grid:"):
        try:
            h, w = (int(x) for x in text.removeprefix("grid:").lower().split("x"))
        except ValueError:
            h = w = 0
        if h > 0 and w > 0:
            if grid[0] % h or grid[1] % w:
                raise UserError(
                    f"--tokens {text}: a {h}x{w} grid does not divide the {grid[0]}x{grid[1]} "
                    f"patch grid; choose divisors of {grid[0]} and {grid[1]}"
                )
            return f"grid:{h}x{w}"
    raise UserError(f"--tokens {text!r}: use none, all, or grid:HxW (e.g. grid:4x4)")


def parse_store_dtype(text: str) -> str:
    aliases = {"fp16": "float16", "fp32": "float32", "bf16": "bfloat16", "half": "float16"}
    name = aliases.get(text, text)
    if name not in STORE_DTYPES:
        raise UserError(f"storage dtype {text!r}: use float16, float32 or bfloat16")
    return name
