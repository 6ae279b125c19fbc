"""Depth adapters: NYU's MATLAB v7.3 layout (transposed arrays) and paired depth folders."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from ijepa_eval.data import load_dataset
from ijepa_eval.errors import DataError

N, H, W = 5, 6, 8  # H != W so a wrong transposition cannot pass


def write_nyu(folder: Path, splits: str | None = "hdf5") -> tuple[np.ndarray, np.ndarray]:
    """A tiny ``nyu_depth_v2_labeled.mat`` laid out as MATLAB v7.3 writes it.

    MATLAB keeps ``images`` as H×W×3×N and ``depths`` as H×W×N, column-major; HDF5 readers see
    the reversed shapes (N, 3, W, H) and (N, W, H). Returns the true (N,H,W,3) and (N,H,W).
    """
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8)
    depths = rng.uniform(0.5, 9.0, (N, H, W)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "nyu_depth_v2_labeled.mat", "w", userblock_size=512) as f:
        f["images"] = images.transpose(0, 3, 2, 1)
        f["depths"] = depths.transpose(0, 2, 1)
    with open(folder / "nyu_depth_v2_labeled.mat", "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024")
    train, test = np.array([[1, 3, 4]], np.float64), np.array([[2, 5]], np.float64)
    if splits == "hdf5":
        with h5py.File(folder / "splits.mat", "w") as f:
            f["trainNdxs"], f["testNdxs"] = train, test
    elif splits == "v5":
        scipy.io.savemat(folder / "splits.mat", {"trainNdxs": train.T, "testNdxs": test.T})
    return images, depths


@pytest.mark.parametrize("splits", ["hdf5", "v5"])
def test_nyu_split_images_and_depths(tmp_path: Path, splits: str) -> None:
    images, depths = write_nyu(tmp_path, splits)
    train = load_dataset("nyu_depth_v2", tmp_path, "train")
    test = load_dataset("nyu_depth_v2", tmp_path / "nyu_depth_v2_labeled.mat", "test")
    assert train.items == [0, 2, 3] and test.items == [1, 4]  # 1-based in splits.mat
    assert train.num_classes is None and train.targets is None
    image, depth = test[1]
    assert image.size == (W, H) and np.array_equal(np.asarray(image), images[4])
    assert depth.dtype == np.float32 and depth.shape == (H, W)
    assert np.array_equal(depth, depths[4])


def test_nyu_in_dataloader_workers(tmp_path: Path) -> None:
    """Each worker opens its own HDF5 handle, even after the parent has opened one."""
    import torch
    from torch.utils.data import DataLoader

    images, depths = write_nyu(tmp_path)
    ds = load_dataset("nyu_depth_v2", tmp_path, "all", transform=np.asarray)
    ds[0]  # the parent now holds a handle
    loader = DataLoader(ds, batch_size=5, num_workers=2)
    (batch_images, batch_depths) = next(iter(loader))
    assert torch.equal(batch_images, torch.from_numpy(images))
    assert torch.equal(batch_depths, torch.from_numpy(depths))


def test_nyu_without_splits_file(tmp_path: Path) -> None:
    write_nyu(tmp_path, splits=None)
    assert len(load_dataset("nyu_depth_v2", tmp_path, "all")) == N
    with pytest.raises(DataError, match=r"splits\.mat does not exist"):
        load_dataset("nyu_depth_v2", tmp_path, "train")


def test_nyu_rejects_wrong_files(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "nyu_depth_v2_labeled.mat", {"images": np.zeros((2, 2))})
    with pytest.raises(DataError, match=r"not MATLAB v7.3 \(HDF5\)"):
        load_dataset("nyu_depth_v2", tmp_path, "all")
    with h5py.File(tmp_path / "other.mat", "w") as f:
        f["rgb"] = np.zeros((1, 3, 4, 4), np.uint8)
    with pytest.raises(DataError, match=r"has no 'images' dataset \(it has: rgb\)"):
        load_dataset("nyu_depth_v2", tmp_path / "other.mat", "all")


def write_depth_folder(root: Path, split: str, names: list[str]) -> dict[str, np.ndarray]:
    (root / split / "rgb").mkdir(parents=True)
    (root / split / "depth").mkdir(parents=True)
    rng = np.random.default_rng(1)
    truth = {}
    for name in names:
        mm = rng.integers(0, 20000, (H, W), dtype=np.uint16)
        mm[0, 0] = 0  # no measurement
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            root / split / "rgb" / f"{name}.png"
        )
        Image.fromarray(mm).save(root / split / "depth" / f"{name}.png")
        truth[name] = mm
    return truth


def test_depth_folder_pairs_by_stem_in_metres(tmp_path: Path) -> None:
    truth = write_depth_folder(tmp_path, "val", ["b", "a", "c"])
    ds = load_dataset("depth_folder", tmp_path, "val")
    assert ds.ids() == ["a", "b", "c"]
    image, depth = ds[1]
    assert image.mode == "RGB" and image.size == (W, H)
    assert depth.dtype == np.float32 and depth[0, 0] == 0.0
    np.testing.assert_allclose(depth, truth["b"].astype(np.float32) / 1000.0, rtol=1e-6)


def test_depth_folder_unpaired_and_missing_split(tmp_path: Path) -> None:
    write_depth_folder(tmp_path, "train", ["a", "b"])
    (tmp_path / "train" / "depth" / "b.png").unlink()
    with pytest.raises(DataError, match=r"1 file\(s\) have no partner in .*train/depth: b"):
        load_dataset("depth_folder", tmp_path, "train")
    with pytest.raises(DataError, match=r"val/rgb does not exist \(splits in .*: train\)"):
        load_dataset("depth_folder", tmp_path, "val")


def test_depth_folder_bad_depth_files(tmp_path: Path) -> None:
    write_depth_folder(tmp_path, "train", ["a", "b", "c"])
    Image.new("L", (W, H)).save(tmp_path / "train" / "depth" / "a.png")  # 8-bit, not mm
    (tmp_path / "train" / "depth" / "b.png").write_bytes(b"broken")
    ds = load_dataset("depth_folder", tmp_path, "train")
    with pytest.raises(DataError, match=r"depth PNG .*a\.png is mode L; expected 16-bit"):
        ds[0]
    with pytest.raises(DataError, match=r"cannot read depth PNG .*b\.png"):
        ds[1]
    kept = load_dataset("depth_folder", tmp_path, "train", skip_bad_images=True)
    assert kept.ids() == ["c"] and [s for s, _ in kept.skipped] == ["a", "b"]
