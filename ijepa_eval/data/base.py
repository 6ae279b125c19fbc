"""The dataset every adapter returns: a list of items, their labels, and how to load one.

An adapter only says how to list its items and load one of them. Everything else — transforms,
skipping unreadable images, fingerprints, subsets, the ``data info`` summary — lives here once,
so all formats behave alike.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ijepa_eval.errors import DataError, DataWarning
from ijepa_eval.hashing import digest_file

#: File endings taken as images (torchvision's list), compared case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# Everything PIL raises for a file that is not a readable image.
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class SkippedSamplesWarning(DataWarning):
    """``skip_bad_images`` left samples out: said once per split, so a run shows it (and its
    record keeps it as a note); ``data info`` lists the samples itself instead."""


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
    """8-bit RGB as an image viewer shows ``img``; the rules, and why, are in docs/data.md.

    Where torchvision's ``convert("RGB")`` gives something no viewer shows, the pixels differ:
    16-bit samples keep their high byte (Pillow alone clips 16-bit grayscale to white),
    transparency is composited over white (Pillow drops alpha, showing whatever colour hides
    under transparent pixels), CMYK goes through its embedded ICC profile. Everything else —
    opaque 8-bit images, EXIF orientation (ignored), RGB ICC profiles (ignored) — is exactly
    what torchvision's ``pil_loader`` gives, so features match the paper's pipeline.
    """
    if img.mode.startswith("I;16") or img.mode == "I":
        return _wide_gray_as_rgb(img)
    if img.mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if img.mode == "CMYK":
        return _cmyk_as_rgb(img)
    if _has_transparency(img):
        if img.mode == "La":  # premultiplied: Pillow converts it to RGBA only through LA
            img = img.convert("LA")
        rgba = np.asarray(img.convert("RGBA"))
        return Image.fromarray(_over_white(rgba[..., :3], rgba[..., 3]), "RGB")
    return img.convert("RGB")


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with straight ``alpha`` (H, W) composited over white, rounded:
    ``round((c·a + 255·(255 − a)) / 255)`` (the numerator is an integer, so never a tie)."""
    c = rgb.astype(np.uint32)
    a = alpha.astype(np.uint32)[..., None]
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _has_transparency(img: Image.Image) -> bool:
    """An alpha channel, a transparent colour (``tRNS``, GIF) or a palette with alpha."""
    if img.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info:
        return True
    return img.mode == "P" and img.palette is not None and img.palette.mode.endswith("A")


def _wide_gray_as_rgb(img: Image.Image) -> Image.Image:
    """16-bit grayscale (``I;16*``; ``I`` is read as 16-bit, clipped) to its high byte, the
    same rule Pillow applies to every 16-bit colour PNG; a transparent grey level
    (``tRNS``) shows white."""
    wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
    gray = (wide >> 8).astype(np.uint8)
    transparent = img.info.get("transparency")
    if isinstance(transparent, int):
        gray[wide == transparent] = 255
    return Image.fromarray(gray, "L").convert("RGB")


def _cmyk_as_rgb(img: Image.Image) -> Image.Image:
    """Through the embedded ICC profile to sRGB, with the profile's own rendering intent;
    without a usable CMYK profile, Pillow's ``255·(1 − C)(1 − K)`` (what torchvision gives)."""
    icc = img.info.get("icc_profile")
    try:
        from PIL import ImageCms  # Pillow's LittleCMS binding, loaded only when needed
    except ImportError:  # a Pillow built without LittleCMS
        icc = None
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if source.profile.xcolor_space.strip() == "CMYK":
                return ImageCms.profileToProfile(
                    img,
                    source,
                    ImageCms.createProfile("sRGB"),
                    renderingIntent=ImageCms.getDefaultIntent(source),
                    outputMode="RGB",
                )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # an unreadable or unusable profile: as if there were none, as viewers do
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
            names = [name for name, _ in self.skipped]
            warnings.warn(
                f"left out {len(names)} unreadable sample(s) of split {self.split!r} "
                f"(skip_bad_images): {few(names, 3)}",
                SkippedSamplesWarning,
                stacklevel=2,
            )

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
    try:
        if content_hash:
            return f"{name}\0{digest_file(path)}\0".encode()
        st = path.stat()
    except OSError as exc:  # a dangling link, a file removed since the listing, no permission
        raise DataError(
            f"cannot read {path}: {exc.strerror or exc}; replace or remove it, or pass "
            "skip_bad_images=True (--skip-bad-images) to leave unreadable images out"
        ) from None
    return f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode()


def few(names: Sequence[str], k: int = 5) -> str:
    """The first ``k`` names, for a message about many (``a.png, b.png, …``)."""
    return ", ".join(names[:k]) + (", …" if len(names) > k else "")


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
