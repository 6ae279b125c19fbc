"""The fine-tuning "probe": end-to-end fine-tuning as a task the evaluation pipeline runs.

Unlike the other probes it reads images, not cached features (``inputs = "images"``): the
pipeline hands it the labelled training set, the reported split and the encoder, and it runs
`ijepa_eval.finetune.finetune` (see that module for the recipe). It chooses nothing
(``selects = False``): the reported split is evaluated once, with the last epoch's weights.
Besides the record it leaves ``out/finetuned.pth.tar`` (encoder and head), ``log.csv``,
``curves.png`` and the epoch checkpoint ``latest.pth.tar`` that ``resume`` continues.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ijepa_eval.probes.base import CLASSIFICATION_METRICS, Probe, ProbeInputs, ProbeResult
from ijepa_eval.probes.common import ProbeError


@dataclass(frozen=True)
class FinetuneParams:
    out: str | None = None  # the run's folder (checkpoints, log, finetuned.pth.tar): required
    preset: str = "full"  # a preset name (tasks/finetune/) or a YAML file
    recipe: dict[str, Any] = field(default_factory=dict)  # overrides of the preset's values
    resume: bool = False  # continue from out/latest.pth.tar

    def __post_init__(self) -> None:
        from ijepa_eval.finetune.config import FinetuneConfig, resolve_preset

        if not self.out:
            raise ProbeError(
                "fine-tuning writes a checkpoint: give its folder (--out DIR, or -p out=DIR)"
            )
        resolve_preset(self.preset)  # an unknown preset or misspelt key stops here
        FinetuneConfig().with_overrides(dict(self.recipe))


class FinetuneProbe(Probe):
    name = "finetune"
    Config = FinetuneParams
    inputs = "images"
    selects = False
    sweepable = False
    reports = CLASSIFICATION_METRICS

    @classmethod
    def seed_of(cls, config: FinetuneParams) -> int | None:
        return int(config.recipe.get("seed", 0))

    @classmethod
    def with_seed(cls, config: FinetuneParams, seed: int) -> FinetuneParams:
        """The recipe's seed set, and a folder of its own (``out/seed<N>``) for its checkpoints."""
        out = str(Path(config.out or ".") / f"seed{seed}")
        return replace(config, recipe={**config.recipe, "seed": seed}, out=out)

    def run(self, inputs: ProbeInputs, config: FinetuneParams, device: str | None) -> ProbeResult:
        from ijepa_eval.finetune.config import load_recipe
        from ijepa_eval.finetune.loop import finetune

        encoder = inputs.encoder
        recipe = load_recipe(config.preset, encoder.arch.name, dict(config.recipe))
        result = finetune(
            encoder,
            inputs.fit.x,
            inputs.test.x,
            recipe,
            config.out,
            resume=config.resume,
            device=device,
        )
        if not result.finished:
            raise ProbeError(
                f"fine-tuning stopped after epoch {recipe.stop_after} of {recipe.epochs} "
                f"(stop_after); continue it with --resume (-p resume=true): no record is written"
            )
        details = {**result.details, "preset": config.preset}
        return ProbeResult(
            metrics=result.metrics,
            predictions=result.predictions,
            splits={"train": len(inputs.fit), "test": len(inputs.test)},
            seeds={"finetune": recipe.seed},
            record={"finetune": details},
        )


__all__ = ["FinetuneParams", "FinetuneProbe"]
