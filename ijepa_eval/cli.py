"""The ``ijepa-eval`` command line: a thin shell over the library.

Each command parses its options and calls one library function. A `UserError` becomes one red
line on stderr and exit status 1; ``--debug`` (or ``IJEPA_EVAL_DEBUG=1``) shows the traceback.
The handling lives in the command group itself, so every subcommand (and every test that invokes
the app) gets it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from ijepa_eval.cli_options import (
    CheckpointOptions,
    DataOptions,
    ExtractionOptions,
    PreprocessOptions,
    err_console,
    load_encoder_loudly,
    print_warnings,
    with_options,
)
from ijepa_eval.errors import UserError, collect_warnings
from ijepa_eval.tables import NAME_WIDTH, Col, Table, fitted

console = Console()
_debug = {"on": False}


class _UserErrorsAsOneLine(TyperGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if _debug["on"]:
                raise
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            ctx.exit(1)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            ctx.exit(130)


app = typer.Typer(
    name="ijepa-eval",
    cls=_UserErrorsAsOneLine,
    help="Evaluate and benchmark pretrained I-JEPA encoders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _debug["on"] = debug or os.environ.get("IJEPA_EVAL_DEBUG", "") not in ("", "0")
    warnings.showwarning = _show_warning  # a warning that reaches the user is one yellow line


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print_warnings([str(message)])


@app.command()
@with_options
def info(
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    show_health: Annotated[
        bool,
        typer.Option(
            "--health",
            help="Also extract --data (through the cache) and print label-free health: RankMe, "
            "the fraction of near-constant dimensions, the mean feature norm.",
        ),
    ] = False,
    split: Annotated[str, typer.Option("--split", help="Split --health reads.")] = "train",
) -> None:
    """Show what a checkpoint holds and exactly what would be evaluated."""
    from ijepa_eval.models import inspect_checkpoint

    if show_health and data.data is None:
        raise UserError("--health needs --data (NAME:ROOT or a folder) to extract features from")
    ckpt = checkpoint.spec()
    meta = inspect_checkpoint(
        ckpt, checkpoint.which, heads=checkpoint.heads, **preprocess.to_kwargs()
    )
    found = _health(checkpoint, preprocess, data, extraction, split) if show_health else None
    if as_json:
        console.print_json(data={**meta.to_dict(), **({"health": found} if found else {})})
        return
    table = Table(title=f"ijepa-eval info: {ckpt}", show_header=False)
    table.add_column(style="bold cyan")
    table.add_column()
    prep = meta.preprocess
    rows = [
        ("format", meta.source_format),
        ("file", meta.path),
        ("networks present", ", ".join(meta.networks_present)),
        ("network used", meta.network),
        (
            "arch",
            f"{meta.arch} (width {meta.embed_dim}, depth {meta.depth}, "
            f"heads {meta.num_heads}, mlp {meta.mlp_hidden})",
        ),
        ("parameters", f"{meta.num_params:,}"),
        ("patch size", str(meta.patch_size)),
        ("resolution", f"{meta.resolution}px (checkpoint {meta.checkpoint_resolution}px)"),
        ("epoch", "-" if meta.epoch is None else str(meta.epoch)),
        ("registry name", meta.registry_name or "-"),
        (
            "preprocessing",
            f"{prep['resize']} {prep['resize_size']}→{prep['img_size']} "
            f"{prep['interpolation']}, mean {list(prep['mean'])}, "
            f"std {list(prep['std'])}",
        ),
        ("sha256", meta.sha256),
    ]
    if found:
        sampled = found["rows"] < found["of_rows"]
        rows += [
            ("RankMe", f"{found['rankme']:.2f} of {min(found['rows'], found['dim'])} possible"),
            ("near-constant dims", f"{100 * found['near_constant_dims']:.1f}%"),
            ("mean feature norm", f"{found['mean_norm']:.3f}"),
            (
                "health from",
                f"{found['rows']:,} rows of {found['split']}"
                + (f" (sampled from {found['of_rows']:,})" if sampled else "")
                + f", block {found['block']} pooled"
                + (", features from the cache" if found["cache_hit"] else ""),
            ),
        ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    for message in meta.warnings:
        console.print(f"[yellow]warning:[/] {message}", highlight=False)


def _health(checkpoint, preprocess, data, extraction, split: str) -> dict:
    """`encoder_health` of --data's split under the checkpoint (what ``info --health`` shows)."""
    from ijepa_eval.data import load_dataset
    from ijepa_eval.data.spec import parse_spec
    from ijepa_eval.health import encoder_health

    name, root = parse_spec(data.data)
    dataset = load_dataset(
        name, root, split, skip_bad_images=data.skip_bad_images, **data.adapter_options()
    )
    encoder = load_encoder_loudly(checkpoint, preprocess, quiet=True)  # info says the warnings
    return encoder_health(
        encoder,
        dataset,
        cache_dir=extraction.cache_dir,
        batch_size=extraction.batch_size,
        workers=extraction.workers,
        refresh=extraction.refresh,
        progress=False,
    )


@app.command()
@with_options
def convert(
    to: Annotated[str, typer.Option("--to", help="hf (config.json + safetensors) or native.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory (hf) or file (native).")],
    checkpoint: CheckpointOptions,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out.")
    ] = False,
) -> None:
    """Write a checkpoint's encoder as a Hugging Face model directory or a native file."""
    from ijepa_eval.models.convert import convert as convert_checkpoint

    with collect_warnings() as said:
        written = convert_checkpoint(
            checkpoint.spec(),
            to,
            out,
            which=checkpoint.which,
            heads=checkpoint.heads,
            overwrite=overwrite,
        )
    print_warnings(said)
    console.print(f"wrote {to} checkpoint to [bold]{written}[/]")


