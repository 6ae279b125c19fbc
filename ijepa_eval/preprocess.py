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

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ResizeMode = Literal["crop", "resize"]


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing.

    ``resize="crop"``: shorter side to ``img_size / crop_pct``, then a centre crop of ``img_size``
    (256 → 224 at the default 0.875). ``resize="resize"``: a plain resize to ``img_size`` square,
    as VISSL's linear-evaluation configs do.
    """

    img_size: int = 224
    resize: ResizeMode = "crop"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.resize not in ("crop", "resize"):
            raise ValueError(f"resize must be 'crop' or 'resize', not {self.resize!r}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], not {self.crop_pct}")
        modes = [m.value for m in T.InterpolationMode]
        if self.interpolation not in modes:
            raise ValueError(f"interpolation must be one of {modes}, not {self.interpolation!r}")

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
        """PIL image (or uint8 tensor) → normalised float tensor ``(3, img_size, img_size)``."""
        mode = T.InterpolationMode(self.interpolation)
        if self.resize == "crop":
            geometry = [T.Resize(self.resize_size, interpolation=mode), T.CenterCrop(self.img_size)]
        else:
            geometry = [T.Resize((self.img_size, self.img_size), interpolation=mode)]
        return T.Compose(
            [
                T.ToImage(),
                T.RGB(),
                *geometry,
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(self.mean, self.std),
            ]
        )

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
        return {**asdict(self), "resize_size": self.resize_size}
