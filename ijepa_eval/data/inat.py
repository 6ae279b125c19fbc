"""``inat18``: iNaturalist 2018 as released — a COCO-style JSON per split, images below ROOT.

Layout::

    ROOT/train2018.json
    ROOT/val2018.json
    ROOT/train_val2018/Plantae/7477/3b60c9486db1d2ee875f11a669fbde4a.jpg

Each JSON holds ``images`` (``id``, ``file_name`` relative to ROOT), ``annotations``
(``image_id``, ``category_id``; one per image) and ``categories`` (``id``, ``name``). An image's
label is its annotation's ``category_id``, and the class index *is* the category id, as in
VISSL (its file lists take the label from the category-id folder, and its heads are 8,142
wide): predictions and per-item records read back as category ids, with no table in between.
So the ids must be 0..N-1, each once, in any order (the release's are 0..8141). Class names
are ``categories[].name`` (a repeated name gets its id appended). Items keep the order of
``images``. The JSON is parsed once, when the split is opened (train2018.json is ~100 MB).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from ijepa_eval.data.base import few
from ijepa_eval.data.json_file import is_index, kind, read_json, shown
from ijepa_eval.data.listed import ListedImages, Listing, relative_path
from ijepa_eval.errors import DataError

WHAT = "COCO-style iNaturalist file"


def split_json(root: Path, split: str) -> Path:
    return root / f"{split}2018.json"


class INat18(ListedImages):
    adapter = "inat18"
    format = "iNaturalist 2018 ({train,val}2018.json + train_val2018/<kingdom>/<id>/*.jpg)"

    @classmethod
    def read_listing(cls, root: Path, split: str) -> Listing:
        path = split_json(root, split)
        if not path.is_file():
            raise DataError(
                f"iNaturalist file {path} does not exist; pass the folder holding "
                "train2018.json, val2018.json and train_val2018/"
            )
        return Listing(path, root, *read_coco_labels(path))

    @classmethod
    def available_splits(cls, root: str | os.PathLike[str]) -> list[str]:
        return [s for s in cls.splits if split_json(Path(root), s).is_file()]


def read_coco_labels(path: Path) -> tuple[list[str], list[int], list[str]]:
    """``(file names, category ids, class names)`` of a COCO-style classification JSON, the
    images in the order ``images`` lists them; anything malformed is a `DataError`."""
    doc = read_json(path, WHAT)
    if not isinstance(doc, dict):
        raise DataError(
            f"{path} is not a {WHAT}: expected an object with 'images', 'annotations' and "
            f"'categories' lists, found {kind(doc)}"
        )
    for key in ("images", "annotations", "categories"):
        value = doc.get(key)
        if not isinstance(value, list):
            found = kind(value) if key in doc else "missing"
            raise DataError(f"{path} is not a {WHAT}: {key!r} is {found}, not a list")
        for i, entry in enumerate(value):
            if not isinstance(entry, dict):
                raise DataError(f"{path}: {key}[{i}] is {kind(entry)}, not an object")
    classes = _class_names(doc["categories"], path)
    file_of: dict[int, str] = {}
    for i, image in enumerate(doc["images"]):
        image_id = _index(image, "id", f"images[{i}]", path)
        name = image.get("file_name")
        relative = relative_path(name) if isinstance(name, str) else None
        if relative is None:
            raise DataError(
                f"{path}: images[{i}] has file_name {shown(name)}; expected a path below "
                f"{path.parent} such as train_val2018/Plantae/7477/3b60c948.jpg"
            )
        if image_id in file_of:
            raise DataError(f"{path}: image id {image_id} is listed more than once")
        file_of[image_id] = relative
    label_of: dict[int, int] = {}
    for i, annotation in enumerate(doc["annotations"]):
        where = f"annotations[{i}]"
        image_id = _index(annotation, "image_id", where, path)
        category_id = _index(annotation, "category_id", where, path)
        if image_id not in file_of:
            raise DataError(f"{path}: {where} is for image {image_id}, which 'images' lacks")
        if category_id >= len(classes):
            raise DataError(
                f"{path}: {where} has category_id {category_id}, out of range: the "
                f"categories are 0..{len(classes) - 1}"
            )
        if image_id in label_of:
            raise DataError(
                f"{path}: image {image_id} ({file_of[image_id]}) has more than one annotation"
            )
        label_of[image_id] = category_id
    unlabelled = [name for image_id, name in file_of.items() if image_id not in label_of]
    if unlabelled:
        raise DataError(f"{path}: {len(unlabelled)} image(s) have no annotation: {few(unlabelled)}")
    return list(file_of.values()), [label_of[image_id] for image_id in file_of], classes


def _class_names(categories: list[dict[str, Any]], path: Path) -> list[str]:
    """Names indexed by category id, which must be 0..N-1, each once."""
    names: dict[int, str] = {}
    for i, entry in enumerate(categories):
        category_id = _index(entry, "id", f"categories[{i}]", path)
        if category_id in names:
            raise DataError(f"{path}: category id {category_id} is listed more than once")
        names[category_id] = str(entry.get("name", category_id))
    if not names:
        raise DataError(f"{path} lists no categories")
    absent = [str(i) for i in range(len(names)) if i not in names]
    if absent:
        raise DataError(
            f"{path}: category ids must be 0..{len(names) - 1} for its {len(names)} categories, "
            f"each once (the class index is the id); missing: {few(absent)}"
        )
    ordered = [names[i] for i in range(len(names))]
    counts = Counter(ordered)
    return [f"{name} ({i})" if counts[name] > 1 else name for i, name in enumerate(ordered)]


def _index(entry: dict[str, Any], key: str, where: str, path: Path) -> int:
    value = entry.get(key)
    if not is_index(value):
        found = shown(value) if key in entry else "none"
        raise DataError(f"{path}: {where} has {key} {found}; expected a whole number >= 0")
    return value
