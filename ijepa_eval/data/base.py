"""The dataset every adapter returns: a list of items, their labels, and how to load one.

An adapter only says how to list its items and load one of them. Everything else — transforms,
skipping unreadable images, fingerprints, subsets, the ``data info`` summary — lives here once,
so all formats behave alike.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ijepa_eval.errors import DataError

#: File endings taken as images (torchvision's list), compared case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# Everything PIL raises for a file that is not a readable image.
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def open_image(source: str | os.PathLike[str] | Any, name: str | None = None) -> Image.Image:
    """Decode an image fully into RGB; a file that cannot be read is a `DataError` naming it.

    ``source`` is a path or a binary file object; ``name`` is what the error calls it.
    """
    try:
        with Image.open(source) as img:
            return as_rgb(img)
    except _IMAGE_ERRORS as exc:
        raise DataError(
            f"cannot read image {name or source}: {exc}; replace or remove the file, "
            "or pass skip_bad_images=True (--skip-bad-images) to leave it out"
        ) from None


def as_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB as an image viewer shows ``img``.

    Pillow's own ``convert("RGB")`` clips 16- and 32-bit grayscale to 255, turning a 16-bit PNG
    white; here 16-bit values are scaled to 8 bits (``round(v * 255 / 65535)``), 32-bit
    integers are read as 16-bit ones (what 16-bit PNGs decode to in some Pillow versions), and
    float images are taken as 0–1 when they stay in that range, else as 0–255.
    """
    if img.mode.startswith("I;16") or img.mode == "I":
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        img = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")
    elif img.mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        img = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


