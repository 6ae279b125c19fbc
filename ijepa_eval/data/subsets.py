"""Low-shot subsets of a classification split, chosen reproducibly and saved for audit.

Two ways to choose:

- a subset file in SimCLR's format (``1percent.txt``, ``10percent.txt``): one image file name per
  line, e.g. ``n01440764_10026.JPEG``, its class being the part before the first ``_``. A line
  holding a ``/`` is read as ``class/file`` (what `save_file_list` writes), so saved lists can be
  applied again;
- ``k`` images per class drawn with an explicit seed: for class ``c`` (in class-index order) the
  generator ``numpy.random.Generator(PCG64([seed, c]))`` permutes that class's items sorted by id,
  and the first ``k`` are kept. Sorted ids and a counter-based generator give the same files on
  every machine and Python version, and a class's draw does not depend on the other classes.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TypeVar

import numpy as np

from ijepa_eval.atomic import write_text
from ijepa_eval.data.base import EvalDataset, few
from ijepa_eval.errors import DataError

D = TypeVar("D", bound=EvalDataset)


def _require_classes(ds: EvalDataset, what: str) -> list[int]:
    if ds.targets is None or ds.classes is None:
        raise DataError(f"{what} needs a classification dataset; {ds.adapter} has no classes")
    return ds.targets


def apply_subset_file(ds: D, path: str | os.PathLike[str]) -> D:
    """Keep the items named in a SimCLR-format subset file (in dataset order).

    Every named image must be in the split: missing ones are a `DataError` that gives the count
    and the first few names.
    """
    _require_classes(ds, "a subset file")
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read subset file {path}: {exc.strerror or exc}") from None
    wanted: list[str] = []
    for number, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            continue
        if "/" not in name:
            synset, sep, _ = name.partition("_")
            if not sep:
                raise DataError(
                    f"{path}:{number}: {name!r} is neither 'class/file' nor a SimCLR name "
                    "like 'n01440764_10026.JPEG' (class before the first '_')"
                )
            name = f"{synset}/{name}"
        wanted.append(name)
    if not wanted:
        raise DataError(f"subset file {path} names no images")
    position = {item_id: i for i, item_id in enumerate(ds.ids())}
    missing = [name for name in dict.fromkeys(wanted) if name not in position]
    if missing:
        raise DataError(
            f"subset file {path} names {len(missing)} image(s) not in {ds.root} split "
            f"{ds.split!r}: {few(missing)}; check the file against the dataset"
        )
    indices = sorted({position[name] for name in wanted})
    return ds.select(indices, {"kind": "subset_file", "file": str(path), "size": len(indices)})


def draw_k_shot(ds: D, k: int, seed: int) -> D:
    """Keep ``k`` items of every class, drawn reproducibly from ``seed`` (see module docstring)."""
    targets = _require_classes(ds, "a k-shot draw")
    if k < 1:
        raise DataError(f"shots per class must be at least 1, not {k}")
    ids = ds.ids()
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, target in enumerate(targets):
        by_class[target].append(index)
    chosen: list[int] = []
    for c, name in enumerate(ds.classes or []):
        members = sorted(by_class.get(c, []), key=ids.__getitem__)
        if len(members) < k:
            raise DataError(
                f"class {name!r} has {len(members)} image(s) in split {ds.split!r}, "
                f"fewer than the {k} shots asked for"
            )
        order = np.random.Generator(np.random.PCG64([seed, c])).permutation(len(members))
        chosen.extend(members[i] for i in sorted(order[:k].tolist()))
    return ds.select(
        sorted(chosen), {"kind": "k_shot", "shots": k, "seed": seed, "size": len(chosen)}
    )


def save_file_list(ds: EvalDataset, dest: str | os.PathLike[str]) -> Path:
    """Write the dataset's item ids, one per line, atomically — the audit trail of a run."""
    dest = Path(dest)
    write_text(dest, "".join(f"{item_id}\n" for item_id in ds.ids()))
    return dest
