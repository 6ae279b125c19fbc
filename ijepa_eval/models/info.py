"""What was loaded, said once and recorded with every result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EncoderInfo:
    """Provenance of an encoder: its source, which network, its shape and how to feed it."""

    spec: str
    source_format: str  # native | hf | timm | state_dict
    path: str
    sha256: str
    networks_present: list[str]
    network: str  # target_encoder | encoder | unlabelled
    arch: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    patch_size: int
    resolution: int  # what the encoder runs at
    checkpoint_resolution: int  # what the weights were trained at
    num_params: int
    preprocess: dict[str, Any]
    epoch: int | None = None
    registry_name: str | None = None
    declared_normalization: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def pos_embed_interpolated(self) -> bool:
        return self.resolution != self.checkpoint_resolution

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pos_embed_interpolated": self.pos_embed_interpolated}
