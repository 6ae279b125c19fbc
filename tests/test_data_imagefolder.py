"""imagefolder adapter: layout, bad input, skipping unreadable images, fingerprints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ijepa_eval.data import load_dataset
from ijepa_eval.errors import DataError


def make_folder(root: Path, layout: dict[str, dict[str, int]], size: int = 8) -> None:
    """``{split: {class: n_images}}`` of tiny PNGs whose pixels encode class and index."""
    for split, classes in layout.items():
        for c, (name, n) in enumerate(sorted(classes.items())):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.full((size, size, 3), (c * 50, i * 10, 7), np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{name}_{i}.png")


def test_classes_sorted_and_samples_ordered(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": {"b_dog": 2, "a_cat": 3}})
    (tmp_path / "train" / "a_cat" / "notes.txt").write_text("not an image")
    ds = load_dataset("imagefolder", tmp_path, "train")
    assert ds.classes == ["a_cat", "b_dog"] and ds.num_classes == 2
    assert ds.targets == [0, 0, 0, 1, 1]
    assert ds.ids()[:2] == ["a_cat/a_cat_0.png", "a_cat/a_cat_1.png"]
    image, target = ds[4]
    assert target == 1 and image.mode == "RGB"
    assert tuple(np.asarray(image)[0, 0]) == (50, 10, 7)


def test_transform_is_applied(tmp_path: Path) -> None:
    make_folder(tmp_path, {"val": {"x": 1}})
    ds = load_dataset("imagefolder", tmp_path, "val", transform=lambda im: im.size)
    assert ds[0] == ((8, 8), 0)


def test_missing_split_folder(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": {"a": 1}})
    with pytest.raises(
        DataError, match=r"split folder .*val does not exist \(splits in .*: train\)"
    ):
        load_dataset("imagefolder", tmp_path, "val")


def test_empty_class_folder(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": {"a": 1}})
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(DataError, match=r"class folder .*train/empty holds no images"):
        load_dataset("imagefolder", tmp_path, "train")


def test_corrupt_image_error_names_the_file(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": {"a": 2, "b": 2}})
    bad = tmp_path / "train" / "b" / "b_0.png"
    bad.write_bytes(bad.read_bytes()[:30])  # a truncated PNG
    ds = load_dataset("imagefolder", tmp_path, "train")
    with pytest.raises(DataError, match=r"cannot read image .*b/b_0\.png.*skip_bad_images"):
        ds[2]


def test_skip_bad_images_leaves_them_out_and_says_which(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": {"a": 2, "b": 2}})
    (tmp_path / "train" / "a" / "a_1.png").write_bytes(b"\x89PNG garbage")
    ds = load_dataset("imagefolder", tmp_path, "train", skip_bad_images=True)
    assert ds.ids() == ["a/a_0.png", "b/b_0.png", "b/b_1.png"]
    assert ds.targets == [0, 1, 1]
    assert [item for item, _ in ds.skipped] == ["a/a_1.png"]
    assert "a_1.png" in ds.skipped[0][1]
    assert ds.describe()["skipped"][0]["id"] == "a/a_1.png"
    assert [ds[i][1] for i in range(len(ds))] == [0, 1, 1]


def test_fingerprint_is_stable_and_follows_the_files(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": {"a": 2, "b": 2}})
    first = load_dataset("imagefolder", tmp_path, "train").fingerprint()
    assert load_dataset("imagefolder", tmp_path, "train").fingerprint() == first
    target = tmp_path / "train" / "a" / "a_0.png"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched
    touched = load_dataset("imagefolder", tmp_path, "train").fingerprint()
    assert touched != first
    (tmp_path / "train" / "b" / "b_1.png").rename(tmp_path / "train" / "a" / "b_1.png")
    assert load_dataset("imagefolder", tmp_path, "train").fingerprint() not in (first, touched)


def test_content_hash_ignores_mtime_but_sees_bytes(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": {"a": 2}})
    content = load_dataset("imagefolder", tmp_path, "train").fingerprint(content_hash=True)
    target = tmp_path / "train" / "a" / "a_0.png"
    os.utime(target, ns=(0, 0))
    ds = load_dataset("imagefolder", tmp_path, "train")
    assert ds.fingerprint(content_hash=True) == content
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(target)
    assert load_dataset("imagefolder", tmp_path, "train").fingerprint(content_hash=True) != content
