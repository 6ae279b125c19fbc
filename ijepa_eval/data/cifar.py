"""``cifar10`` and ``cifar100``: the python-pickle release, as torchvision downloads it.

``root`` is the folder holding ``cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``,
``batches.meta``) or ``cifar-100-python`` (``train``, ``test``, ``meta``), or that folder itself.
The pickles are read with `safe_pickle`, never a general unpickler.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ijepa_eval.data.base import EvalDataset
from ijepa_eval.data.safe_pickle import load_array_pickle
from ijepa_eval.errors import DataError


class _Cifar(EvalDataset):
    folder: ClassVar[str]
    split_files: ClassVar[dict[str, list[str]]]
    meta_file: ClassVar[str]

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        label: str | None = None,
        **kw: Any,
    ) -> None:
        root = Path(root)
        base = root if root.name == self.folder else root / self.folder
        if not base.is_dir():
            raise DataError(f"{base} does not exist; pass the folder that holds {self.folder}")
        if split not in self.split_files:
            raise DataError(f"unknown {self.adapter} split {split!r}; use one of: train, test")
        self.files = [base / name for name in self.split_files[split]]
        self.meta_path = base / self.meta_file
        label_key, names_key = self.label_keys(label)
        names = _field(_read(self.meta_path), names_key, self.meta_path)
        images, targets = [], []
        for path in self.files:
            batch = _read(path)
            data = np.asarray(_field(batch, "data", path))
            labels = list(_field(batch, label_key, path))
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise DataError(f"{path}: 'data' is {data.dtype} {data.shape}, not uint8 (N, 3072)")
            if len(labels) != len(data):
                raise DataError(f"{path}: {len(labels)} labels for {len(data)} images")
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            targets.extend(int(t) for t in labels)
        if targets and not 0 <= min(targets) <= max(targets) < len(names):
            raise DataError(
                f"{base}: labels fall outside the {len(names)} classes in {self.meta_path}"
            )
        self.images = np.concatenate(images)
        super().__init__(
            root=root,
            split=split,
            items=range(len(self.images)),
            targets=targets,
            classes=[str(n) for n in names],
            **kw,
        )

    def label_keys(self, label: str | None) -> tuple[str, str]:
        if label is not None:
            raise DataError(f"{self.adapter} has one label set; drop label={label!r}")
        return "labels", "label_names"

    @classmethod
    def available_splits(cls, root: str | os.PathLike[str]) -> list[str]:
        root = Path(root)
        base = root if root.name == cls.folder else root / cls.folder
        return [
            s for s, files in cls.split_files.items() if all((base / f).is_file() for f in files)
        ]

    def load_image(self, item: int) -> Image.Image:
        return Image.fromarray(self.images[item])

    def source_files(self) -> list[Path]:
        return [self.meta_path, *self.files]


class Cifar10(_Cifar):
    adapter = "cifar10"
    format = "CIFAR-10 python batches (cifar-10-batches-py)"
    folder = "cifar-10-batches-py"
    split_files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    meta_file = "batches.meta"


class Cifar100(_Cifar):
    """``label="fine"`` (100 classes, the default) or ``"coarse"`` (20 superclasses)."""

    adapter = "cifar100"
    format = "CIFAR-100 python pickles (cifar-100-python)"
    folder = "cifar-100-python"
    split_files = {"train": ["train"], "test": ["test"]}
    meta_file = "meta"

    def label_keys(self, label: str | None) -> tuple[str, str]:
        label = label or "fine"
        if label not in ("fine", "coarse"):
            raise DataError(f"cifar100 label must be 'fine' or 'coarse', not {label!r}")
        return f"{label}_labels", f"{label}_label_names"


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"CIFAR file {path} is missing; is the download complete?")
    obj = load_array_pickle(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not a CIFAR dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise DataError(f"{path} has no {key!r} entry (it has: {', '.join(map(str, batch))})")
    return batch[key]
