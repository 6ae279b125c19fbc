"""``hf``: any Hugging Face `datasets` source with an image column and a label column.

``root`` is one of
- a folder written by ``save_to_disk`` (a ``DatasetDict`` or a single ``Dataset``, whose one
  split is called ``train`` unless it names its own),
- a ``.parquet`` / ``.arrow`` file (it becomes the requested split) or a folder of such files
  (splits inferred from the file names, as `datasets` does),
- a Hub id such as ``owner/name`` (``config`` and ``revision`` options); with
  ``HF_DATASETS_OFFLINE=1`` only the local cache is used.

Images are decoded here with PIL (``Image(decode=False)``), so a corrupt one is a `DataError`
naming its row, and pixels match what the ``imagefolder`` adapter reads from the same files.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from PIL import Image

from ijepa_eval.data.base import EvalDataset, open_image
from ijepa_eval.errors import DataError


class HFDataset(EvalDataset):
    adapter = "hf"
    format = "Hugging Face datasets"

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        image_column: str = "image",
        label_column: str = "label",
        config: str | None = None,
        revision: str | None = None,
        **kw: Any,
    ) -> None:
        import datasets

        table = _split(_open(root, split, config, revision), split, root)
        columns = list(table.column_names)
        for kind, column in (("image", image_column), ("label", label_column)):
            if column not in columns:
                raise DataError(
                    f"{root} split {split!r} has no {kind} column {column!r}; its columns are: "
                    f"{', '.join(columns)} (choose with image_column=/label_column=)"
                )
        if not isinstance(table.features[image_column], datasets.Image):
            raise DataError(
                f"column {image_column!r} of {root} is {table.features[image_column]!r}, "
                "not an image column"
            )
        targets, classes = _labels(table, label_column)
        self.image_column = image_column
        self.source = str(root)
        self.table = table.select_columns([image_column]).cast_column(
            image_column, datasets.Image(decode=False)
        )
        super().__init__(
            root=root,
            split=split,
            items=range(len(table)),
            targets=targets,
            classes=classes,
            **kw,
        )

    @classmethod
    def available_splits(
        cls, root: str | os.PathLike[str], config: str | None = None, revision: str | None = None
    ) -> list[str]:
        opened = _open(root, None, config, revision)
        return list(opened) if hasattr(opened, "keys") else [_single_split_name(opened)]

    def load_image(self, item: int) -> Image.Image:
        value = self.table[item][self.image_column]
        name = f"{self.source} split {self.split!r} row {item}" + (
            f" ({value['path']})" if value.get("path") else ""
        )
        if value.get("bytes") is not None:
            return open_image(io.BytesIO(value["bytes"]), name=name)
        if value.get("path"):
            return open_image(value["path"], name=name)
        raise DataError(f"{name} has no image")

    def source_files(self) -> list[Path]:
        return [Path(c["filename"]) for c in self.table.cache_files]

    def fingerprint_extra(self) -> str:
        return self.table._fingerprint


def _open(
    root: str | os.PathLike[str], split: str | None, config: str | None, revision: str | None
):
    """A `Dataset` or `DatasetDict` from a local folder/file or the Hub."""
    import datasets

    path = Path(root).expanduser()
    try:
        if path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json")):
            return datasets.load_from_disk(str(path))
        if path.is_file():
            builder = {".parquet": "parquet", ".arrow": "arrow"}.get(path.suffix.lower())
            if builder is None:
                raise DataError(f"{path} is not a .parquet or .arrow file")
            return datasets.load_dataset(builder, data_files={split or "train": str(path)})
        if path.is_dir():
            return datasets.load_dataset(str(path))
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable data; report them all
        raise DataError(f"cannot read Hugging Face dataset at {path}: {exc}") from None
    if _looks_like_path(str(root)):
        raise DataError(f"{root} does not exist (neither a local dataset nor a Hub id)")
    try:
        return datasets.load_dataset(str(root), name=config, revision=revision)
    except Exception as exc:  # no network, unknown id, missing config: all the user's to fix
        if datasets.config.HF_HUB_OFFLINE:
            hint = "HF_DATASETS_OFFLINE is set and it is not in the local cache"
        else:
            hint = "no network? set HF_DATASETS_OFFLINE=1 to use only the local cache"
        raise DataError(
            f"cannot load Hugging Face dataset {str(root)!r} ({hint}); download it where there "
            f"is network, or pass a save_to_disk folder or parquet/arrow files [{exc}]"
        ) from None


def _split(opened: Any, split: str, root: Any) -> Any:
    if hasattr(opened, "keys"):
        if split not in opened:
            raise DataError(f"{root} has no split {split!r}; its splits are: {', '.join(opened)}")
        return opened[split]
    own = _single_split_name(opened)
    if split != own:
        raise DataError(f"{root} holds one split, {own!r}; ask for that one, not {split!r}")
    return opened


def _single_split_name(table: Any) -> str:
    return str(table.split) if table.split else "train"


def _looks_like_path(root: str) -> bool:
    return (
        root.startswith((".", "/", "~")) or root.count("/") > 1 or os.sep in root.replace("/", "")
    )


def _labels(table: Any, column: str) -> tuple[list[int], list[str]]:
    """Class indices and names: a ClassLabel's names, else ints as they are, else sorted values."""
    import datasets

    feature = table.features[column]
    values = list(table[column])
    if isinstance(feature, datasets.ClassLabel):
        return [int(v) for v in values], list(feature.names)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if values and min(values) < 0:
            raise DataError(f"label column {column!r} holds negative values")
        return values, [str(i) for i in range(max(values, default=-1) + 1)]
    if all(isinstance(v, str) for v in values):
        names = sorted(set(values))
        index = {name: i for i, name in enumerate(names)}
        return [index[v] for v in values], names
    raise DataError(f"label column {column!r} must hold class ids, ClassLabel or strings")
