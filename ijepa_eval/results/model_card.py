"""A model's results as a Hugging Face model card's ``model-index``, ready to push with it.

`write_model_card` reads a results folder, keeps the newest run of each task for one model
(layer-sweep runs left out) and writes one `huggingface_hub.EvalResult` per metric into the
card's YAML front matter, through `huggingface_hub.ModelCard` (the Hub's own reader and
writer of the model-index spec):

- ``task``: ``type`` ``image-classification`` (``depth-estimation`` for depth tasks), ``name``
  the ijepa-eval task;
- ``dataset``: ``type`` the adapter that read it (``imagefolder``, ``clevr_count``, ...),
  ``name`` the data folder's name and that adapter, ``split`` the reported split — what was
  read, not the task's default dataset, so a synthetic run never poses as ImageNet — and
  ``config`` the task (how the split was used: the Hub groups results by task type and
  dataset, so without it two tasks on one split, a linear probe and a k-shot one, would merge);
- ``metrics``: ``type`` the metric (``accuracy`` for top-1), ``value`` rounded to 4 decimals,
  ``name`` a readable name with its unit.

An existing card keeps its body byte for byte and every other metadata key; results it holds
for other tasks or datasets stay, ours are replaced in place (so a second update writes the
same file). A card that does not exist is created with a short body.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ijepa_eval import atomic
from ijepa_eval.errors import UserError, writing
from ijepa_eval.results.load import load_records, newest
from ijepa_eval.tasks.record import ModelId, RunRecord

__all__ = ["eval_results", "select_model", "write_model_card"]

METRIC_TYPES = {"top1": "accuracy"}  # the Hub's metric id where one fits exactly
METRIC_NAMES = {
    "top1": "top-1 accuracy (%)",
    "top5": "top-5 accuracy (%)",
    "mean_per_class_acc": "mean per-class accuracy (%)",
    "rmse": "RMSE (m)",
    "abs_rel": "absolute relative error",
    "log10": "mean log10 error",
    "delta1": "δ < 1.25",
    "delta2": "δ < 1.25²",
    "delta3": "δ < 1.25³",
}
_VARIANT = re.compile(r"^(?P<base>.+?)_(?:(?P<shots>\d+)shot|k(?P<k>\d+))$")
DIGITS = 4


def select_model(
    records: Sequence[RunRecord], model: str | None = None, network: str | None = None
) -> list[RunRecord]:
    """The newest run of each task of one model, by task. ``model`` (a name or the start of
    the checkpoint's sha256) and ``network`` pick it when the records hold several."""
    latest = newest(records)
    runs = [
        r
        for r in latest.values()
        if (model is None or model == r.label or r.model.sha256.startswith(model.lower()))
        and (network is None or network == r.model.network)
    ]
    models: dict[ModelId, str] = {r.model: r.label for r in runs}
    if len(models) == 1:
        return sorted(runs, key=lambda r: r.task)
    if not models:
        wanted = " ".join(x for x in (model, network) if x)
        raise UserError(f"no run of a model matching {wanted!r} in these results")
    listed = "; ".join(
        f"{label} ({m.network}, {m.resolution or '?'} px, {m.short_sha})"
        for m, label in sorted(models.items(), key=lambda kv: (kv[1], kv[0].network))
    )
    raise UserError(
        f"the results hold {len(models)} models ({listed}); a model card is for one: "
        "pick it with --model NAME|SHA256-PREFIX and, if need be, --network"
    )


def eval_results(runs: Sequence[RunRecord]) -> list:
    """One `huggingface_hub.EvalResult` per metric of each run (see the module doc)."""
    from huggingface_hub import EvalResult

    results = []
    for record in runs:
        probe = (record.task_spec or {}).get("probe") or {}
        data = record.data or {}
        adapter = str(data.get("adapter") or record.task)
        folder = Path(str(data.get("root") or "")).name
        split = (record.predictions or {}).get("split") or (data.get("plan") or {}).get("test")
        for metric, value in record.metrics.items():
            results.append(
                EvalResult(
                    task_type="depth-estimation"
                    if probe.get("type") == "depth"
                    else "image-classification",
                    task_name=record.task,
                    dataset_type=adapter,
                    dataset_name=f"{folder} ({adapter})" if folder else adapter,
                    dataset_config=record.task,  # keeps two tasks on one split apart
                    dataset_split=split,
                    metric_type=METRIC_TYPES.get(metric, metric),
                    metric_name=metric_name(metric),
                    metric_value=round(float(value), DIGITS),
                )
            )
    return results


def metric_name(metric: str) -> str:
    """``top1_2shot`` → ``top-1 accuracy (%), 2 per class``; unknown names as they are."""
    match = _VARIANT.match(metric)
    base = match["base"] if match else metric
    name = METRIC_NAMES.get(base, base)
    if match and match["shots"]:
        return f"{name}, {match['shots']} per class"
    if match and match["k"]:
        return f"{name}, k = {match['k']}"
    return name


def write_model_card(
    results: str | os.PathLike[str],
    card: str | os.PathLike[str],
    *,
    model: str | None = None,
    network: str | None = None,
    model_name: str | None = None,
) -> list:
    """Write (or update) ``card``'s ``model-index`` with the results of one model (see the
    module doc), atomically; returns the `huggingface_hub.EvalResult` s written. ``model_name``
    names the model in the index (default: the card's own name, else the checkpoint's
    registry name or file name)."""
    from huggingface_hub import ModelCard, ModelCardData

    card = Path(card)
    runs = select_model(load_records(results), model, network)
    ours = eval_results(runs)
    if card.is_dir():
        raise UserError(f"model card {card} is a folder; name the card's file (README.md)")
    if card.exists():
        existing = _load(card)
    else:
        text = (
            f"# {model_name or runs[0].label}\n\nEvaluated with ijepa-eval; the results are in "
            "this card's metadata (`model-index`).\n"
        )
        existing = ModelCard(f"---\n{ModelCardData().to_yaml()}\n---\n\n{text}")
    data = existing.data
    kept = list(data.eval_results or [])
    for result in ours:
        same = [i for i, old in enumerate(kept) if _identity(old) == _identity(result)]
        if same:
            kept[same[0]] = result
        else:
            kept.append(result)
    data.eval_results = kept
    data.model_name = model_name or data.model_name or runs[0].label
    with writing("the model card", card):
        atomic.write_text(card, str(existing))
    return ours


def _identity(result) -> tuple:
    """What makes two entries the same result (the value aside): task, dataset, metric."""
    return (*result.unique_identifier, result.task_name, result.metric_type, result.metric_name)


def _load(card: Path):
    """The card as `huggingface_hub.ModelCard` reads it; bad front matter is one error line."""
    import yaml
    from huggingface_hub import ModelCard

    quiet = logging.getLogger("huggingface_hub.repocard")  # "no metadata block": we add one
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return ModelCard.load(card)
    except OSError as exc:
        raise UserError(f"cannot read model card {card}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: a model-index the Hub refuses
        mark = getattr(exc, "problem_mark", None)  # yaml's: where in the front matter
        reason = (
            f"{exc.problem} at line {mark.line + 2}"
            if isinstance(exc, yaml.MarkedYAMLError) and mark is not None
            else " ".join(str(exc).split()).split(". ")[0]  # the Hub's first sentence
        )
        raise UserError(
            f"model card {card}: its YAML front matter cannot be read ({reason}); fix it "
            "or name another file"
        ) from None
    finally:
        quiet.setLevel(level)
