"""``ijepa-eval data …``: inspect datasets and generate synthetic ones."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ijepa_eval.cli_options import AdapterOption

data_app = typer.Typer(help="Inspect datasets and generate synthetic ones.", no_args_is_help=True)


@data_app.command("info")
def info(
    spec: Annotated[
        str,
        typer.Argument(
            help="NAME:ROOT (clevr_count:CLEVR_v1.0, hf:owner/name) or a folder (imagefolder)."
        ),
    ],
    split: Annotated[
        Optional[list[str]],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option("--split", "-s", help="Only this split (repeatable)."),
    ] = None,
    option: AdapterOption = None,
    skip_bad_images: Annotated[
        bool,
        typer.Option("--skip-bad-images", help="Decode every image; count and list bad ones."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show a dataset's format, splits, sizes, classes and label histogram."""
    from ijepa_eval.data.info import print_info
    from ijepa_eval.data.spec import parse_options

    print_info(spec, split or None, parse_options(option or []), skip_bad_images, as_json)


@data_app.command("synth-clevr")
def synth_clevr(
    out: Annotated[str, typer.Option("--out", help="Folder to write CLEVR_v1.0 into.")],
    train: Annotated[int, typer.Option("--train", help="Scenes in the train split.")] = 2000,
    val: Annotated[int, typer.Option("--val", help="Scenes in the val split.")] = 500,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels (square).")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 0,
    workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--workers", help="Processes to render with (default: one per core)."),
    ] = None,
) -> None:
    """Render CLEVR-like scenes in the CLEVR_v1.0 layout, with depth maps (resumable)."""
    from ijepa_eval.data.synth import generate_clevr

    generate_clevr(out, train=train, val=val, size=size, seed=seed, workers=workers)
    typer.echo(f"wrote {train} train + {val} val scenes to {out} (depth maps in {out}/depth)")


@data_app.command("synth-classes")
def synth_classes(
    out: Annotated[str, typer.Option("--out", help="Folder to write the ImageFolder into.")],
    classes: Annotated[int, typer.Option("--classes", help="Number of classes K.")] = 10,
    per_class: Annotated[int, typer.Option("--per-class", help="Train images per class.")] = 50,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels (square).")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same bytes.")] = 0,
    val_per_class: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--val-per-class", help="Val images per class (default: per-class / 4)."),
    ] = None,
    workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--workers", help="Processes to draw with (default: one per core)."),
    ] = None,
) -> None:
    """Draw an ImageFolder (train/ and val/) of K procedural classes (resumable)."""
    from ijepa_eval.data.synth import generate_classes

    generate_classes(
        out,
        classes=classes,
        per_class=per_class,
        size=size,
        seed=seed,
        val_per_class=val_per_class,
        workers=workers,
    )
    typer.echo(f"wrote {classes} classes to {out} (train/ and val/)")
