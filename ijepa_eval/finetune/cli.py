"""``ijepa-eval finetune``: parse the options, load the encoder, call `run_finetune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ijepa_eval.cli_options import (
    CheckpointOptions,
    OutputOptions,
    SeedsOption,
    console,
    load_encoder_loudly,
    with_options,
)


@with_options
def finetune(
    checkpoint: CheckpointOptions,
    output: OutputOptions,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for checkpoints, log.csv, finetuned.pth.tar.")
    ],
    data: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Option("--data", help="NAME:ROOT or a folder; default: the configured ImageNet."),
    ] = None,
    percent: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--percent", help="1: I-JEPA Table 2's protocol on SimCLR's 1% subset."),
    ] = None,
    subset_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--subset-file", help="SimCLR-format subset file (1percent.txt)."),
    ] = None,
    shots: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--shots", help="Train on K images per class (drawn with seed 0)."),
    ] = None,
    preset: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--preset", help="ijepa_1pct, full, or a YAML file (default: the task's own)."
        ),
    ] = None,
    override: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--override", "-o", help="Recipe value KEY=VALUE, e.g. -o epochs=10."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/latest.pth.tar if it exists.")
    ] = False,
    seeds: SeedsOption = None,
    data_option: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--data-option", help="Dataset adapter option KEY=VALUE (repeatable)."),
    ] = None,
    skip_bad_images: Annotated[
        bool, typer.Option("--skip-bad-images", help="Leave out unreadable images (counted).")
    ] = False,
    device: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--device", help="cpu to stay off the GPU (default: cuda if available)."),
    ] = None,
) -> None:
    """Fine-tune an encoder end to end (I-JEPA Table 2 with --percent 1); torchrun for DDP."""
    import torch.distributed as tdist

    from ijepa_eval.data.spec import parse_options
    from ijepa_eval.dist import world
    from ijepa_eval.finetune.api import run_finetune
    from ijepa_eval.tasks.cli import _print_result

    main = world().is_main
    try:
        encoder = load_encoder_loudly(checkpoint, quiet=not main)
        result = run_finetune(
            encoder=encoder,
            out=out,
            data=data,
            percent=percent,
            subset_file=subset_file,
            shots=shots,
            preset=preset,
            overrides=override or [],
            resume=resume,
            seeds=seeds,
            data_options=parse_options(data_option or []),
            skip_bad_images=skip_bad_images,
            device=device,
            results_dir=output.results,
        )
        if main:
            _print_result(result)
            weights = out / ("seed*" if seeds and seeds > 1 else "") / "finetuned.pth.tar"
            console.print(f"fine-tuned weights: [bold]{weights}[/]")
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
