"""The network fine-tuning trains, its parameter groups, and the file it leaves.

The classifier is our `Encoder` (timm's ``VisionTransformer``) rebuilt with drop path, given the
loaded encoder's weights, and timm's own classifier head switched on: the mean of the patch
tokens *after* the encoder's final LayerNorm (``global_pool="avg"``, no class token), then
``fc_norm`` (a new LayerNorm), then a linear layer initialised as MAE does (weights truncated
normal, std 2e-5; bias 0). MAE instead drops the final norm when it pools (its ``fc_norm``
replaces it); keeping it leaves the encoder exactly the I-JEPA encoder, so the fine-tuned
weights load anywhere the pretrained ones do.

``finetuned.pth.tar`` is in the native layout: the encoder under the network it came from
(``target_encoder`` by default), every key ``module.``-prefixed, which `load_encoder` and the
official ``VisionTransformer`` (``strict=True``) read; the head under ``head``; what was
fine-tuned, and how, under ``ijepa_eval.finetuned``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from timm.layers import trunc_normal_
from timm.optim import param_groups_layer_decay
from torch import nn

from ijepa_eval.errors import CheckpointError
from ijepa_eval.models.vit import Encoder
from ijepa_eval.train import checkpoint

HEAD_PREFIXES = ("fc_norm.", "head.")


def build_classifier(encoder: Encoder, num_classes: int, *, drop_path: float = 0.0) -> Encoder:
    """A trainable copy of ``encoder`` (same weights, drop path ``drop_path``) with a fresh head.

    The head's initial weights come from torch's global generator: seed it first.
    """
    resolution = encoder.grid[0] * encoder.arch.patch_size
    net = Encoder(encoder.arch, img_size=resolution, drop_path_rate=drop_path)
    net.load_state_dict(encoder.state_dict(), strict=True)
    net.pos_embed.requires_grad_(False)  # I-JEPA's sin-cos table stays fixed, as in pretraining
    net.fc_norm = nn.LayerNorm(encoder.embed_dim, eps=encoder.arch.norm_eps)
    net.reset_classifier(num_classes)  # keeps global_pool "avg": the mean of the patch tokens
    trunc_normal_(net.head.weight, std=2e-5)
    nn.init.zeros_(net.head.bias)
    net.info, net.preprocess = encoder.info, encoder.preprocess
    return net


class Logits(nn.Module):
    """``images → class scores`` of a classifier from `build_classifier` (what DDP wraps; our
    `Encoder.forward` returns tokens)."""

    def __init__(self, net: Encoder) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(images))


def param_groups(net: Encoder, weight_decay: float, layer_decay: float) -> list[dict[str, Any]]:
    """timm's layer-decay groups (BEiT's / MAE's rule): the patch embedding is layer 0, block i
    layer i + 1, ``fc_norm`` and the head the top; each layer's lr is scaled by
    ``layer_decay ** (top - layer)``; biases, norms and the position table take no weight decay.
    The encoder's final norm, which MAE's model does not have (its ``fc_norm`` replaces it), is
    grouped with the last block, as timm's ``group_matcher`` says. Each group's ``lr_scale`` is
    applied by the scheduler."""
    return param_groups_layer_decay(
        net,
        weight_decay=weight_decay,
        no_weight_decay_list=net.no_weight_decay(),
        layer_decay=layer_decay,
    )


def split_state(net: Encoder) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(encoder state, head state)`` of a classifier: the head is ``fc_norm.*`` and ``head.*``."""
    state = net.state_dict()
    head = {k: v for k, v in state.items() if k.startswith(HEAD_PREFIXES)}
    return {k: v for k, v in state.items() if k not in head}, head


def finetuned_payload(net: Encoder, network: str, extras: dict[str, Any]) -> dict[str, Any]:
    encoder_state, head = split_state(net)
    return {
        network: {checkpoint.PREFIX + k: v for k, v in encoder_state.items()},
        "head": head,
        "epoch": extras.get("epochs"),
        "ijepa_eval": {"arch": net.arch.to_dict(), "finetuned": extras},
    }


def load_finetuned(path: str | os.PathLike[str], **load_options: Any) -> Encoder:
    """A classifier from ``finetuned.pth.tar``: `load_encoder` reads the encoder (with the
    preprocessing its run evaluated with), the saved head goes on top (eval mode, CPU). Scores:
    ``Logits(net)(images)``."""
    from ijepa_eval.models import load_encoder

    payload = checkpoint.load(path)
    head = payload.get("head")
    extras = (payload.get("ijepa_eval") or {}).get("finetuned")
    if not isinstance(head, dict) or not isinstance(extras, dict):
        raise CheckpointError(f"{Path(path)} is not a fine-tuned classifier (it has no head)")
    if isinstance(extras.get("preprocess"), dict) and "preprocess" not in load_options:
        skip = ("resize_size", "img_size", "view")  # derived, or the encoder's own
        load_options["preprocess"] = {
            k: v for k, v in extras["preprocess"].items() if k not in skip
        }
    encoder = load_encoder(path, **load_options)
    net = build_classifier(encoder, int(extras["num_classes"]))
    net.load_state_dict({**split_state(net)[0], **head}, strict=True)
    return net.eval()
