"""The trainer's networks match the official code: predictor outputs, key layouts, init."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import OFFICIAL, max_diff, reference

from ijepa_eval.models.arch import VitArch
from ijepa_eval.train.checkpoint import native_state, plain_state
from ijepa_eval.train.init import new_encoder, sincos_2d
from ijepa_eval.train.predictor import Predictor, repeat_interleave_batch

# The fixture's networks: ViT 192 wide, 2 deep, 3 heads, 8-px patches at 32 px; predictor 96 × 1.
FIXTURE_ARCH = VitArch(embed_dim=192, depth=2, num_heads=3, mlp_hidden=768, patch_size=8, grid=4)


def fixture_predictor() -> Predictor:
    return Predictor(16, 192, predictor_embed_dim=96, depth=1, num_heads=3)


def _masks(name: str) -> list[torch.Tensor]:
    return list(torch.from_numpy(np.load(OFFICIAL / f"{name}.npy")).long())


def test_predictor_matches_official_outputs(official_ckpt):
    predictor = fixture_predictor().eval()
    state = torch.load(official_ckpt, weights_only=True)["predictor"]
    predictor.load_state_dict(plain_state(state), strict=True)
    with torch.no_grad():
        out = predictor(
            reference("encoder_context_tokens"), _masks("masks_enc"), _masks("masks_pred")
        )
    assert out.shape == (4, 4, 192)
    assert max_diff(out, reference("predictor_output")) <= 1e-5


@pytest.mark.parametrize(
    ("network", "build"),
    [("encoder", lambda: new_encoder(FIXTURE_ARCH)), ("predictor", fixture_predictor)],
)
def test_state_dicts_have_the_official_layout(official_ckpt, network, build):
    """Same keys (with module.), shapes and order as the official checkpoint: strict loading
    works both ways, and the optimizer's parameter indices line up with the official one's."""
    official = torch.load(official_ckpt, weights_only=True)[network]
    ours = native_state(build())
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in official.items()]


def test_sincos_table_is_the_official_one(official_ckpt):
    ckpt = torch.load(official_ckpt, weights_only=True)
    for network in ("encoder", "target_encoder"):
        assert torch.equal(sincos_2d(192, 4), ckpt[network]["module.pos_embed"][0])
    assert torch.equal(sincos_2d(96, 4), ckpt["predictor"]["module.predictor_pos_embed"][0])


def test_fresh_networks_use_the_official_initialisation():
    torch.manual_seed(0)
    arch = VitArch(embed_dim=192, depth=2, num_heads=3, mlp_hidden=768, patch_size=8, grid=8)
    encoder = new_encoder(arch)
    assert torch.equal(encoder.pos_embed[0], sincos_2d(192, 8))
    assert not encoder.pos_embed.requires_grad
    for name, p in encoder.named_parameters():
        if name.endswith("bias"):
            assert not p.any(), name
        elif ".norm" in name or name.startswith("norm"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name != "pos_embed":
            # Plain N(0, 0.02²) everywhere: the official init_model overwrites fix_init_weight's
            # rescale of attn.proj / mlp.fc2, so the last block's fc2 is as wide as the first's.
            assert p.std().item() == pytest.approx(0.02, rel=0.1), name
    predictor = fixture_predictor()
    assert predictor.mask_token.std().item() == pytest.approx(0.02, rel=0.3)
    assert not predictor.predictor_pos_embed.requires_grad


def test_repeat_interleave_batch_repeats_each_group():
    x = torch.arange(6).reshape(6, 1)  # two groups of a batch of 3
    out = repeat_interleave_batch(x, 3, repeat=2).flatten().tolist()
    assert out == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]
