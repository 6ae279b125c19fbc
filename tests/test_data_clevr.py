"""CLEVR adapters: VTAB's labels on hand-written scenes, VTAB-1k splits, mismatched scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ijepa_eval.data import load_dataset
from ijepa_eval.data.clevr_labels import count_label, distance_label
from ijepa_eval.errors import DataError


def scene(depths: list[float], index: int = 0, split: str = "train") -> dict:
    """A CLEVR scene record with one object per depth (other fields as in the release)."""
    objects = [
        {
            "pixel_coords": [10 + i, 20 + i, d],
            "3d_coords": [0.0, 0.0, 0.35],
            "shape": "cube",
            "color": "red",
            "size": "large",
            "material": "rubber",
        }
        for i, d in enumerate(depths)
    ]
    name = f"CLEVR_{split}_{index:06d}.png"
    return {"image_index": index, "image_filename": name, "split": split, "objects": objects}


def write_clevr(root: Path, split: str, depth_lists: list[list[float]]) -> list[dict]:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "scenes").mkdir(parents=True, exist_ok=True)
    scenes = [scene(depths, i, split) for i, depths in enumerate(depth_lists)]
    for s in scenes:
        pixel = np.full((4, 4, 3), s["image_index"] % 256, np.uint8)
        Image.fromarray(pixel).save(root / "images" / split / s["image_filename"])
    doc = {"info": {"split": split, "version": "1.0"}, "scenes": scenes}
    (root / "scenes" / f"CLEVR_{split}_scenes.json").write_text(json.dumps(doc))
    return scenes


# (closest depth, VTAB distance class): the threshold itself falls in the lower class.
DISTANCE_CASES = [
    (0.5, 0),
    (7.9, 0),
    (8.0, 0),
    (8.0001, 1),
    (8.5, 1),
    (8.75, 2),
    (9.0, 2),
    (9.5, 3),
    (9.9999, 4),
    (10.0, 4),
    (10.0001, 5),
    (13.0, 5),
    (100.0, 5),
]


@pytest.mark.parametrize(("depth", "label"), DISTANCE_CASES)
def test_distance_label_on_thresholds(depth: float, label: int) -> None:
    # The closest object is not listed first: the label must take the minimum over objects.
    assert distance_label(scene([depth + 3.0, depth, depth + 1.0])) == label


@pytest.mark.parametrize("depth", [0.0, -1.0, 100.5])
def test_distance_outside_vtab_range_is_an_error(depth: float) -> None:
    with pytest.raises(DataError, match="outside VTAB's range"):
        distance_label(scene([depth, 200.0, 300.0]))


@pytest.mark.parametrize(("n", "label"), [(3, 0), (4, 1), (7, 4), (10, 7)])
def test_count_label(n: int, label: int) -> None:
    assert count_label(scene([9.0] * n)) == label


@pytest.mark.parametrize("n", [0, 2, 11])
def test_count_outside_3_to_10_is_an_error(n: int) -> None:
    with pytest.raises(DataError, match=f"has {n} objects"):
        count_label(scene([9.0] * n))


def test_adapters_read_hand_written_scenes(tmp_path: Path) -> None:
    lists = [[9.2, 8.0, 12.0], [10.0001, 11, 12, 13], [8.5] * 10, [10.0, 10.5, 11, 12, 13, 14]]
    write_clevr(tmp_path, "val", lists)
    count = load_dataset("clevr_count", tmp_path, "val")
    dist = load_dataset("clevr_dist", tmp_path, "val")
    assert count.targets == [0, 1, 7, 3]
    assert dist.targets == [0, 5, 1, 4]
    assert count.num_classes == 8 and dist.num_classes == 6
    assert count.classes[0] == "3" and dist.classes == [
        "(0, 8]", "(8, 8.5]", "(8.5, 9]", "(9, 9.5]", "(9.5, 10]", "(10, 100]"
    ]  # fmt: skip
    image, target = dist[1]
    assert image.mode == "RGB" and image.size == (4, 4) and target == 5
    assert np.asarray(image)[0, 0, 0] == 1  # the pixels of CLEVR_val_000001.png
    assert count.ids() == [f"CLEVR_val_{i:06d}.png" for i in range(4)]


def test_vtab_1k_splits_are_fixed_and_disjoint(tmp_path: Path) -> None:
    write_clevr(tmp_path, "train", [[9.0, 9.5, 10.5]] * 1000)
    t800 = load_dataset("clevr_count", tmp_path, "train800")
    v200 = load_dataset("clevr_count", tmp_path, "val200")
    both = load_dataset("clevr_dist", tmp_path, "train800val200")
    assert (len(t800), len(v200), len(both)) == (800, 200, 1000)
    assert not set(t800.ids()) & set(v200.ids())
    assert set(t800.ids()) | set(v200.ids()) == set(both.ids())
    # Pinned: the rule is PCG64(0).permutation(n_train), positions 800..999, in image order.
    assert v200.ids()[:4] == [
        "CLEVR_train_000001.png",
        "CLEVR_train_000003.png",
        "CLEVR_train_000007.png",
        "CLEVR_train_000011.png",
    ]
    assert load_dataset("clevr_count", tmp_path, "val200").ids() == v200.ids()


def test_vtab_split_needs_1000_train_scenes(tmp_path: Path) -> None:
    write_clevr(tmp_path, "train", [[9.0] * 3] * 5)
    with pytest.raises(DataError, match="needs at least 1000 train scenes; found 5"):
        load_dataset("clevr_count", tmp_path, "train800")


def test_scenes_naming_a_missing_image(tmp_path: Path) -> None:
    write_clevr(tmp_path, "val", [[9.0] * 3] * 3)
    (tmp_path / "images" / "val" / "CLEVR_val_000001.png").unlink()
    with pytest.raises(
        DataError, match=r"CLEVR_val_scenes\.json does not match .*CLEVR_val_000001"
    ):
        load_dataset("clevr_count", tmp_path, "val")


def test_images_without_scene(tmp_path: Path) -> None:
    write_clevr(tmp_path, "val", [[9.0] * 3] * 3)
    Image.new("RGB", (4, 4)).save(tmp_path / "images" / "val" / "CLEVR_val_000007.png")
    with pytest.raises(DataError, match=r"3 scenes, 4 images.*no scene: CLEVR_val_000007"):
        load_dataset("clevr_dist", tmp_path, "val")


def test_missing_or_broken_scenes_file(tmp_path: Path) -> None:
    write_clevr(tmp_path, "val", [[9.0] * 3])
    path = tmp_path / "scenes" / "CLEVR_val_scenes.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="CLEVR_val_scenes.json is not a CLEVR scenes file"):
        load_dataset("clevr_count", tmp_path, "val")
    path.unlink()
    with pytest.raises(DataError, match="CLEVR_val_scenes.json does not exist"):
        load_dataset("clevr_count", tmp_path, "val")


def test_unknown_split(tmp_path: Path) -> None:
    write_clevr(tmp_path, "val", [[9.0] * 3])
    with pytest.raises(DataError, match="unknown CLEVR split 'test'"):
        load_dataset("clevr_count", tmp_path, "test")