@app.command()
@with_options
def extract(
    checkpoint: CheckpointOptions,
    preprocess: PreprocessOptions,
    data: DataOptions,
    extraction: ExtractionOptions,
    split: Annotated[str, typer.Option("--split", help="Split to encode.")] = "train",
    layers: Annotated[
        str, typer.Option("--layers", help="last, last4, all, or block indices like 0,5,11.")
    ] = "last",
    tokens: Annotated[
        str, typer.Option("--tokens", help="none, all, or grid:HxW (patch tokens pooled to HxW).")
    ] = "none",
    dtype: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--dtype",
            help="Compute: fp32, bf16 or fp16 autocast (default bf16 GPU, fp32 CPU), or "
            "bf16-weights (the whole model in bf16: faster, less precise).",
        ),
    ] = None,
    store: Annotated[
        str, typer.Option("--store", help="Storage dtype: float16, float32, bfloat16.")
    ] = "float16",
    shard_size: Annotated[int, typer.Option("--shard-size", help="Images per shard.")] = 1024,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="torch.compile the encoder.")
    ] = False,
) -> None:
    """Encode a dataset split once into the feature cache (a rerun resumes or hits it)."""
    import time

    from ijepa_eval.data import load_dataset
    from ijepa_eval.data.spec import parse_spec
    from ijepa_eval.dist import world
    from ijepa_eval.features import extract as extract_features

    if data.data is None:
        raise UserError("extract needs --data (NAME:ROOT or a folder)")
    name, root = parse_spec(data.data)
    dataset = load_dataset(
        name, root, split, skip_bad_images=data.skip_bad_images, **data.adapter_options()
    )
    # under torchrun only rank 0 speaks: one copy of each warning is enough
    encoder = load_encoder_loudly(checkpoint, preprocess, quiet=not world().is_main)
    started = time.perf_counter()
    features = extract_features(
        encoder,
        dataset,
        layers=layers,
        tokens=tokens,
        store_dtype=store,
        compute_dtype=dtype,
        batch_size=extraction.batch_size,
        workers=extraction.workers,
        shard_size=shard_size,
        cache_dir=extraction.cache_dir,
        refresh=extraction.refresh,
        compile=compile_model,
    )
    if not world().is_main:
        return
    if dataset.skipped:
        console.print(f"[yellow]skipped {len(dataset.skipped)} unreadable image(s)[/]")
    how = "from the cache" if features.hit else "extracted"
    shards = features.entry.num_shards
    if not features.hit and len(features.computed) < shards:
        how += f" ({len(features.computed)} of {shards} shards here, the rest by other processes)"
    console.print(
        f"{how} in {time.perf_counter() - started:.1f}s: {len(features):,} images, blocks "
        f"{list(features.layers)}, tokens {features.entry.spec.tokens}, key {features.key}",
        highlight=False,
    )


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registry of known I-JEPA checkpoints."""
    from ijepa_eval.models.registry import load_registry

    entries = load_registry()
    if as_json:
        console.print_json(
            data={n: {**vars(e), "base_dir": str(e.base_dir)} for n, e in entries.items()}
        )
        return
    short = {"target_encoder": "target", "encoder": "ctx", "predictor": "pred"}
    size = {"huge": "H", "giant": "g", "large": "L", "base": "B", "small": "S", "tiny": "Ti"}
    rows = [
        [
            name,
            f"ViT-{size.get(e.arch.split('_')[1], e.arch)}/{e.patch_size}",
            str(e.resolution),
            f"{e.pretrain_data.replace('ImageNet', 'IN')} {e.epochs}ep",
            "+".join(short.get(n, n) for n in sorted(e.networks, key=(*short, *e.networks).index)),
            e.license,
        ]
        for name, e in entries.items()
    ]
    columns = [Col("name", wrap=NAME_WIDTH), Col("arch"), Col("px"), Col("pretrained", wrap=12)]
    columns += [Col("networks", wrap=7), Col("licence")]
    console.print(fitted(columns, rows, console, title="Known I-JEPA checkpoints", under=[2]))
    console.print(
        "networks: target = target_encoder, ctx = encoder (the context encoder), pred = predictor. "
        "Native files hold the target encoder the paper evaluates; the Hub copies hold only the "
        "context encoder. Add your own with IJEPA_EVAL_REGISTRY=extra.yaml.",
        style="dim",
    )


def main() -> None:
    """Console-script entry point."""
    # Idle OpenMP threads sleep instead of spinning (set before torch loads; an explicit
    # setting wins). Spinning only burns cores another process could use: two extractions
    # sharing one cache on 2 cores spent 2.9x a lone run's CPU time spinning, 1.2x without;
    # a lone run or a probe is no slower (benchmarks/RESULTS.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()


# Subcommands that live with the part of the library they drive.
from ijepa_eval.data.cli import data_app  # noqa: E402
from ijepa_eval.features.cli import cache_app  # noqa: E402
from ijepa_eval.finetune.cli import finetune  # noqa: E402
from ijepa_eval.results import cli as results_cli  # noqa: E402
from ijepa_eval.tasks import cli as task_cli  # noqa: E402
from ijepa_eval.train.cli import pretrain  # noqa: E402

app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
for _command in (task_cli.run, task_cli.linprobe, task_cli.lowshot, task_cli.clevr, task_cli.knn):
    app.command()(_command)
app.command(name="tasks")(task_cli.tasks)
app.command(name="sweep")(task_cli.sweep_command)
app.command(name="curve")(task_cli.curve_command)
app.command(name="pretrain")(pretrain)
app.command(name="finetune")(finetune)
app.command(name="leaderboard")(results_cli.leaderboard)
app.command(name="check")(results_cli.check)
app.command(name="compare")(results_cli.compare)
app.command(name="report")(results_cli.report)
