"""places205 and inat18: hand-made trees in the releases' layouts, labels exactly as the files say.

Each tree has a few categories whose labels are not their folder order, CSV lines that are not
sorted by class, and JSON lists (categories, images, annotations) each in its own shuffled
order, with image ids that are not positions. Every image is a solid colour that says which
file it is, so a label or an image attached to the wrong item shows.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data import load_dataset
from ijepa_eval.data.detect import detect_format
from ijepa_eval.data.places import IMAGES
from ijepa_eval.data.synth import as_inat18, as_places205, generate_classes
from ijepa_eval.errors import DataError

runner = CliRunner()

# Places205: (CSV path, label), deliberately not in label or folder order; a leading "/" is
# accepted. Labels: bar 0, canyon 1, abbey 2 (sorted folders would say abbey 0, bar 1, canyon 2).
PLACES_TRAIN = [
    ("c/canyon/00000002.jpg", 1),
    ("a/abbey/00000001.jpg", 2),
    ("b/bar/00000001.jpg", 0),
    ("/a/abbey/00000002.jpg", 2),
    ("s/swimming_pool/indoor/00000001.jpg", 3),
    ("c/canyon/00000001.jpg", 1),
    ("b/bar/00000002.jpg", 0),
]
PLACES_VAL = [("b/bar/00000003.jpg", 0), ("a/abbey/00000003.jpg", 2), ("c/canyon/00000003.jpg", 1)]


def colour(name: str) -> tuple[int, int, int]:
    """A colour that identifies a file (solid, so JPEG keeps it within a level or two)."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(name))
    return tuple(int(v) for v in np.random.default_rng(seed).integers(20, 236, 3))


def write_image(path: Path, name: str) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour(name)).save(path, "JPEG", quality=95)


def places(root: Path, train=PLACES_TRAIN, val=PLACES_VAL, images: bool = True) -> Path:
    splits = root / "trainvalsplit_places205"
    splits.mkdir(parents=True)
    for split, lines in (("train", train), ("val", val)):
        text = "".join(f"{path} {label}\n" for path, label in lines)
        (splits / f"{split}_places205.csv").write_text(text)
        for path, _ in lines:
            if images:
                write_image(root / IMAGES / path.lstrip("/"), path.lstrip("/"))
    (root / IMAGES).mkdir(parents=True, exist_ok=True)
    return root


def same_colour(image, name: str) -> bool:
    return bool(np.abs(np.asarray(image, dtype=int) - colour(name)).max() <= 3)


def test_places205_labels_are_the_csvs(tmp_path: Path) -> None:
    root = places(tmp_path / "places")
    train = load_dataset("places205", root, "train")
    assert train.ids() == [path.lstrip("/") for path, _ in PLACES_TRAIN]  # the CSV's order
    assert train.targets == [label for _, label in PLACES_TRAIN]
    assert train.classes == ["bar", "canyon", "abbey", "swimming_pool/indoor"]
    for i, (path, label) in enumerate(PLACES_TRAIN):
        image, target = train[i]
        assert target == label and same_colour(image, path.lstrip("/"))
    val = load_dataset("places205", root, "val")
    assert val.targets == [0, 2, 1] and val.classes == train.classes  # one label space
    assert val.label_histogram() == {"bar": 1, "canyon": 1, "abbey": 1, "swimming_pool/indoor": 0}
    assert detect_format(root) == "places205"


def test_places205_from_the_command_line(tmp_path: Path) -> None:
    root = places(tmp_path / "places")
    result = runner.invoke(app, ["data", "info", str(root), "--json"])
    assert result.exit_code == 0, result.output
    splits = {info["split"]: info for info in json.loads(result.output)}
    assert splits["train"]["size"] == 7 and splits["val"]["size"] == 3
    assert splits["train"]["label_histogram"]["abbey"] == 2


