"""``imagefolder``: ``root/<split>/<class>/<image>`` — the usual ImageNet train/val layout."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from PIL import Image

from ijepa_eval.data.base import EvalDataset, is_image_file, list_subdirs, open_image
from ijepa_eval.errors import DataError, DataWarning


class ImageFolder(EvalDataset):
    """Classes are the sorted names of the class folders; images are found at any depth below
    them and kept in sorted path order, so every machine sees the same sample order."""

    adapter = "imagefolder"
    format = "image folder (root/<split>/<class>/<image>)"

    def __init__(self, root: str | os.PathLike[str], split: str = "train", **kw: Any) -> None:
        root = Path(root)
        self.split_dir = root / split
        if not self.split_dir.is_dir():
            found = self.available_splits(root)
            where = f"splits in {root}: {', '.join(found)}" if found else f"{root} has none"
            raise DataError(f"split folder {self.split_dir} does not exist ({where})")
        classes = list_subdirs(self.split_dir)
        if not classes:
            raise DataError(
                f"{self.split_dir} has no class folders; expected {self.split_dir}/<class>/<image>"
            )
        items, targets = [], []
        for index, name in enumerate(classes):
            files = _images_below(self.split_dir / name)
            if not files:
                raise DataError(
                    f"class folder {self.split_dir / name} holds no images "
                    "(.jpg, .png, …); add images or remove the folder"
                )
            items.extend(f"{name}/{f}" for f in files)
            targets.extend([index] * len(files))
        super().__init__(
            root=root, split=split, items=items, targets=targets, classes=classes, **kw
        )

    @classmethod
    def available_splits(cls, root: str | os.PathLike[str]) -> list[str]:
        root = Path(root)
        return [s for s in list_subdirs(root) if list_subdirs(root / s)]

    def load_image(self, item: str) -> Image.Image:
        return open_image(self.split_dir / item)

    def item_files(self, item: str) -> tuple[Path]:
        return (self.split_dir / item,)


def _images_below(folder: Path) -> list[str]:
    """Image files under ``folder`` (any depth), as sorted POSIX paths relative to it.

    Symbolic links are followed, as torchvision's ImageFolder does, also out of the dataset; a
    link back to a folder already being walked (a loop: ``class/loop -> ..``) is skipped with a
    `DataWarning`, so a bad link can neither hang the walk nor pull in other classes' images.
    """
    found = []
    root = os.path.realpath(folder)
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        loop = dirpath != str(folder) and _is_ancestor(real, root)
        if loop or real in seen:
            why = "a folder that contains it (a symlink loop)" if loop else "a folder already read"
            warnings.warn(f"{dirpath} links to {real}, {why}: left out", DataWarning, stacklevel=2)
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(folder)
        found.extend((rel / f).as_posix() for f in filenames if is_image_file(f))
    return sorted(found)


def _is_ancestor(path: str, of: str) -> bool:
    return of == path or of.startswith(path.rstrip(os.sep) + os.sep)
