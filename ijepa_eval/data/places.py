"""``places205``: Places205 as released — the 256×256 images and the train/val split CSVs.

Layout (``ROOT`` holds both folders of the two release archives)::

    ROOT/data/vision/torralba/deeplearning/images256/a/abbey/00000001.jpg
    ROOT/trainvalsplit_places205/train_places205.csv
    ROOT/trainvalsplit_places205/val_places205.csv

Each CSV line is ``relative/path.jpg label``, space-separated, the path relative to
``images256`` (``a/abbey/00000001.jpg 0``; a leading ``/`` is accepted too). The label is the
CSV's integer, never a position in the sorted folders, and items keep the CSV's line order.
A label's name is its image folder without the one-letter folder above it (``abbey``,
``swimming_pool/indoor``). Both CSVs are read for the class list, so train and val share one
label space; it must be 0..K-1 for K categories, one label per category (the release has 205).
"""

from __future__ import annotations

import os
from pathlib import Path

from ijepa_eval.data.base import few, require_dir
from ijepa_eval.data.listed import ListedImages, Listing, relative_path
from ijepa_eval.errors import DataError

IMAGES = Path("data/vision/torralba/deeplearning/images256")
SPLITS_DIR = "trainvalsplit_places205"


def split_csv(root: Path, split: str) -> Path:
    return root / SPLITS_DIR / f"{split}_places205.csv"


class Places205(ListedImages):
    adapter = "places205"
    format = "Places205 (images256/<l>/<category>/*.jpg + trainvalsplit_places205/*.csv)"

    @classmethod
    def read_listing(cls, root: Path, split: str) -> Listing:
        hint = f"pass the folder holding data/ and {SPLITS_DIR}/"
        image_dir = require_dir(root / IMAGES, "Places205 image folder", hint)
        lists = {
            s: read_split_csv(split_csv(root, s))
            for s in cls.splits
            if s == split or split_csv(root, s).is_file()
        }
        classes = class_names(lists, root / SPLITS_DIR)
        return Listing(split_csv(root, split), image_dir, *lists[split], classes)

    @classmethod
    def available_splits(cls, root: str | os.PathLike[str]) -> list[str]:
        root = Path(root)
        if not (root / IMAGES).is_dir():
            return []
        return [s for s in cls.splits if split_csv(root, s).is_file()]


def read_split_csv(path: Path) -> tuple[list[str], list[int]]:
    """``(image paths, labels)`` of a split CSV, in line order; blank lines are skipped."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(
            f"Places205 split file {path} does not exist; is {path.parent.parent} the Places205 "
            f"folder ({SPLITS_DIR}/ beside data/)?"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read Places205 split file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a Places205 split file: not UTF-8 text ({exc})") from None
    files, labels = [], []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        name = relative_path(fields[0].removeprefix("/")) if len(fields) == 2 else None
        if name is None or not (fields[1].isascii() and fields[1].isdigit()):
            raise DataError(
                f"{path}:{number}: expected 'relative/path.jpg label' (a path inside images256 "
                f"and a class number), found {line.strip()[:80]!r}"
            )
        files.append(name)
        labels.append(int(fields[1]))
    return files, labels


def category(folder: str) -> str:
    """The category an image folder names: ``a/abbey`` → ``abbey``,
    ``s/swimming_pool/indoor`` → ``swimming_pool/indoor``."""
    parts = folder.split("/")
    if len(parts) > 1 and len(parts[0]) == 1:
        parts = parts[1:]
    return "/".join(parts) or "."


def class_names(lists: dict[str, tuple[list[str], list[int]]], where: Path) -> list[str]:
    """Label → category name over every split read: one category per label and one label per
    category, labels 0..K-1, so every split shares the label space."""
    folder_of: dict[int, str] = {}  # one image folder per label: cheap on 2.4M lines
    for files, labels in lists.values():
        for name, label in zip(files, labels, strict=True):
            folder = name.rpartition("/")[0]
            known = folder_of.setdefault(label, folder)
            if known != folder and category(known) != category(folder):
                raise DataError(
                    f"{where}: label {label} is given to two categories, "
                    f"{category(known)!r} and {category(folder)!r} ({name})"
                )
    names = {label: category(folder) for label, folder in folder_of.items()}
    labels_of: dict[str, list[int]] = {}
    for label, name in sorted(names.items()):
        labels_of.setdefault(name, []).append(label)
    shared = {name: labels for name, labels in labels_of.items() if len(labels) > 1}
    if shared:
        name, labels = next(iter(shared.items()))
        raise DataError(f"{where}: category {name!r} has several labels: {labels}")
    beyond = [str(label) for label in sorted(names) if label >= len(names)]
    if beyond:
        raise DataError(
            f"{where}: labels must be 0..{len(names) - 1} for the {len(names)} categories "
            f"listed; out of range: {few(beyond)}"
        )
    return [names[i] for i in range(len(names))]
