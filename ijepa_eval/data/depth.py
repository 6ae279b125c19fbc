"""Depth datasets: ``nyu_depth_v2`` (the official labelled .mat) and ``depth_folder``.

Both yield ``(RGB image, depth)`` with depth a float32 ``(H, W)`` array in metres, 0 where
there is no measurement. Transforms given here see the image only; the depth task resizes
image and depth together.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image

from ijepa_eval.data.base import EvalDataset, few, is_image_file, list_subdirs, open_image
from ijepa_eval.errors import DataError

NYU_FILE = "nyu_depth_v2_labeled.mat"
NYU_SPLITS_FILE = "splits.mat"
NYU_SPLIT_KEYS = {"train": "trainNdxs", "test": "testNdxs"}


class NyuDepthV2(EvalDataset):
    """NYU Depth v2, labelled part: 1,449 frames; the standard split is 795 train / 654 test.

    ``root`` is ``nyu_depth_v2_labeled.mat`` or its folder. The file is MATLAB v7.3 (HDF5), which
    stores arrays transposed: ``images`` is ``(N, 3, W, H)`` uint8 and ``depths`` ``(N, W, H)``
    metres. The split comes from ``splits.mat`` beside it (``trainNdxs``/``testNdxs``, 1-based;
    HDF5 or MATLAB v5); split ``all`` needs no splits file.
    """

    adapter = "nyu_depth_v2"
    format = "NYU Depth v2 labelled .mat (MATLAB v7.3 / HDF5)"

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        **kw: Any,
    ) -> None:
        root = Path(root)
        self.mat_path = root if root.suffix == ".mat" else root / NYU_FILE
        if not self.mat_path.is_file():
            raise DataError(
                f"{self.mat_path} does not exist; pass the NYU labelled .mat or its folder"
            )
        if not h5py.is_hdf5(self.mat_path):
            raise DataError(f"{self.mat_path} is not MATLAB v7.3 (HDF5); use the official file")
        try:
            with h5py.File(self.mat_path, "r") as f:
                n = _check_nyu_layout(f, self.mat_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged HDF5 file
            raise DataError(f"cannot read {self.mat_path}: {exc}") from None
        self.splits_path = self.mat_path.with_name(NYU_SPLITS_FILE)
        if split == "all":
            items = list(range(n))
        elif split in NYU_SPLIT_KEYS:
            items = read_nyu_split(self.splits_path, split, n)
        else:
            raise DataError(f"unknown nyu_depth_v2 split {split!r}; use train, test or all")
        self._h5: h5py.File | None = None
        self._h5_pid = -1
        super().__init__(root=root, split=split, items=items, targets=None, classes=None, **kw)

    @classmethod
    def available_splits(cls, root: str | os.PathLike[str]) -> list[str]:
        root = Path(root)
        mat = root if root.suffix == ".mat" else root / NYU_FILE
        return ["train", "test"] if mat.with_name(NYU_SPLITS_FILE).is_file() else ["all"]

    def _file(self) -> h5py.File:
        # One handle per process: DataLoader workers must not share the parent's HDF5 handle.
        if self._h5 is None or self._h5_pid != os.getpid():
            self._h5, self._h5_pid = h5py.File(self.mat_path, "r"), os.getpid()
        return self._h5

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_h5": None, "_h5_pid": -1}

    def load_image(self, item: int) -> Image.Image:
        return Image.fromarray(np.ascontiguousarray(self._frame("images", item).transpose(2, 1, 0)))

    def load_target(self, item: int) -> np.ndarray:
        """The depth map in metres, 480×640, whole: the Eigen crop is the scorer's business
        (the depth probe's ``eigen_crop``), never the training targets'."""
        return np.ascontiguousarray(self._frame("depths", item).T, dtype=np.float32)

    def _frame(self, key: str, item: int) -> np.ndarray:
        """One frame of ``images`` or ``depths``; a chunk that cannot be read names the frame."""
        try:
            return self._file()[key][item]
        except (OSError, ValueError, KeyError) as exc:  # truncated or damaged HDF5 data
            raise DataError(f"cannot read {key} frame {item} of {self.mat_path}: {exc}") from None

    def source_files(self) -> list[Path]:
        return [self.mat_path, *([self.splits_path] if self.split != "all" else [])]


def _check_nyu_layout(f: h5py.File, path: Path) -> int:
    for key in ("images", "depths"):
        if key not in f:
            raise DataError(f"{path} has no {key!r} dataset (it has: {', '.join(f.keys())})")
    images, depths = f["images"], f["depths"]
    if not isinstance(images, h5py.Dataset) or not isinstance(depths, h5py.Dataset):
        raise DataError(f"{path}: 'images' and 'depths' must be arrays, not groups")
    if images.dtype != np.uint8 or depths.dtype.kind != "f":
        raise DataError(
            f"{path}: images are {images.dtype} and depths {depths.dtype}; the official file "
            "holds uint8 images and float depths in metres"
        )
    if (
        images.ndim != 4
        or images.shape[1] != 3
        or depths.shape != images.shape[:1] + images.shape[2:]
    ):
        raise DataError(
            f"{path}: images {images.shape} and depths {depths.shape} are not (N, 3, W, H) and "
            "(N, W, H) as in the official file"
        )
    return int(images.shape[0])


def read_nyu_split(path: Path, split: str, n: int) -> list[int]:
    """0-based, sorted frame indices of ``split`` from ``splits.mat`` (1-based in the file)."""
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; put the NYU toolbox's splits.mat beside the .mat "
            "or use split 'all'"
        )
    key = NYU_SPLIT_KEYS[split]
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                raw = np.asarray(f[key]) if isinstance(f.get(key), h5py.Dataset) else None
        else:
            import scipy.io

            raw = scipy.io.loadmat(path).get(key)
    except Exception as exc:  # h5py and scipy raise many types (MatReadError …) for bad files
        raise DataError(f"cannot read {path}: {exc}") from None
    if raw is None:
        raise DataError(f"{path} has no {key!r}; expected trainNdxs and testNdxs")
    raw = np.asarray(raw).ravel()
    if raw.dtype.kind not in "iuf" or not np.array_equal(raw, np.round(raw)):
        raise DataError(f"{path}: {key} holds {raw.dtype} values, not frame numbers")
    indices = raw.astype(np.int64)
    if indices.size == 0 or indices.min() < 1 or indices.max() > n:
        raise DataError(f"{path}: {key} must hold 1-based frame numbers in 1..{n}")
    return sorted(set((indices - 1).tolist()))


class DepthFolder(EvalDataset):
    """``root/<split>/rgb/NAME.*`` paired by file stem with ``root/<split>/depth/NAME.png``.

    Depth PNGs are 16-bit millimetres with 0 = no measurement (what ``data synth-clevr`` writes
    under ``<out>/depth``); targets are float32 metres.
    """

    adapter = "depth_folder"
    format = "depth folder (root/<split>/{rgb,depth}/NAME.png, 16-bit mm)"

    def __init__(self, root: str | os.PathLike[str], split: str = "train", **kw: Any) -> None:
        root = Path(root)
        self.rgb_dir, self.depth_dir = root / split / "rgb", root / split / "depth"
        for folder in (self.rgb_dir, self.depth_dir):
            if not folder.is_dir():
                found = self.available_splits(root)
                where = f"splits in {root}: {', '.join(found)}" if found else f"{root} has none"
                raise DataError(f"depth folder split {folder} does not exist ({where})")
        rgb = _by_stem(self.rgb_dir, is_image_file)
        depth = _by_stem(self.depth_dir, lambda name: name.lower().endswith(".png"))
        for have, lack, what in ((rgb, depth, self.depth_dir), (depth, rgb, self.rgb_dir)):
            unpaired = sorted(have.keys() - lack.keys())
            if unpaired:
                raise DataError(
                    f"{len(unpaired)} file(s) have no partner in {what}: {few(unpaired)}"
                )
        if not rgb:
            raise DataError(f"{self.rgb_dir} holds no images")
        self._rgb, self._depth = rgb, depth
        super().__init__(
            root=root, split=split, items=sorted(rgb), targets=None, classes=None, **kw
        )

    @classmethod
    def available_splits(cls, root: str | os.PathLike[str]) -> list[str]:
        root = Path(root)
        return [s for s in list_subdirs(root) if (root / s / "rgb").is_dir()]

    def load_image(self, item: str) -> Image.Image:
        return open_image(self.rgb_dir / self._rgb[item])

    def load_target(self, item: str) -> np.ndarray:
        path = self.depth_dir / self._depth[item]
        try:
            with Image.open(path) as img:
                if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
                    raise DataError(f"depth PNG {path} is mode {img.mode}; expected 16-bit mm")
                depth = np.asarray(img, dtype=np.float32) / 1000.0
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"cannot read depth PNG {path}: {exc}") from None
        rgb_path = self.rgb_dir / self._rgb[item]
        try:
            with Image.open(rgb_path) as rgb:
                size = rgb.size
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"cannot read image {rgb_path}: {exc}") from None
        if size != (depth.shape[1], depth.shape[0]):
            raise DataError(
                f"depth map {path} is {depth.shape[1]}x{depth.shape[0]} but its image "
                f"{rgb_path.name} is {size[0]}x{size[1]}; they must match pixel for pixel"
            )
        return depth

    def item_files(self, item: str) -> tuple[Path, Path]:
        return self.rgb_dir / self._rgb[item], self.depth_dir / self._depth[item]


def _by_stem(folder: Path, keep: Any) -> dict[str, str]:
    names = sorted(e.name for e in os.scandir(folder) if e.is_file() and keep(e.name))
    by_stem: dict[str, str] = {}
    for name in names:
        stem = Path(name).stem
        if stem in by_stem:
            raise DataError(f"{folder} has two files for {stem!r}: {by_stem[stem]}, {name}")
        by_stem[stem] = name
    return by_stem
