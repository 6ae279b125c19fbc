"""Command-line option groups, declared once and shared by the commands that take them.

A group is a frozen dataclass whose fields are Typer options. A command names the groups it
takes as parameters annotated with the group's class, and `with_options` expands each into its
options for Typer and packs the parsed values back into one object per group::

    @with_options
    def linprobe(checkpoint: CheckpointOptions, data: DataOptions, ...) -> None:
        ...data.data...   # the --data value, under the name the reader expects

Groups: `CheckpointOptions` (which weights), `PreprocessOptions` (how images are prepared),
`DataOptions` (which dataset), `ExtractionOptions` (how features are computed and cached),
`EvalOptions` (probe parameters, task paths, device), `OutputOptions` (where records go).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Optional

import typer
from rich.console import Console
from rich.markup import escape

from ijepa_eval.errors import UserError, collect_warnings

console = Console()
err_console = Console(stderr=True)

# Options that commands outside the groups take too (`cache …`, `data info`), declared once.
CacheDirOption = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional on 3.10
    typer.Option("--cache-dir", help="Feature cache (default ~/.cache/ijepa-eval/features)."),
]
AdapterOption = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--option", "-o", help="Dataset adapter option KEY=VALUE (repeatable)."),
]
SeedsOption = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--seeds",
        min=1,
        help="Train each probe N times, from its seed and the N-1 after it (initialisation and "
        "batch order; fine-tuning: each in OUT/seed<N>): the mean, ± the standard deviation, "
        "and every seed's value in the record. Deterministic probes (k-NN, logistic "
        "regression) refuse it.",
    ),
]


@dataclass(frozen=True)
class CheckpointOptions:
    panel: ClassVar[str] = "Checkpoint"  # the --help section

    ckpt: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option(
            "--ckpt",
            help="Checkpoint: native .pth.tar/.pth, HF model dir, Hub id, timm:<name>.<tag>, or "
            "a registry name (`ijepa-eval models`); default: the bundled ijepa_tiny_synth.",
        ),
    ] = None
    which: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--which",
            help="target_encoder (default where present, as in the paper) or encoder (context).",
        ),
    ] = None
    heads: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--heads", help="Attention heads, for widths outside the I-JEPA size table."),
    ] = None

    def spec(self, *, quiet: bool = False) -> str:
        """``--ckpt``, or the registry's default checkpoint (said aloud)."""
        if self.ckpt is not None:
            return self.ckpt
        from ijepa_eval.models.registry import default_checkpoint

        name = default_checkpoint()
        if not quiet:
            console.print(
                f"[dim]no --ckpt: using the default checkpoint {name}[/]", highlight=False
            )
        return name


@dataclass(frozen=True)
class PreprocessOptions:
    panel: ClassVar[str] = "Preprocessing"  # the --help section

    img_size: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--img-size", help="Evaluation resolution (position embedding is resized)."),
    ] = None
    crop_pct: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--crop-pct", help="Centre-crop fraction (default 0.875: 256 → 224)."),
    ] = None
    resize: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--resize",
            help="crop (resize + centre crop) or resize (the whole frame to S×S, VISSL); "
            "default: the task's (resize for CLEVR), else crop.",
        ),
    ] = None
    interpolation: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--interpolation", help="bilinear (default), bicubic or nearest."),
    ] = None
    mean: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--mean", help="Normalisation mean, e.g. 0.485,0.456,0.406 (default ImageNet)."
        ),
    ] = None
    std: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--std", help="Normalisation std, e.g. 0.229,0.224,0.225 (default ImageNet)."),
    ] = None
    source_norm: Annotated[
        bool,
        typer.Option("--source-norm", help="Use the normalisation the source declares (e.g. 0.5)."),
    ] = False

    def to_kwargs(self) -> dict[str, Any]:
        """These options as keyword arguments of `load_encoder` (besides heads)."""
        if self.resize is not None and self.resize not in ("crop", "resize"):
            raise UserError(f"--resize must be 'crop' or 'resize', not {self.resize!r}")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise UserError(f"--crop-pct must be in (0, 1], not {self.crop_pct}")
        if self.interpolation not in (None, "nearest", "bilinear", "bicubic"):
            raise UserError(
                f"--interpolation must be bilinear, bicubic or nearest, not {self.interpolation!r}"
            )
        preprocess = {
            **self.geometry(),
            "mean": _triple(self.mean, "mean"),
            "std": _triple(self.std, "std"),
        }
        return {
            "img_size": self.img_size,
            "preprocess": preprocess,
            "source_norm": self.source_norm,
        }

    def geometry(self) -> dict[str, Any]:
        """The options given that win over a task's own preprocessing (`TaskSpec.preprocess`)."""
        given = {
            "resize": self.resize,
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
        }
        return {k: v for k, v in given.items() if v is not None}


