"""Command-line options and helpers that several commands share, defined once.

Typer reads options from each command's signature, so commands list these aliases; their names,
help texts and parsing live here only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from ijepa_eval.errors import UserError

console = Console()

CkptOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional on 3.10
    typer.Option(
        "--ckpt",
        help="Checkpoint: native .pth.tar/.pth, HF model dir, Hub id, timm:<name>.<tag>, or a "
        "registry name (`ijepa-eval models`); default: the bundled ijepa_tiny_synth.",
    ),
]
WhichOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--which",
        help="target_encoder (default where present, as in the paper) or encoder (context).",
    ),
]
DataOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--data",
        help="NAME:ROOT or a folder (format detected); default: the configured location.",
    ),
]
ResultsOpt = Annotated[
    Path, typer.Option("--results", help="Where run records go (<results>/runs/<task>/).")
]
CacheOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--cache-dir", help="Feature cache (default ~/.cache/ijepa-eval/features)."),
]
IncludeOpt = Annotated[
    Optional[list[Path]],  # noqa: UP045
    typer.Option("--include-path", help="Extra folder of task YAMLs (repeatable)."),
]
BatchOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--batch-size", help="Images per forward during extraction."),
]
WorkersOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--workers", help="DataLoader workers during extraction."),
]
DeviceOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--device", help="Probe device (default: cuda if available, else cpu)."),
]
SkipBadOpt = Annotated[
    bool, typer.Option("--skip-bad-images", help="Leave out unreadable images (counted).")
]
ProbeParamOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--probe-param",
        "-p",
        help="Override a probe parameter, KEY=VALUE (YAML value), e.g. -p epochs=5 -p lrs=[0.1].",
    ),
]
HeadsOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--heads", help="Attention heads, for widths outside the I-JEPA size table."),
]
ImgSizeOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--img-size", help="Evaluation resolution (position embedding is resized)."),
]
CropPctOpt = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option("--crop-pct", help="Centre-crop fraction (default 0.875: 256 → 224)."),
]
ResizeOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--resize", help="crop (resize + centre crop, default) or resize (VISSL plain)."),
]
MeanOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--mean", help="Normalisation mean, e.g. 0.485,0.456,0.406 (default ImageNet)."),
]
StdOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--std", help="Normalisation std, e.g. 0.229,0.224,0.225 (default ImageNet)."),
]
SourceNormOpt = Annotated[
    bool,
    typer.Option("--source-norm", help="Use the normalisation the source declares (e.g. 0.5)."),
]


def resolve_ckpt(ckpt: str | None, *, quiet: bool = False) -> str:
    """``--ckpt``, or the registry's default checkpoint (said aloud)."""
    if ckpt is not None:
        return ckpt
    from ijepa_eval.models.registry import default_checkpoint

    name = default_checkpoint()
    if not quiet:
        console.print(f"[dim]no --ckpt: using the default checkpoint {name}[/]", highlight=False)
    return name


def load_encoder_loudly(
    ckpt: str | None, which: str | None = None, *, quiet: bool = False, **options: Any
):
    """`load_encoder`, with what the source said printed as warnings (none if ``quiet``)."""
    from ijepa_eval.models import load_encoder

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoder = load_encoder(resolve_ckpt(ckpt, quiet=quiet), which, **options)
    for w in [] if quiet else caught:
        console.print(f"[yellow]warning:[/] {w.message}", highlight=False)
    return encoder


def parse_probe_params(pairs: list[str] | None) -> dict[str, Any]:
    """``-p KEY=VALUE`` pairs, each value read as YAML (``[0.1, 1]``, ``5``, ``true``)."""
    import yaml

    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--probe-param {pair!r} is not KEY=VALUE")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(
                f"--probe-param {pair!r}: the value is not valid YAML ({exc})"
            ) from None
    return params


def _triple(text: str | None, name: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"--{name} takes three comma-separated numbers, e.g. 0.485,0.456,0.406")
    return values


def encoder_options(
    heads: int | None,
    img_size: int | None,
    crop_pct: float | None,
    resize: str | None,
    mean: str | None,
    std: str | None,
    source_norm: bool,
) -> dict[str, Any]:
    """The shared loading options as keyword arguments of `load_encoder` (after ``which``)."""
    if resize is not None and resize not in ("crop", "resize"):
        raise UserError(f"--resize must be 'crop' or 'resize', not {resize!r}")
    if crop_pct is not None and not 0 < crop_pct <= 1:
        raise UserError(f"--crop-pct must be in (0, 1], not {crop_pct}")
    preprocess = {
        "crop_pct": crop_pct,
        "resize": resize,
        "mean": _triple(mean, "mean"),
        "std": _triple(std, "std"),
    }
    return {
        "heads": heads,
        "img_size": img_size,
        "preprocess": preprocess,
        "source_norm": source_norm,
    }
