"""``clevr_count`` and ``clevr_dist``: CLEVR_v1.0 as released, with VTAB's labels.

Layout: ``root/images/<split>/CLEVR_<split>_NNNNNN.png`` and
``root/scenes/CLEVR_<split>_scenes.json``. Splits ``train`` and ``val`` are the released ones
(the test split has no scenes, so no labels). VTAB-1k's ``train800``, ``val200`` and
``train800val200`` come from ``train``: sort its scenes by ``image_index``, permute them with
``numpy.random.Generator(PCG64(0)).permutation(n)``, and take positions 0–799 (``train800``),
800–999 (``val200``) or 0–999 (``train800val200``); each subset is then kept in image order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ijepa_eval.data.base import EvalDataset, few, open_image
from ijepa_eval.data.clevr_labels import (
    COUNT_CLASSES,
    DISTANCE_CLASSES,
    count_label,
    distance_label,
)
from ijepa_eval.data.json_file import is_index, kind, read_json, shown
from ijepa_eval.errors import DataError

RELEASED_SPLITS = ("train", "val")
VTAB_SPLITS = {"train800": (0, 800), "val200": (800, 1000), "train800val200": (0, 1000)}
VTAB_SEED = 0
VTAB_SIZE = 1000  # train800 and val200 are two halves of one draw, so both need all 1000


def vtab_positions(n_train: int, split: str) -> list[int]:
    """Indices (into train scenes sorted by image_index) of a VTAB-1k split, in image order."""
    start, stop = VTAB_SPLITS[split]
    if n_train < VTAB_SIZE:
        raise DataError(
            f"CLEVR split {split!r} needs at least {VTAB_SIZE} train scenes; found {n_train}"
        )
    order = np.random.Generator(np.random.PCG64(VTAB_SEED)).permutation(n_train)
    return sorted(order[start:stop].tolist())


def read_scenes(root: Path, split: str) -> list[tuple[str, Mapping[str, Any]]]:
    """``(image file name, scene)`` for every image of a released split, in image_index order.

    The scenes JSON and the image folder must describe the same images, one scene each.
    """
    image_dir = root / "images" / split
    scenes_path = root / "scenes" / f"CLEVR_{split}_scenes.json"
    if not image_dir.is_dir():
        raise DataError(f"CLEVR image folder {image_dir} does not exist; is {root} CLEVR_v1.0?")
    if not scenes_path.is_file():
        raise DataError(f"CLEVR scenes file {scenes_path} does not exist; is {root} CLEVR_v1.0?")
    scenes = load_scenes_json(scenes_path)
    named = [(_file_name(scene, i, split, scenes_path), scene) for i, scene in enumerate(scenes)]
    named.sort(key=lambda pair: (pair[1].get("image_index", 0), pair[0]))
    described = [name for name, _ in named]
    on_disk = {e.name for e in os.scandir(image_dir) if e.name.lower().endswith(".png")}
    problems = []
    if len(set(described)) != len(described):
        problems.append("it describes some images more than once")
    missing = [n for n in described if n not in on_disk]
    if missing:
        problems.append(f"{len(missing)} described image(s) are missing: {few(missing)}")
    extra = sorted(on_disk.difference(described))
    if extra:
        problems.append(f"{len(extra)} image(s) have no scene: {few(extra)}")
    if problems:
        raise DataError(
            f"{scenes_path} does not match {image_dir} ({len(described)} scenes, "
            f"{len(on_disk)} images): {'; '.join(problems)}"
        )
    return named


def load_scenes_json(path: Path) -> list[dict[str, Any]]:
    """The ``scenes`` list of a CLEVR scenes JSON, each one an object; anything else in its
    place (unreadable, empty, not JSON, another shape) is a `DataError` saying what was found."""
    doc = read_json(path, "CLEVR scenes file")
    if not isinstance(doc, dict) or "scenes" not in doc:
        found = f"keys {', '.join(map(repr, doc))}" if isinstance(doc, dict) else kind(doc)
        raise DataError(
            f"{path} is not a CLEVR scenes file: expected an object with a 'scenes' list, "
            f"found {found or 'an empty object'}"
        )
    scenes = doc["scenes"]
    if not isinstance(scenes, list):
        raise DataError(
            f"{path} is not a CLEVR scenes file: 'scenes' is {kind(scenes)}, not a list"
        )
    if not scenes:
        raise DataError(f"{path} holds no scenes")
    for i, scene in enumerate(scenes):
        if not isinstance(scene, dict):
            raise DataError(f"{path}: scene {i} is {kind(scene)}, not an object")
    return scenes


def _file_name(scene: Mapping[str, Any], i: int, split: str, path: Path) -> str:
    """The image a scene describes: its ``image_filename`` (a bare file name), else the name
    CLEVR gives ``image_index``; both, when present, must have the right type."""
    index = scene.get("image_index")
    if "image_index" in scene and not is_index(index):
        raise DataError(
            f"{path}: scene {i} has image_index {shown(index)}; expected a whole number >= 0"
        )
    if "image_filename" in scene:
        name = scene["image_filename"]
        if not isinstance(name, str) or not name or name != Path(name).name or "\\" in name:
            raise DataError(
                f"{path}: scene {i} has image_filename {shown(name)}; expected a file name "
                f"such as CLEVR_{split}_000000.png"
            )
        return name
    if index is None:
        raise DataError(f"{path}: scene {i} has neither image_filename nor image_index")
    return f"CLEVR_{split}_{index:06d}.png"


class _Clevr(EvalDataset):
    format = "CLEVR_v1.0 (images/<split>/*.png + scenes/CLEVR_<split>_scenes.json)"
    label: ClassVar[Callable[[Mapping[str, Any]], int]]
    label_names: ClassVar[list[str]]
    derived_splits: ClassVar[tuple[str, ...]] = tuple(VTAB_SPLITS)

    def __init__(self, root: str | os.PathLike[str], split: str = "train", **kw: Any) -> None:
        root = Path(root)
        released = "train" if split in VTAB_SPLITS else split
        if released not in RELEASED_SPLITS:
            known = ", ".join([*RELEASED_SPLITS, *VTAB_SPLITS])
            raise DataError(f"unknown CLEVR split {split!r}; use one of {known}")
        scenes = read_scenes(root, released)
        if split in VTAB_SPLITS:
            scenes = [scenes[i] for i in vtab_positions(len(scenes), split)]
        self.image_dir = root / "images" / released
        self.scenes_path = root / "scenes" / f"CLEVR_{released}_scenes.json"
        label = type(self).label
        try:
            targets = [label(scene) for _, scene in scenes]
        except DataError as exc:
            raise DataError(f"{self.scenes_path}: {exc}") from None
        super().__init__(
            root=root,
            split=split,
            items=[name for name, _ in scenes],
            targets=targets,
            classes=self.label_names,
            **kw,
        )

    @classmethod
    def available_splits(cls, root: str | os.PathLike[str]) -> list[str]:
        root = Path(root)
        return [
            s
            for s in RELEASED_SPLITS
            if (root / "images" / s).is_dir()
            and (root / "scenes" / f"CLEVR_{s}_scenes.json").is_file()
        ]

    def load_image(self, item: str) -> Image.Image:
        return open_image(self.image_dir / item)

    def item_files(self, item: str) -> tuple[Path]:
        return (self.image_dir / item,)

    def source_files(self) -> tuple[Path]:
        return (self.scenes_path,)


class ClevrCount(_Clevr):
    """Count all objects: class = number of objects − 3 (8 classes)."""

    adapter = "clevr_count"
    label = staticmethod(count_label)
    label_names = COUNT_CLASSES


class ClevrDist(_Clevr):
    """Distance to the closest object, in VTAB's 6 depth bins."""

    adapter = "clevr_dist"
    label = staticmethod(distance_label)
    label_names = DISTANCE_CLASSES
