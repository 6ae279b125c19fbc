"""`run_finetune`: the ``finetune`` command as one library call."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ijepa_eval.errors import UserError, collect_warnings
from ijepa_eval.finetune.config import parse_overrides


def run_finetune(
    ckpt: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str],
    encoder: Any = None,
    which: str | None = None,
    data: str | None = None,
    task: str | None = None,
    percent: float | None = None,
    subset_file: str | os.PathLike[str] | None = None,
    shots: int | None = None,
    preset: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    resume: bool = False,
    seeds: int | None = None,
    data_options: Mapping[str, Any] | None = None,
    skip_bad_images: bool = False,
    include_paths: Iterable[str | os.PathLike[str]] = (),
    device: str | None = None,
    results_dir: str | os.PathLike[str] | None = "results",
):
    """Fine-tune a checkpoint (``ckpt``, ``which`` as everywhere; or a loaded ``encoder``) and
    write the run record; returns the pipeline's `RunResult`.

    The task is ``imagenet_1pct_finetune`` with ``percent=1`` (its preset ``ijepa_1pct``), else
    ``finetune`` (preset ``full``); ``shots`` keeps K images per class (seed 0), ``subset_file``
    a SimCLR-format list. ``preset`` (a name or a YAML file) and ``overrides`` (``["epochs=2"]``
    or a mapping) set the recipe; ``out`` receives the checkpoints and ``finetuned.pth.tar``
    (``out/seed<N>/`` each, with ``seeds`` > 1: one fine-tuning per seed, averaged).
    """
    from ijepa_eval.tasks.pipeline import prepare, run_job

    if percent is not None and percent != 1:
        raise UserError("only --percent 1 has a standard subset file (SimCLR's 1percent.txt)")
    if percent is not None and shots is not None:
        raise UserError("give --percent 1 or --shots K, not both")
    task = task or ("imagenet_1pct_finetune" if percent is not None else "finetune")
    recipe = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(list(overrides))
    params: dict[str, Any] = {"out": str(out), "resume": resume, "recipe": recipe}
    if preset is not None:
        params["preset"] = str(preset)
    job = prepare(
        task,
        data=data,
        params=params,
        shots=None if shots is None else [shots],
        subset_file=subset_file,
        data_options=data_options,
        skip_bad_images=skip_bad_images,
        include_paths=include_paths,
        seeds=seeds,
    )
    said: list[str] = []
    if encoder is None:
        from ijepa_eval.models import load_encoder

        if ckpt is None:
            raise UserError("run_finetune needs ckpt= or encoder=")
        with collect_warnings() as said:
            encoder = load_encoder(ckpt, which)
    from ijepa_eval.finetune.config import load_recipe

    load_recipe(job.config.preset, encoder.arch.name, dict(job.config.recipe))  # before any work
    return run_job(job, encoder, device=device, results_dir=results_dir, notes=said)
