"""Datasets whose images a list file names, each with the label that file gives.

Places205 (a CSV per split) and iNaturalist (a COCO-style JSON per split) are not class folders:
the label of an image is what its list says, never a position in a sorted folder listing. This
is the part they share — the items in the list's order, the images below one folder, and the
checks that a list names each image once and only images that are there.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image

from ijepa_eval.data.base import EvalDataset, few, open_image
from ijepa_eval.errors import DataError


@dataclass(frozen=True)
class Listing:
    """What a split's list file says: which images (relative to ``image_dir``), their labels,
    and the names of the classes those labels index."""

    path: Path
    image_dir: Path
    files: list[str]
    targets: list[int]
    classes: list[str]


class ListedImages(EvalDataset):
    """The images a split's list file names, in its order, with the labels it gives.

    A subclass says how to read its list (`read_listing`). A list naming an image twice is a
    `DataError`; so is one naming images that are not on disk (the count and the first few),
    unless ``skip_bad_images`` leaves them out as it leaves out unreadable ones.
    """

    splits: ClassVar[tuple[str, ...]] = ("train", "val")

    def __init__(self, root: str | os.PathLike[str], split: str = "train", **kw: Any) -> None:
        root = Path(root)
        if split not in self.splits:
            known = " or ".join(self.splits)
            raise DataError(f"unknown {self.adapter} split {split!r}; use {known}")
        listed = self.read_listing(root, split)
        if not listed.files:
            raise DataError(f"{listed.path} names no images")
        twice = [name for name, n in Counter(listed.files).items() if n > 1]
        if twice:
            raise DataError(
                f"{listed.path} names {len(twice)} image(s) more than once: {few(twice)}"
            )
        if not kw.get("skip_bad_images"):
            missing = missing_files(listed.image_dir, listed.files)
            if missing:
                raise DataError(
                    f"{listed.path} names {len(missing)} image(s) that are not in "
                    f"{listed.image_dir}: {few(missing)}; complete the download, or pass "
                    "skip_bad_images=True (--skip-bad-images) to leave them out"
                )
        self.image_dir = listed.image_dir
        self.listing = listed.path
        super().__init__(
            root=root,
            split=split,
            items=listed.files,
            targets=listed.targets,
            classes=listed.classes,
            **kw,
        )

    @classmethod
    def read_listing(cls, root: Path, split: str) -> Listing:
        """Read split ``split``'s list file under ``root``; malformed ones are a `DataError`."""
        raise NotImplementedError

    def load_image(self, item: str) -> Image.Image:
        return open_image(self.image_dir / item)

    def item_files(self, item: str) -> tuple[Path]:
        return (self.image_dir / item,)

    def source_files(self) -> tuple[Path]:
        return (self.listing,)


def relative_path(text: str) -> str | None:
    """``text`` if it is a plain relative POSIX path (``a/abbey/00000001.jpg``), else None:
    empty, absolute, a Windows path, an empty, ``.`` or ``..`` part (nothing climbs out of the
    folder). Checked, not normalised: cheap enough for millions of lines."""
    if not text or text.startswith("/") or "\\" in text:
        return None
    if any(part in ("", ".", "..") for part in text.split("/")):
        return None
    return text


def missing_files(folder: Path, files: Sequence[str]) -> list[str]:
    """The ``files`` (relative POSIX paths) that ``folder`` does not hold, in list order.

    One directory listing per sub-folder rather than one ``stat`` per file: iNaturalist's
    437,513 training images sit in 8,142 folders.
    """
    listed: dict[str, set[str]] = {}
    missing = []
    for name in files:
        parent, _, base = name.rpartition("/")
        if parent not in listed:
            listed[parent] = _names_in(folder / parent)
        if base not in listed[parent]:
            missing.append(name)
    return missing


def _names_in(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder)}
    except OSError:  # no such folder (or not one): everything listed in it is missing
        return set()
