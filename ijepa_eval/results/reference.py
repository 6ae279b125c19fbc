"""Published numbers as extra leaderboard rows, each with the table and row it was copied from.

A reference file (``results/reference/*.yaml``) names one publication and its rows::

    source: Assran et al., "Self-Supervised Learning from Images with a ...", CVPR 2023
    url: https://arxiv.org/abs/2301.08243
    rows:
      - model: ijepa_vith14_in1k         # the registry name of the released checkpoint
        network: target_encoder
        px: 224
        results:
          - task: linprobe
            metrics: {top1: 79.3}
            adaptation: frozen           # how the paper adapted the encoder: frozen | fine-tuned
            where: Table 1, row "I-JEPA ViT-H/14, 300 ep"
            note: optional, e.g. how the paper's protocol differs from the task

These rows are never mixed up with measured ones: they are labelled as references, and nothing
in them was reproduced by ijepa-eval. A number sits only beside a task of its own adaptation:
a fine-tuning result named for a frozen-encoder task (Table 2's 1% rows beside the frozen
``imagenet_1pct``) is refused, so it cannot read as what a frozen probe should reach.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ijepa_eval.errors import UserError
from ijepa_eval.yaml_file import read_yaml


@dataclass(frozen=True)
class ReferenceRow:
    """One published model: its numbers per (task, metric) and a citation for each."""

    label: str
    network: str
    px: int | None
    values: dict[tuple[str, str], float]
    higher_is_better: dict[tuple[str, str], bool]
    citation: str  # the publication, then where each task's numbers are


def load_references(path: str | os.PathLike[str]) -> list[ReferenceRow]:
    """Rows from one reference YAML, or from every ``*.yaml`` in a directory (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.yaml"))
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"reference path {path} does not exist")
    return [row for file in files for row in _read(file)]


def _read(file: Path) -> list[ReferenceRow]:
    raw = read_yaml(file, "reference file")
    if not isinstance(raw, dict):
        raise UserError(f"reference file {file} must be a mapping with 'source' and 'rows'")
    _keys(raw, {"source", "url", "rows"}, {"source", "rows"}, file, "")
    publication = str(raw["source"]).strip() + (f" ({raw['url']})" if raw.get("url") else "")
    rows = raw["rows"]
    if not isinstance(rows, list) or not rows:
        raise UserError(f"reference file {file}: 'rows' must be a non-empty list")
    return [_row(entry, publication, file) for entry in rows]


def _row(entry: Any, publication: str, file: Path) -> ReferenceRow:
    if not isinstance(entry, dict):
        raise UserError(f"reference file {file}: each row must be a mapping")
    _keys(entry, {"model", "network", "px", "results"}, {"model", "results"}, file, "rows[].")
    values: dict[tuple[str, str], float] = {}
    directions: dict[tuple[str, str], bool] = {}
    places = []
    if not isinstance(entry["results"], list):
        raise UserError(f"reference file {file}: rows[].results must be a list")
    px = entry.get("px")
    if px is not None and (isinstance(px, bool) or not isinstance(px, int) or px < 1):
        raise UserError(f"reference file {file}: rows[].px must be a positive integer, not {px!r}")
    for result in entry["results"]:
        if not isinstance(result, dict):
            raise UserError(f"reference file {file}: each result must be a mapping")
        _keys(
            result,
            {"task", "metrics", "adaptation", "where", "note", "higher_is_better"},
            {"task", "metrics", "adaptation", "where"},
            file,
            "rows[].results[].",
        )
        task = str(result["task"])
        _check_adaptation(task, result["adaptation"], file)
        for name in ("metrics", "higher_is_better"):
            if not isinstance(result.get(name) or {}, dict):
                raise UserError(f"reference file {file}: {task} {name} must be a mapping")
        for metric, value in result["metrics"].items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UserError(f"reference file {file}: {task} {metric} = {value!r} is no number")
            values[(task, str(metric))] = float(value)
            directions[(task, str(metric))] = bool(
                dict(result.get("higher_is_better") or {}).get(metric, True)
            )
        note = f"; {result['note']}" if result.get("note") else ""
        metrics = ", ".join(map(str, result["metrics"]))
        places.append(f"{result['where']} ({task} {metrics}, {result['adaptation']}{note})")
    return ReferenceRow(
        label=str(entry["model"]),
        network=str(entry.get("network") or ""),
        px=px,
        values=values,
        higher_is_better=directions,
        citation=f"{publication}: {'; '.join(places)}",
    )


ADAPTATIONS = ("frozen", "fine-tuned")


def _check_adaptation(task: str, adaptation: Any, file: Path) -> None:
    """A published number only beside a task that adapts the encoder the same way."""
    from ijepa_eval.tasks.registry import get_task

    if adaptation not in ADAPTATIONS:
        raise UserError(
            f"reference file {file}: {task} adaptation must be frozen or fine-tuned, not "
            f"{adaptation!r}"
        )
    try:
        ours = get_task(task).adaptation
    except UserError:
        return  # a task of the user's own, not registered here: nothing to compare with
    if ours != adaptation:
        raise UserError(
            f"reference file {file}: {task} evaluates a {ours} encoder; a {adaptation} number "
            "beside it would not be comparable (name the task that follows its protocol)"
        )


def _keys(raw: dict, allowed: set[str], required: set[str], file: Path, where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise UserError(f"reference file {file}: unknown field '{where}{unknown[0]}'")
    missing = sorted(required - set(raw))
    if missing:
        raise UserError(f"reference file {file}: missing field '{where}{missing[0]}'")
