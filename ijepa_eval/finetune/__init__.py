"""End-to-end fine-tuning: I-JEPA's Table 2 (1% of ImageNet) and App. D (full) recipes.

`run_finetune` is what ``ijepa-eval finetune`` calls: it runs the ``finetune`` (or
``imagenet_1pct_finetune``) task through the evaluation pipeline, so the run gets the same
record as every task. `finetune` is the loop itself, on any two datasets; `load_finetuned`
reads its ``finetuned.pth.tar`` back as a classifier.
"""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.finetune.api": ("run_finetune",),
        "ijepa_eval.finetune.config": ("FinetuneConfig", "load_recipe", "presets"),
        "ijepa_eval.finetune.loop": ("FinetuneResult", "finetune"),
        "ijepa_eval.finetune.model": (
            "Logits",
            "build_classifier",
            "load_finetuned",
            "param_groups",
        ),
    },
)