@pytest.mark.parametrize(
    ("train", "says"),
    [
        ([("a/abbey/1.jpg", 1), ("b/bar/1.jpg", "x")], r"train_places205.csv:2: expected"),
        ([("a/abbey/1.jpg", -1)], r":1: expected 'relative/path.jpg label'"),
        ([("a/abbey/1.jpg 0", 1)], r":1: expected"),  # three fields
        ([("../abbey/1.jpg", 0)], r":1: expected"),  # out of images256
        ([("a/abbey/1.jpg", 0), ("a/abbey/1.jpg", 0)], r"names 1 image\(s\) more than once"),
        ([("a/abbey/1.jpg", 1), ("b/bar/1.jpg", 1)], "label 1 is given to two categories"),
        ([("a/abbey/1.jpg", 0), ("a/abbey/2.jpg", 1)], r"'abbey' has several labels: \[0, 1\]"),
        ([("a/abbey/1.jpg", 0), ("b/bar/1.jpg", 7)], r"labels must be 0..1 .* out of range: 7"),
    ],
)
def test_places205_bad_csv_lines(tmp_path: Path, train: list, says: str) -> None:
    root = places(tmp_path / "p", train=train, val=[])
    with pytest.raises(DataError, match=says):
        load_dataset("places205", root, "train")


def test_places205_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Places205 image folder .* does not exist"):
        load_dataset("places205", tmp_path, "train")
    root = places(tmp_path / "p")
    with pytest.raises(DataError, match="unknown places205 split 'test'"):
        load_dataset("places205", root, "test")
    (root / "trainvalsplit_places205" / "val_places205.csv").unlink()
    with pytest.raises(DataError, match="val_places205.csv does not exist"):
        load_dataset("places205", root, "val")
    assert load_dataset("places205", root, "train").num_classes == 4  # train alone still reads


def test_listed_but_absent_images_are_an_error_or_left_out(tmp_path: Path) -> None:
    root = places(tmp_path / "p")
    gone = ["b/bar/00000001.jpg", "c/canyon/00000002.jpg"]
    for path in gone:
        (root / IMAGES / path).unlink()
    with pytest.raises(DataError, match=r"names 2 image\(s\) that are not in .*canyon/00000002"):
        load_dataset("places205", root, "train")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        kept = load_dataset("places205", root, "train", skip_bad_images=True)
    assert len(kept) == 5 and sorted(item for item, _ in kept.skipped) == sorted(gone)
    assert kept.targets == [2, 2, 3, 1, 0]


# --- iNaturalist 2018 -------------------------------------------------------------------------


def inat_doc() -> dict:
    """A val2018.json: category ids shuffled in the list, image ids that are not positions,
    annotations in another order than the images."""
    images = [
        (31, "train_val2018/Aves/2/aa01.jpg"),
        (7, "train_val2018/Plantae/0/bb02.jpg"),
        (19, "train_val2018/Insecta/1/cc03.jpg"),
        (4, "train_val2018/Aves/2/dd04.jpg"),
        (12, "train_val2018/Plantae/3/ee05.jpg"),
    ]
    category = {31: 2, 7: 0, 19: 1, 4: 2, 12: 3}
    return {
        "info": {"year": 2018},
        "categories": [
            {"id": 2, "name": "Turdus migratorius", "supercategory": "Aves"},
            {"id": 0, "name": "Quercus alba", "supercategory": "Plantae"},
            {"id": 3, "name": "Quercus alba", "supercategory": "Plantae"},  # a repeated name
            {"id": 1, "name": "Apis mellifera", "supercategory": "Insecta"},
        ],
        "images": [{"id": i, "file_name": name, "width": 8, "height": 8} for i, name in images],
        "annotations": [
            {"id": n, "image_id": i, "category_id": category[i]}
            for n, i in enumerate([12, 4, 31, 19, 7])
        ],
    }


def inat(root: Path, doc: dict | None = None, raw: bytes | None = None) -> Path:
    root.mkdir(parents=True)
    doc = inat_doc() if doc is None else doc
    for image in inat_doc()["images"]:
        write_image(root / image["file_name"], image["file_name"])
    train = inat_doc()
    (root / "train2018.json").write_text(json.dumps(train))
    (root / "val2018.json").write_bytes(json.dumps(doc).encode() if raw is None else raw)
    return root


def test_inat18_labels_are_the_category_ids(tmp_path: Path) -> None:
    root = inat(tmp_path / "inat")
    ds = load_dataset("inat18", root, "val")
    doc = inat_doc()
    assert ds.ids() == [image["file_name"] for image in doc["images"]]  # the JSON's order
    label_of = {a["image_id"]: a["category_id"] for a in doc["annotations"]}
    assert ds.targets == [label_of[image["id"]] for image in doc["images"]] == [2, 0, 1, 2, 3]
    # the class index is the category id; names from categories[].name
    assert ds.classes == [
        "Quercus alba (0)",
        "Apis mellifera",
        "Turdus migratorius",
        "Quercus alba (3)",
    ]
    for i, image in enumerate(doc["images"]):
        picture, target = ds[i]
        assert target == label_of[image["id"]] and same_colour(picture, image["file_name"])
    assert detect_format(root) == "inat18"
    assert load_dataset("inat18", root, "train").num_classes == 4


