"""Helpers shared by tests: the official reference outputs and small HF reference models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

OFFICIAL = Path(__file__).parent / "fixtures" / "official-ijepa"


def reference(name: str) -> torch.Tensor:
    """A reference output of the official I-JEPA code (see tests/fixtures/official-ijepa)."""
    return torch.from_numpy(np.load(OFFICIAL / f"{name}.npy"))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def save_random_ijepa(
    out: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    mlp: int = 160,
    image: int = 32,
    patch: int = 8,
    eps: float = 1e-6,
    seed: int = 0,
):
    """Save a random-init IJepaModel to ``out`` and return it (eval mode, fp32)."""
    from transformers import IJepaConfig, IJepaModel

    torch.manual_seed(seed)
    config = IJepaConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=mlp,
        image_size=image,
        patch_size=patch,
        layer_norm_eps=eps,
    )
    model = IJepaModel(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a mapping slip cannot hide
        for name, p in model.named_parameters():
            if "layernorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(out)
    return model


# Source for subprocess scripts: a dataset whose images take ``delay`` seconds each to read (a
# slow disk), so a run can be killed mid-way or two runs can overlap.
SLOW_DATASET = """
import time

class Slow:
    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay
    def __len__(self):
        return len(self.inner)
    def __getitem__(self, i):
        time.sleep(self.delay)
        return self.inner[i]
    def __getattr__(self, name):
        return getattr(self.inner, name)
"""


# A 64-wide, 2-deep ViT pretrained on 32-px images (8×8 patches of 4 px): three epochs of four
# steps take seconds on a CPU. Tests add `data.root`, `logging.out` and `logging.keep_every`.
TINY_PRETRAIN = [
    "data.batch_size=16", "data.workers=0", "model.embed_dim=64", "model.depth=2",
    "model.num_heads=2", "model.patch_size=4", "model.img_size=32", "model.predictor_depth=1",
    "model.predictor_embed_dim=32", "mask.min_keep=4", "optimization.epochs=3",
    "optimization.warmup=1", "eval.every=0", "logging.log_every=1",
]  # fmt: skip


def one_error_line(result) -> str:
    """The single ``error: ...`` line a CLI mistake prints (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line
