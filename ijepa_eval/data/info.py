"""``ijepa-eval data info``: what a dataset spec points at, split by split."""

from __future__ import annotations

import json
import statistics
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console

from ijepa_eval.data.base import SkippedSamplesWarning
from ijepa_eval.data.load import DATASETS, available_splits, load_dataset
from ijepa_eval.data.spec import parse_spec
from ijepa_eval.errors import DataError
from ijepa_eval.tables import Table

#: Above this many classes the histogram is summarised (min / median / max per class).
MAX_HISTOGRAM_ROWS = 30


def dataset_info(
    spec: str,
    splits: list[str] | None = None,
    options: dict[str, Any] | None = None,
    skip_bad_images: bool = False,
) -> list[dict[str, Any]]:
    """``describe()`` of each split (all the adapter finds unless ``splits`` is given)."""
    name, root = parse_spec(spec)
    options = options or {}
    splits = splits or available_splits(name, root, **options)
    if not splits:
        if name != "hf" and not Path(root).expanduser().exists():
            raise DataError(f"found no {name} splits under {root}: it does not exist")
        raise DataError(f"found no {name} splits under {root}; check the path and the format")
    infos = []
    for split in splits:
        with warnings.catch_warnings():  # the summary lists skipped samples itself
            warnings.simplefilter("ignore", SkippedSamplesWarning)
            ds = load_dataset(name, root, split, skip_bad_images=skip_bad_images, **options)
        infos.append({**ds.describe(), "fingerprint": ds.fingerprint()})
    return infos


def print_info(
    spec: str,
    splits: list[str] | None = None,
    options: dict[str, Any] | None = None,
    skip_bad_images: bool = False,
    as_json: bool = False,
) -> None:
    infos = dataset_info(spec, splits, options, skip_bad_images)
    console = Console(highlight=False)
    if as_json:
        console.print_json(json.dumps(infos))
        return
    first = infos[0]
    console.print(f"[bold]{first['adapter']}[/]  {first['format']}")
    console.print(f"root: {first['root']}")
    derived = getattr(DATASETS.get(first["adapter"]), "derived_splits", ())
    if derived:
        console.print(f"also: {', '.join(derived)} (derived, see the docs)")

    table = Table(title="splits")
    for column in ("split", "size", "classes", "target", "skipped", "fingerprint"):
        table.add_column(
            column, justify="right" if column in ("size", "classes", "skipped") else "left"
        )
    for info in infos:
        table.add_row(
            info["split"],
            str(info["size"]),
            "-" if info["num_classes"] is None else str(info["num_classes"]),
            info["target"],
            str(len(info["skipped"])),
            info["fingerprint"][:12],
        )
    console.print(table)
    for info in infos:
        for skipped in info["skipped"][:10]:
            console.print(f"[yellow]skipped[/] {skipped['id']}: {skipped['reason']}")

    histograms = [(i["split"], i["label_histogram"]) for i in infos if i["label_histogram"]]
    if histograms:
        console.print(_histogram_table(histograms, first["classes"] or []))


def _histogram_table(histograms: list[tuple[str, dict[str, int]]], classes: list[str]) -> Table:
    table = Table(title="label histogram")
    table.add_column("class")
    for split, _ in histograms:
        table.add_column(split, justify="right")
    if len(classes) <= MAX_HISTOGRAM_ROWS:
        for name in classes:
            table.add_row(name, *(str(h.get(name, 0)) for _, h in histograms))
    else:
        for label, stat in (("min per class", min), ("median", statistics.median), ("max", max)):
            table.add_row(label, *(f"{stat(h.values()):g}" for _, h in histograms))
    return table