class EvalDataset(Dataset):
    """A map-style dataset of ``(image, target)`` pairs over a list of items.

    ``items`` is whatever the adapter needs to find one sample (a relative path, a row index);
    ``targets`` holds the class of each item for classification sets and is ``None`` for depth
    sets, whose targets are float32 depth maps in metres (0 = no measurement).
    """

    adapter: ClassVar[str] = ""
    format: ClassVar[str] = ""

    def __init__(
        self,
        *,
        root: str | os.PathLike[str],
        split: str,
        items: Sequence[Any],
        targets: Sequence[int] | None,
        classes: Sequence[str] | None,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[Any], Any] | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.items = list(items)
        self.targets = None if targets is None else list(targets)
        self.classes = None if classes is None else list(classes)
        self.transform = transform
        self.target_transform = target_transform
        #: ``(item id, reason)`` for every sample left out by ``skip_bad_images``.
        self.skipped: list[tuple[str, str]] = []
        #: How the items were chosen from the full split (subset file, k-shot draw), if at all.
        self.selection: dict[str, Any] | None = None
        self._fingerprints: dict[tuple[bool, bool], str] = {}
        if self.targets is not None and len(self.targets) != len(self.items):
            raise ValueError("targets and items differ in length")
        if skip_bad_images:
            self._drop_bad_images()

    # --- what an adapter provides ---------------------------------------------------------

    def load_image(self, item: Any) -> Image.Image:
        """Load one item's image as RGB; an unreadable image raises `DataError` naming it."""
        raise NotImplementedError

    def load_target(self, item: Any) -> Any:
        """A target that is not a class index in ``targets`` (a depth map, say)."""
        raise NotImplementedError

    def item_id(self, item: Any) -> str:
        """A stable name for the item (a path relative to the split, a row number)."""
        return str(item)

    def item_files(self, item: Any) -> Sequence[Path]:
        """Files this one item is read from, for the fingerprint (none for array-backed sets)."""
        return ()

    def source_files(self) -> Sequence[Path]:
        """Files shared by all items (a scenes JSON, a .mat, pickled batches)."""
        return ()

    def fingerprint_extra(self) -> str:
        """Anything else the samples depend on that no file stat shows (a table fingerprint)."""
        return ""

    # --- the torch Dataset --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        item = self.items[index]
        image = self.load_image(item)
        target = self.targets[index] if self.targets is not None else self.load_target(item)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    @property
    def num_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def ids(self) -> list[str]:
        """Every item's id, in dataset order (what `save_file_list` writes)."""
        return [self.item_id(item) for item in self.items]

    # --- derived behaviour --------------------------------------------------------------------

    def select(self, indices: Iterable[int], selection: dict[str, Any] | None = None) -> Any:
        """A copy holding only ``indices`` (in the given order); the source is left untouched."""
        indices = list(indices)
        sub = copy.copy(self)
        sub.items = [self.items[i] for i in indices]
        sub.targets = None if self.targets is None else [self.targets[i] for i in indices]
        sub.skipped = list(self.skipped)
        sub.selection = selection
        sub._fingerprints = {}
        return sub

    def _drop_bad_images(self) -> None:
        """Decode every sample once and leave out those that fail, remembering which.

        One full pass over the files, in threads (PIL releases the GIL while decoding).
        """

        def check(item: Any) -> str | None:
            try:
                self.load_image(item)
                if self.targets is None:
                    self.load_target(item)
            except DataError as exc:
                return str(exc)
            return None

        workers = min(8, (os.cpu_count() or 1) * 2)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reasons = list(pool.map(check, self.items))
        keep = [i for i, reason in enumerate(reasons) if reason is None]
        self.skipped = [
            (self.item_id(self.items[i]), reason)
            for i, reason in enumerate(reasons)
            if reason is not None
        ]
        if self.skipped:
            self.items = [self.items[i] for i in keep]
            if self.targets is not None:
                self.targets = [self.targets[i] for i in keep]

    def fingerprint(
        self, content_hash: bool = False, *, fresh: bool = False, images_only: bool = False
    ) -> str:
        """A hex digest that changes when the samples, their labels or their files change.

        By default it hashes names, sizes and modification times (one ``stat`` per file, cheap
        on 1.28M files); ``content_hash=True`` hashes the file bytes instead. The digest is
        remembered; ``fresh=True`` looks at the files again (has the data changed meanwhile?).
        ``images_only=True`` leaves out the adapter and the labels: what an encoder sees, so
        ``clevr_count`` and ``clevr_dist`` over the same images share cached features.
        """
        memo = (content_hash, images_only)
        if fresh or memo not in self._fingerprints:
            h = hashlib.sha256()
            kind = "images" if images_only else self.adapter
            h.update(f"{kind}\0{self.split}\0{len(self.items)}\0".encode())
            h.update(f"{self.fingerprint_extra()}\0".encode())
            for path in self.source_files():
                h.update(_file_token(path, self.root, content_hash))
            for i, item in enumerate(self.items):
                target = "" if self.targets is None or images_only else self.targets[i]
                h.update(f"{self.item_id(item)}\0{target}\0".encode())
                for path in self.item_files(item):
                    h.update(_file_token(path, self.root, content_hash))
            self._fingerprints[memo] = h.hexdigest()
        return self._fingerprints[memo]

    def label_histogram(self) -> dict[str, int] | None:
        """Samples per class name, in class order (``None`` for depth sets)."""
        if self.targets is None or self.classes is None:
            return None
        counts = Counter(self.targets)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def describe(self) -> dict[str, Any]:
        """A plain summary of the split, for ``data info`` and run records."""
        return {
            "adapter": self.adapter,
            "format": self.format,
            "root": str(self.root),
            "split": self.split,
            "size": len(self),
            "target": "class" if self.targets is not None else "depth map (float32 metres)",
            "num_classes": self.num_classes,
            "classes": self.classes,
            "label_histogram": self.label_histogram(),
            "skipped": [{"id": i, "reason": r} for i, r in self.skipped],
            "selection": self.selection,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
        )


def _file_token(path: Path, root: Path, content_hash: bool) -> bytes:
    """Name (relative to the dataset root where possible) and size+mtime or content digest."""
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = path.name
    if content_hash:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return f"{name}\0{digest.hexdigest()}\0".encode()
    st = path.stat()
    return f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode()


def require_dir(path: Path, what: str, hint: str = "") -> Path:
    """``path`` if it is a directory, else a `DataError` saying which one is missing."""
    if not path.is_dir():
        raise DataError(f"{what} {path} does not exist" + (f"; {hint}" if hint else ""))
    return path


def list_subdirs(path: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``path`` (empty if it is not a folder)."""
    if not path.is_dir():
        return []
    return sorted(e.name for e in os.scandir(path) if not e.name.startswith(".") and _is_dir(e))


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether an entry is (or links to) a folder; a link that loops onto itself is not."""
    try:
        return entry.is_dir()
    except OSError:  # ELOOP: too many levels of symbolic links
        return False
