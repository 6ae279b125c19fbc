"""``ijepa-eval pretrain``: parse the options, load the config, call `pretrain`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer


def pretrain(
    config: Annotated[
        str,
        typer.Option("--config", help="A YAML file or a preset name (e.g. vit_tiny_synth)."),
    ],
    overrides: Annotated[
        Optional[list[str]],  # noqa: UP045 - typer needs Optional on 3.10
        typer.Argument(
            metavar="KEY=VALUE",
            help="Config overrides, e.g. optimization.lr=1e-3 data.root=DIR.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/latest.pth.tar if it exists.")
    ] = False,
    out: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--out", help="Output directory (same as logging.out=DIR)."),
    ] = None,
) -> None:
    """Pretrain an I-JEPA encoder (single process, or under torchrun for DDP)."""
    import dataclasses

    import torch.distributed as tdist

    from ijepa_eval.train import load_config
    from ijepa_eval.train import pretrain as run

    cfg = load_config(config, overrides or [])
    if out is not None:
        cfg = dataclasses.replace(cfg, logging=dataclasses.replace(cfg.logging, out=out))
    try:
        run(cfg, resume=resume)
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
