"""How pixels are prepared for an encoder, recorded with every result.

I-JEPA was trained with ImageNet statistics. The Hub processors for ``facebook/ijepa_*`` declare
mean/std 0.5; we keep the training normalisation unless the user asks for the source's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from ijepa_eval.seeding import mixed_seed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ResizeMode = Literal["crop", "resize"]
RANDOM_VIEW = "random"  # view "random:<seed>:<index>": one seeded RandomResizedCrop + flip


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing.

    ``resize="crop"``: shorter side to ``img_size / crop_pct``, then a centre crop of ``img_size``
    (256 → 224 at the default 0.875). ``resize="resize"``: a plain resize to ``img_size`` square,
    as VISSL's linear-evaluation configs do.

    ``view`` names a cached training view (`ijepa_eval.tasks.spec.ViewsSpec`): ``hflip``, the
    image mirrored before the geometry above (this preprocessing of a mirrored file, exactly);
    ``random:<seed>:<index>``, torchvision's RandomResizedCrop(img_size) and a random flip,
    seeded per item (VISSL's ImageNet linear-probe training transform, made repeatable).
    """

    img_size: int = 224
    resize: ResizeMode = "crop"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    view: str | None = None

    def __post_init__(self) -> None:
        if self.resize not in ("crop", "resize"):
            raise ValueError(f"resize must be 'crop' or 'resize', not {self.resize!r}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], not {self.crop_pct}")
        modes = [m.value for m in T.InterpolationMode]
        if self.interpolation not in modes:
            raise ValueError(f"interpolation must be one of {modes}, not {self.interpolation!r}")
        if self.view is not None and self.view != "hflip" and self._random_view() is None:
            raise ValueError(f"view must be hflip or random:<seed>:<index>, not {self.view!r}")

    def _random_view(self) -> tuple[int, int] | None:
        """``(seed, index)`` of a random view, else None."""
        kind, _, rest = (self.view or "").partition(":")
        seed, _, index = rest.partition(":")
        if kind != RANDOM_VIEW or not seed.isdigit() or not index.isdigit():
            return None
        return int(seed), int(index)

    @property
    def resize_size(self) -> int:
        return round(self.img_size / self.crop_pct) if self.resize == "crop" else self.img_size

    def with_overrides(self, **overrides: Any) -> Preprocess:
        given = {k: v for k, v in overrides.items() if v is not None}
        for key in ("mean", "std"):
            if key in given:
                given[key] = tuple(float(x) for x in given[key])
        return replace(self, **given)

    def transform(self) -> Callable[[Any], torch.Tensor]:
        """PIL image (or uint8 tensor) → normalised float tensor ``(3, img_size, img_size)``.

        A random view needs the item's index: use `item_transform`.
        """
        if self._random_view() is not None:
            raise ValueError(f"view {self.view} is seeded per item: use item_transform()")
        mode = T.InterpolationMode(self.interpolation)
        if self.resize == "crop":
            geometry = [T.Resize(self.resize_size, interpolation=mode), T.CenterCrop(self.img_size)]
        else:
            geometry = [T.Resize((self.img_size, self.img_size), interpolation=mode)]
        mirror = [T.Lambda(TF.horizontal_flip)] if self.view == "hflip" else []
        return T.Compose([T.ToImage(), T.RGB(), *mirror, *geometry, *self._to_float()])

    def item_transform(self) -> Callable[[Any, int], torch.Tensor]:
        """``(image, item index) → tensor``: `transform`, or a random view seeded by the index,
        so a view is the same pixels on every run, in any worker (and so it can be cached)."""
        return _ItemTransform(self)

    def _to_float(self) -> list[Any]:
        return [T.ToDtype(torch.float32, scale=True), T.Normalize(self.mean, self.std)]

    def depth_transform(self) -> Callable[[Any], torch.Tensor]:
        """A depth map ``(H, W)`` → ``(img_size, img_size)`` aligned with `transform`'s pixels.

        Same resize and crop, but nearest-neighbour: interpolating depth would invent values
        across object edges and blend in the zeros that mark missing measurements.
        """
        nearest = T.InterpolationMode.NEAREST
        if self.resize == "crop":
            geometry = [
                T.Resize(self.resize_size, interpolation=nearest),
                T.CenterCrop(self.img_size),
            ]
        else:
            geometry = [T.Resize((self.img_size, self.img_size), interpolation=nearest)]
        resize = T.Compose(geometry)
        return lambda depth: resize(torch.as_tensor(depth, dtype=torch.float32)[None])[0]

    def to_dict(self) -> dict[str, Any]:
        """The record's and the cache key's form; ``view`` only when set, so the plain
        preprocessing keeps the key it had before views existed."""
        out = {**asdict(self), "resize_size": self.resize_size}
        if self.view is None:
            del out["view"]
        return out


class _ItemTransform:
    """`Preprocess.item_transform`: a class, not a closure, so DataLoader workers can pickle it."""

    def __init__(self, prep: Preprocess) -> None:
        self.random_view = prep._random_view()
        if self.random_view is None:
            self.plain = prep.transform()
            return
        mode = T.InterpolationMode(prep.interpolation)
        self.augment = T.Compose(
            [
                T.ToImage(),
                T.RGB(),
                T.RandomResizedCrop(prep.img_size, interpolation=mode),
                T.RandomHorizontalFlip(),
                *prep._to_float(),
            ]
        )

    def __call__(self, image: Any, index: int) -> torch.Tensor:
        if self.random_view is None:
            return self.plain(image)
        seed, view = self.random_view
        with torch.random.fork_rng(devices=[]):  # torchvision draws from the global RNG
            torch.manual_seed(mixed_seed(seed, view, index))
            return self.augment(image)
