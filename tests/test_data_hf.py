"""hf adapter: save_to_disk folders and parquet files match the image folder they came from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from ijepa_eval.data import load_dataset
from ijepa_eval.errors import DataError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """3 classes of random 12 px images, PNG and JPEG mixed (JPEG decoding must agree too)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    for name, n in (("ant", 2), ("bee", 3), ("cow", 1)):
        (root / "train" / name).mkdir(parents=True)
        for i in range(n):
            pixels = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
            pixels.save(root / "train" / name / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


def as_table(folder: Path, split: str = "train") -> datasets.Dataset:
    """The folder's images (their encoded bytes) and labels as a `datasets` table."""
    ref = load_dataset("imagefolder", folder, split)
    paths = [ref.split_dir / item for item in ref.items]
    features = datasets.Features(
        {"img": datasets.Image(), "fine": datasets.ClassLabel(names=ref.classes)}
    )
    rows = {
        "img": [{"bytes": p.read_bytes(), "path": p.name} for p in paths],
        "fine": ref.targets,
    }
    return datasets.Dataset.from_dict(rows, features=features)


def assert_same_samples(a, b) -> None:
    assert len(a) == len(b) and a.classes == b.classes
    for i in range(len(a)):
        (image_a, label_a), (image_b, label_b) = a[i], b[i]
        assert label_a == label_b
        assert np.array_equal(np.asarray(image_a), np.asarray(image_b))


def test_save_to_disk_folder_matches_imagefolder(folder: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": as_table(folder)}).save_to_disk(str(saved))
    cols = {"image_column": "img", "label_column": "fine"}
    ds = load_dataset("hf", saved, "train", **cols)
    assert_same_samples(load_dataset("imagefolder", folder, "train"), ds)
    assert ds.fingerprint() == load_dataset("hf", saved, "train", **cols).fingerprint()


def test_parquet_file_and_single_dataset(folder: Path, tmp_path: Path) -> None:
    table = as_table(folder)
    table.to_parquet(str(tmp_path / "train.parquet"))
    table.save_to_disk(str(tmp_path / "single"))
    ref = load_dataset("imagefolder", folder, "train")
    for root in (tmp_path / "train.parquet", tmp_path / "single"):
        assert_same_samples(ref, load_dataset("hf", root, image_column="img", label_column="fine"))


def test_missing_column_lists_the_columns(folder: Path, tmp_path: Path) -> None:
    as_table(folder).save_to_disk(str(tmp_path / "single"))
    with pytest.raises(DataError, match=r"no image column 'image'; its columns are: img, fine"):
        load_dataset("hf", tmp_path / "single", label_column="fine")
    with pytest.raises(DataError, match=r"no label column 'label'; its columns are: img, fine"):
        load_dataset("hf", tmp_path / "single", image_column="img")


def test_unknown_split_lists_the_splits(folder: Path, tmp_path: Path) -> None:
    datasets.DatasetDict({"train": as_table(folder)}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"has no split 'val'; its splits are: train"):
        load_dataset("hf", tmp_path / "dd", "val", image_column="img", label_column="fine")


def test_corrupt_image_names_the_row(tmp_path: Path) -> None:
    rows = {"image": [{"bytes": b"not an image", "path": "x.png"}], "label": [0]}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "bad"))
    ds = load_dataset("hf", tmp_path / "bad")
    assert ds.classes == ["0"]
    with pytest.raises(DataError, match=r"cannot read image .*row 0 \(x\.png\)"):
        ds[0]
    assert len(load_dataset("hf", tmp_path / "bad", skip_bad_images=True)) == 0


@pytest.mark.slow
def test_hub_name_offline_is_a_clear_one_line_error(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "PYTHONPATH": str(REPO),
    }
    cmd = [sys.executable, "-m", "ijepa_eval", "data", "info", "hf:someone/not-cached"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot load Hugging Face dataset 'someone/not-cached'")
    assert "HF_DATASETS_OFFLINE is set" in lines[-1]


def test_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("hf", str(tmp_path / "nothing" / "here"))
