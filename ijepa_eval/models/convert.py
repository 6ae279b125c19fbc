"""Writing an encoder back out: Hugging Face format or the native layout.

Both writers take the chosen network at its checkpoint resolution, so ``convert`` is lossless:
HF → native → HF and native → HF → native give back the same tensors, bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from safetensors.torch import save_file

from ijepa_eval import atomic
from ijepa_eval.errors import UserError
from ijepa_eval.models.formats import timm_to_hf
from ijepa_eval.models.loading import load_encoder
from ijepa_eval.models.safe_io import write_weights
from ijepa_eval.models.sources import UNLABELLED
from ijepa_eval.models.vit import Encoder
from ijepa_eval.preprocess import IMAGENET_MEAN, IMAGENET_STD


def convert(
    spec: str | os.PathLike[str],
    to: Literal["hf", "native"],
    out: str | os.PathLike[str],
    *,
    which: str | None = None,
    heads: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert the chosen network of ``spec`` and write it to ``out``; returns ``out``."""
    if to not in ("hf", "native"):
        raise UserError(f"--to must be 'hf' or 'native', not {to!r}")
    out = Path(out)
    if out.exists() and not overwrite and (out.is_file() or any(out.iterdir())):
        raise UserError(f"{out} already exists; choose another --out or pass --overwrite")
    encoder = load_encoder(spec, which, heads=heads)
    if to == "hf":
        save_hf(encoder, out)
    else:
        save_native(encoder, out)
    return out


def save_hf(encoder: Encoder, out: Path) -> None:
    """``config.json`` + ``model.safetensors`` (+ a processor config with I-JEPA's statistics)."""
    arch, info = encoder.arch, encoder.info
    assert info is not None, "save_hf needs an encoder made by load_encoder"
    config = {
        "architectures": ["IJepaModel"],
        "model_type": "ijepa",
        "hidden_size": arch.embed_dim,
        "num_hidden_layers": arch.depth,
        "num_attention_heads": arch.num_heads,
        "intermediate_size": arch.mlp_hidden,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": arch.norm_eps,
        "image_size": info.resolution,
        "patch_size": arch.patch_size,
        "num_channels": arch.in_chans,
        "qkv_bias": arch.qkv_bias,
        "ijepa_eval": {"network": info.network, "source_sha256": info.sha256},
    }
    processor = {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True,
        "size": {"height": info.resolution, "width": info.resolution},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
    }
    state = timm_to_hf({k: v.contiguous() for k, v in encoder.state_dict().items()})
    out.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    atomic.write_json(out / "preprocessor_config.json", processor)
    atomic.write_json(out / "config.json", config)  # last: its presence marks a complete dir


def save_native(encoder: Encoder, out: Path) -> None:
    """The official layout, ``{network: {"module.<key>": tensor}}``; bare state dicts stay bare."""
    info = encoder.info
    assert info is not None, "save_native needs an encoder made by load_encoder"
    state = {f"module.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    if info.network == UNLABELLED:
        payload: dict = state
    else:
        ours = {"arch": encoder.arch.to_dict(), "source_sha256": info.sha256}
        payload = {info.network: state, "epoch": info.epoch, "ijepa_eval": ours}
    write_weights(out, payload)