def _with(change):
    doc = inat_doc()
    change(doc)
    return doc


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([1, 2], "expected an object with 'images', 'annotations' and 'categories'"),
        (_with(lambda d: d.pop("annotations")), "'annotations' is missing, not a list"),
        (_with(lambda d: d.update(images={})), "'images' is an object, not a list"),
        (_with(lambda d: d["images"].append(3)), r"images\[5\] is a number, not an object"),
        (_with(lambda d: d["categories"][0].update(id=5)), r"0..3 .* missing: 2"),
        (
            _with(lambda d: d["categories"][0].update(id=0)),
            "category id 0 is listed more than once",
        ),
        (
            _with(lambda d: d["categories"][0].update(id="2")),
            r'has id "2"; expected a whole number',
        ),
        (_with(lambda d: d["annotations"][0].update(category_id=4)), "category_id 4, out of range"),
        (_with(lambda d: d["annotations"][0].update(category_id=True)), "category_id true"),
        (
            _with(lambda d: d["annotations"][0].update(image_id=99)),
            "image 99, which 'images' lacks",
        ),
        (_with(lambda d: d["annotations"].pop(0)), r"1 image\(s\) have no annotation: .*ee05.jpg"),
        (
            _with(lambda d: d["annotations"].append(dict(d["annotations"][0]))),
            "more than one annotation",
        ),
        (
            _with(lambda d: d["images"][0].update(file_name="/abs/a.jpg")),
            'has file_name "/abs/a.jpg"',
        ),
        (_with(lambda d: d["images"][0].update(file_name="../a.jpg")), 'has file_name "../a.jpg"'),
        (_with(lambda d: d["images"][1].update(id=31)), "image id 31 is listed more than once"),
        (_with(lambda d: d["images"][0].update(file_name="train_val2018/x.jpg")), "not in"),
    ],
)
def test_inat18_malformed_json(tmp_path: Path, doc, says: str) -> None:
    root = inat(tmp_path / "inat", doc)
    with pytest.raises(DataError, match=says):
        load_dataset("inat18", root, "val")


def test_inat18_unreadable_files(tmp_path: Path) -> None:
    root = inat(tmp_path / "inat", raw=b'{"images": [')
    with pytest.raises(DataError, match="is not a COCO-style iNaturalist file: not valid JSON"):
        load_dataset("inat18", root, "val")
    (root / "val2018.json").unlink()
    with pytest.raises(DataError, match="val2018.json does not exist; pass the folder holding"):
        load_dataset("inat18", root, "val")
    result = runner.invoke(app, ["data", "info", f"inat18:{root}", "--split", "val"])
    assert result.exit_code == 1 and "val2018.json does not exist" in result.stderr


# --- the synthetic writers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return generate_classes(
        tmp_path_factory.mktemp("classes"), classes=4, per_class=3, val_per_class=2, size=16,
        progress=False,
    )  # fmt: skip


@pytest.mark.parametrize(("write", "name"), [(as_places205, "places205"), (as_inat18, "inat18")])
def test_writers_keep_each_image_with_its_class(folder: Path, tmp_path: Path, write, name) -> None:
    label_of = write(folder, tmp_path / name, seed=3)
    assert sorted(label_of.values()) == [0, 1, 2, 3] and list(label_of.values()) != [0, 1, 2, 3]
    source = load_dataset("imagefolder", folder, "val")
    pixels = np.stack([np.asarray(image, dtype=float) for image, _ in source])
    ds = load_dataset(name, tmp_path / name, "val")
    assert len(ds) == len(source) and ds.num_classes == 4
    assert ds.targets != sorted(ds.targets)  # lines and lists are shuffled
    for image, target in ds:  # the source image it was written from
        distance = np.abs(pixels - np.asarray(image, dtype=float)).mean(axis=(1, 2, 3))
        nearest, second = np.sort(distance)[:2]
        assert nearest < 12 and second > 2 * nearest  # JPEG noise vs another image
        assert target == label_of[source.classes[source.targets[int(distance.argmin())]]]
    with pytest.raises(DataError, match="not an empty folder"):
        write(folder, tmp_path / name)