@dataclass(frozen=True)
class DataOptions:
    panel: ClassVar[str] = "Data"  # the --help section

    data: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--data",
            help="NAME:ROOT (clevr_count:CLEVR_v1.0) or a folder (format detected); default: the "
            "configured location.",
        ),
    ] = None
    option: AdapterOption = None
    skip_bad_images: Annotated[
        bool, typer.Option("--skip-bad-images", help="Leave out unreadable images (counted).")
    ] = False

    def adapter_options(self) -> dict[str, str]:
        from ijepa_eval.data.spec import parse_options

        return parse_options(self.option or [])


@dataclass(frozen=True)
class ExtractionOptions:
    panel: ClassVar[str] = "Features"  # the --help section

    cache_dir: CacheDirOption = None
    batch_size: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--batch-size", help="Images per forward (default 256 GPU, 32 CPU)."),
    ] = None
    workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--workers", help="DataLoader worker processes (default: cores, max 8)."),
    ] = None
    refresh: Annotated[
        bool,
        typer.Option("--refresh", help="Extract again, replacing what the cache holds."),
    ] = False

    def to_extract_options(self):
        from ijepa_eval.tasks.pipeline import ExtractOptions

        return ExtractOptions(
            cache_dir=self.cache_dir,
            batch_size=self.batch_size,
            workers=self.workers,
            refresh=self.refresh,
        )


@dataclass(frozen=True)
class EvalOptions:
    panel: ClassVar[str] = "Evaluation"  # the --help section

    probe_param: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--probe-param",
            "-p",
            help="Probe parameter KEY=VALUE (YAML value), e.g. -p epochs=5 -p lrs=[0.1]; it goes "
            "to every task whose probe takes KEY. TASK.KEY or PROBE.KEY scopes it "
            "(-p linprobe.min_steps=50, -p linear.min_steps=50).",
        ),
    ] = None
    include_path: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option("--include-path", help="Extra folder of task YAMLs (repeatable)."),
    ] = None
    device: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--device", help="Probe device (default: cuda if available, else cpu)."),
    ] = None
    views: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--views",
            help="Training views, each cached: none, hflip (the image and its mirror) or "
            "random:K (K seeded RandomResizedCrop + flip views per image); default: the task's.",
        ),
    ] = None
    seeds: SeedsOption = None

    def params(self) -> dict[str, Any]:
        from ijepa_eval.schema import parse_assignments

        return parse_assignments(self.probe_param or [], "-p")


@dataclass(frozen=True)
class OutputOptions:
    panel: ClassVar[str] = "Output"  # the --help section

    results: Annotated[
        Path, typer.Option("--results", help="Where run records go (<results>/runs/<task>/).")
    ] = Path("results")

    def __post_init__(self) -> None:
        """A file named as the results folder stops the command before any work is done."""
        if self.results.exists() and not self.results.is_dir():
            raise UserError(f"--results {self.results} is a file; name a folder for run records")


def with_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Expand the command's option-group parameters into their options (see the module doc)."""
    signature = inspect.signature(command, eval_str=True)
    params, groups = [], {}
    for param in signature.parameters.values():
        group = param.annotation
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        hints = typing.get_type_hints(group, include_extras=True)
        fields = dataclasses.fields(group)
        groups[param.name] = (group, [f.name for f in fields])
        params += [
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=f.default,
                annotation=_in_panel(hints[f.name], group.panel),
            )
            for f in fields
        ]

    def expanded(**values: Any) -> Any:
        for name, (group, names) in groups.items():
            values[name] = group(**{n: values.pop(n) for n in names})
        return command(**values)

    expanded.__name__, expanded.__qualname__ = command.__name__, command.__qualname__
    expanded.__doc__, expanded.__module__ = command.__doc__, command.__module__
    expanded.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    expanded.__annotations__ = {p.name: p.annotation for p in params}
    return expanded


def _in_panel(annotation: Any, panel: str) -> Any:
    """``Annotated[T, typer.Option(...)]`` with the option shown under ``panel`` in --help."""
    kind, *extras = typing.get_args(annotation)
    shown = []
    for extra in extras:
        if isinstance(extra, typer.models.OptionInfo) and extra.rich_help_panel is None:
            extra = copy.copy(extra)
            extra.rich_help_panel = panel
        shown.append(extra)
    return Annotated[(kind, *shown)]


def load_encoder_loudly(
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions | None = None,
    *,
    quiet: bool = False,
):
    """`load_encoder`, with what the source said printed as warnings (none if ``quiet``)."""
    from ijepa_eval.models import load_encoder

    options = (preprocess or PreprocessOptions()).to_kwargs()
    with collect_warnings() as said:
        encoder = load_encoder(
            checkpoint.spec(quiet=quiet), checkpoint.which, heads=checkpoint.heads, **options
        )
    print_warnings([] if quiet else said)
    return encoder


def print_warnings(messages: list[str]) -> None:
    """Each warning as one yellow line on stderr (the text is not read as markup)."""
    for message in messages:
        err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


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
