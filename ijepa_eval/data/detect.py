"""Telling a dataset's format from what is on disk, for ``--data PATH`` without a ``NAME:``."""

from __future__ import annotations

from pathlib import Path

from ijepa_eval.data.base import is_image_file
from ijepa_eval.errors import DataError


def detect_format(root: str | Path) -> str:
    """The adapter that reads ``root``; a `DataError` saying what was found when none does."""
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"{root}: no such file or directory")
    if path.is_file():
        if path.suffix in (".parquet", ".arrow"):
            return "hf"
        if path.suffix == ".mat":
            return "nyu_depth_v2"
        raise DataError(f"{root} is a {path.suffix or 'plain'} file: not a dataset format we read")
    names = {p.name for p in path.iterdir()}
    if "cifar-10-batches-py" in names or "data_batch_1" in names:
        return "cifar10"
    if "cifar-100-python" in names:
        return "cifar100"
    if "trainvalsplit_places205" in names:
        return "places205"
    if {"train2018.json", "val2018.json"} & names:
        return "inat18"
    if "nyu_depth_v2_labeled.mat" in names:
        return "nyu_depth_v2"
    if {"images", "scenes"} <= names:
        raise DataError(
            f"{root} is in the CLEVR_v1.0 layout; say which labels: clevr_count:{root} or "
            f"clevr_dist:{root}"
        )
    if {"dataset_dict.json", "dataset_info.json", "state.json"} & names or any(
        n.endswith((".parquet", ".arrow")) for n in names
    ):
        return "hf"
    splits = [p for p in path.iterdir() if p.is_dir()]
    if any((s / "rgb").is_dir() and (s / "depth").is_dir() for s in splits):
        return "depth_folder"
    for split in splits:
        classes = [c for c in split.iterdir() if c.is_dir()]
        if classes and any(is_image_file(f.name) for c in classes[:5] for f in c.iterdir()):
            return "imagefolder"
    found = ", ".join(sorted(names)[:8]) or "nothing"
    raise DataError(
        f"cannot tell the format of {root} (found: {found}); name it as NAME:ROOT, e.g. "
        f"imagefolder:{root} (ROOT/<split>/<class>/*.jpg), clevr_count:{root}, hf:{root}"
    )
