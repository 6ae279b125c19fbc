"""An image folder written again in the Places205 or iNaturalist 2018 release layout.

`as_places205` and `as_inat18` take an ImageFolder (``src/{train,val}/<class>/<image>``, e.g.
what `generate_classes` draws) and write its images as JPEG files where the release puts them,
with the release's CSV or COCO-style JSON. The labels are a seeded permutation of the folder
order, and the CSV lines, the JSON's categories, images and annotations are each shuffled, so
nothing downstream can lean on folder or file order: the label read back must be the one the
file says. Both return the label (category id) each source class was given.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import numpy as np

from ijepa_eval.atomic import write_bytes, write_json, write_text
from ijepa_eval.data.base import open_image
from ijepa_eval.data.imagefolder import ImageFolder
from ijepa_eval.data.inat import split_json
from ijepa_eval.data.places import IMAGES, Places205, split_csv
from ijepa_eval.errors import DataError

KINGDOMS = ("Plantae", "Insecta", "Aves", "Reptilia", "Mammalia", "Fungi")


def as_places205(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, seed: int = 0
) -> dict[str, int]:
    """Write ``out`` in the Places205 layout: ``images256/<l>/<category>/NNNNNNNN.jpg`` and
    ``trainvalsplit_places205/{train,val}_places205.csv`` (lines shuffled)."""
    splits, out = _read(src, out)
    rng = np.random.default_rng(seed)
    classes = splits["train"].classes
    label_of = _permuted(classes, rng)
    written = dict.fromkeys(classes, 0)
    for split, ds in splits.items():
        lines = []
        for item, target in zip(ds.items, ds.targets, strict=True):
            name = classes[target]
            relative = f"{_category(name)[0]}/{_category(name)}/{written[name]:08d}.jpg"
            written[name] += 1
            write_bytes(out / IMAGES / relative, _jpeg(ds.split_dir / item))
            lines.append(f"{relative} {label_of[name]}\n")
        write_text(split_csv(out, split), "".join(lines[i] for i in rng.permutation(len(lines))))
    return label_of


def as_inat18(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, seed: int = 0
) -> dict[str, int]:
    """Write ``out`` in the iNaturalist 2018 layout: ``{train,val}2018.json`` and
    ``train_val2018/<kingdom>/<category id>/<hex>.jpg``, with image ids that are not positions
    and categories, images and annotations each in their own shuffled order."""
    splits, out = _read(src, out)
    rng = np.random.default_rng(seed)
    classes = splits["train"].classes
    id_of = _permuted(classes, rng)
    kingdom = {name: KINGDOMS[k % len(KINGDOMS)] for k, name in enumerate(classes)}
    categories = [
        {"id": id_of[classes[k]], "name": classes[k], "supercategory": kingdom[classes[k]]}
        for k in rng.permutation(len(classes))
    ]
    image_ids = iter((rng.permutation(sum(map(len, splits.values()))) + 100).tolist())
    for split, ds in splits.items():
        images, annotations = [], []
        for item, target in zip(ds.items, ds.targets, strict=True):
            name = classes[target]
            digest = hashlib.sha256(f"{split}/{item}".encode()).hexdigest()[:32]
            relative = f"train_val2018/{kingdom[name]}/{id_of[name]}/{digest}.jpg"
            write_bytes(out / relative, _jpeg(ds.split_dir / item))
            image_id = next(image_ids)
            images.append({"id": image_id, "file_name": relative})
            annotations.append({"image_id": image_id, "category_id": id_of[name]})
        annotations = [
            {"id": j, **annotations[i]} for j, i in enumerate(rng.permutation(len(images)))
        ]
        doc = {
            "info": {"description": f"synthetic, in the iNaturalist 2018 layout, from {src}"},
            "images": [images[i] for i in rng.permutation(len(images))],
            "annotations": annotations,
            "categories": categories,
        }
        write_json(split_json(out, split), doc)
    return id_of


def _read(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> tuple[dict, Path]:
    """The source's train and val splits (one class list), and ``out``, which must be new."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not an empty folder; give a new one")
    splits = {split: ImageFolder(src, split) for split in Places205.splits}
    if splits["train"].classes != splits["val"].classes:
        raise DataError(f"{src}: train/ and val/ hold different class folders")
    return splits, out


def _permuted(classes: list[str], rng: np.random.Generator) -> dict[str, int]:
    """Each class's label: a seeded permutation, so label order is not folder order."""
    labels = rng.permutation(len(classes)).tolist()
    return dict(zip(classes, labels, strict=True))


def _category(name: str) -> str:
    """A Places-like category: synth-classes' ``class_03_ring_solid_warm`` → ``ring_solid_warm``."""
    return re.sub(r"^class_\d+_", "", name).lower()


def _jpeg(path: Path) -> bytes:
    buf = io.BytesIO()
    open_image(path).save(buf, format="JPEG", quality=95)
    return buf.getvalue()
