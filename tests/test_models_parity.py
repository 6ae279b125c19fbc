"""Our encoder equals the reference implementations: the official I-JEPA code and transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import OFFICIAL, max_diff, reference, save_random_ijepa

import ijepa_eval as ie
from ijepa_eval.models.convert import save_hf


def test_native_default_is_target_encoder_matching_official_code(official_ckpt, official_input):
    enc = ie.load_encoder(official_ckpt)
    with torch.no_grad():
        tokens = enc(official_input)
    assert enc.info.network == "target_encoder"
    assert tokens.shape == (2, 16, 192)
    assert max_diff(tokens, reference("target_encoder_tokens")) <= 1e-5
    # The two networks differ, so matching one reference is not an accident of the other.
    assert max_diff(tokens, reference("encoder_tokens")) > 1e-2


def test_native_which_encoder_is_context_encoder(official_ckpt, official_input):
    enc = ie.load_encoder(official_ckpt, which="encoder")
    with torch.no_grad():
        tokens = enc(official_input)
    assert enc.info.network == "encoder"
    assert max_diff(tokens, reference("encoder_tokens")) <= 1e-5


def test_masked_context_encoder_matches_official_code(official_ckpt, official_input):
    """encoder(x, masks): position embeddings first, then only the kept patches go through."""
    masks = [m for m in torch.from_numpy(np.load(OFFICIAL / "masks_enc.npy")).long()]
    enc = ie.load_encoder(official_ckpt, which="encoder")
    with torch.no_grad():
        tokens = enc(official_input, masks)
    assert tokens.shape == (2, 8, 192)
    assert max_diff(tokens, reference("encoder_context_tokens")) <= 1e-5


def test_native_metadata(official_ckpt):
    info = ie.load_encoder(official_ckpt).info
    assert info.source_format == "native"
    assert set(info.networks_present) == {"encoder", "target_encoder", "predictor"}
    assert (info.embed_dim, info.depth, info.num_heads, info.mlp_hidden) == (192, 2, 3, 768)
    assert (info.patch_size, info.resolution, info.checkpoint_resolution) == (8, 32, 32)
    assert info.epoch == 7
    assert info.num_params == sum(p.numel() for p in ie.load_encoder(official_ckpt).parameters())
    assert len(info.sha256) == 64
    assert info.preprocess["mean"] == (0.485, 0.456, 0.406)
    assert not info.pos_embed_interpolated
    assert info.warnings == []


@pytest.mark.parametrize("eps", [1e-6, 1e-12])
def test_hf_directory_matches_transformers(tmp_path, eps):
    model = save_random_ijepa(tmp_path / "hf", eps=eps)
    enc = ie.load_encoder(tmp_path / "hf")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(pixel_values=x).last_hidden_state
        got = enc(x)
    assert enc.info.source_format == "hf"
    assert enc.arch.norm_eps == eps
    assert max_diff(got, expected) <= 1e-5


def test_hf_weights_are_context_encoder_and_say_so(tmp_path):
    save_random_ijepa(tmp_path / "hf")
    with pytest.warns(ie.models.SourceWarning, match="context encoder"):
        enc = ie.load_encoder(tmp_path / "hf")
    assert enc.info.network == "encoder"
    with pytest.raises(ie.CheckpointError, match="holds no target_encoder"):
        ie.load_encoder(tmp_path / "hf", which="target_encoder")


def test_live_transformers5_state_dict_loads(tmp_path):
    """A torch.save of a live IJepaModel (transformers 5 module names) maps too."""
    model = save_random_ijepa(tmp_path / "hf", hidden=192, heads=3, mlp=768)
    torch.save(model.state_dict(), tmp_path / "live.pth")
    enc = ie.load_encoder(tmp_path / "live.pth")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert max_diff(enc(x), model(pixel_values=x).last_hidden_state) <= 1e-5
    assert enc.info.network == "unlabelled"


def test_blocks_through_final_norm_match_transformers_hidden_states(tmp_path):
    model = save_random_ijepa(tmp_path / "hf", layers=3)
    enc = ie.load_encoder(tmp_path / "hf")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hidden = model(pixel_values=x, output_hidden_states=True).hidden_states
        blocks = enc.forward_blocks(x, [2, 0, -2])
        last = enc(x)
    # hidden_states[i + 1] is the output of block i, before the final LayerNorm.
    for got, i in zip(blocks, [2, 0, 1], strict=True):
        assert max_diff(got, model.layernorm(hidden[i + 1])) <= 1e-5
    assert torch.equal(blocks[0], last)
    with pytest.raises(IndexError):
        enc.forward_blocks(x, [3])


def test_other_resolution_interpolates_like_transformers(tmp_path, official_ckpt):
    """At 64px the 4×4 table is resized to 8×8 bicubically, as transformers does."""
    save_hf(ie.load_encoder(official_ckpt), tmp_path / "hf")
    from transformers import IJepaModel

    reference_model = IJepaModel.from_pretrained(tmp_path / "hf").eval()
    enc = ie.load_encoder(official_ckpt, img_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference_model(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state
        got = enc(x)
    assert got.shape == (2, 64, 192)
    assert max_diff(got, expected) <= 1e-5
    assert enc.info.pos_embed_interpolated
    assert enc.info.preprocess["img_size"] == 64
    assert any("position embedding resized from 4×4 to 8×8" in w for w in enc.info.warnings)


def _official_resize(table_with_cls: torch.Tensor, npatch: int) -> torch.Tensor:
    """The official code's interpolate_pos_encoding, written out: row 0 is the class token, the
    other N rows a square grid resized bicubically by scale_factor sqrt(npatch / N)."""
    n, dim = table_with_cls.shape[1] - 1, table_with_cls.shape[2]
    side = int(n**0.5)
    grid = table_with_cls[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, scale_factor=(npatch / n) ** 0.5, mode="bicubic")
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([table_with_cls[:, :1], grid], dim=1)


@pytest.mark.parametrize(("old", "new"), [(4, 8), (16, 32), (14, 16)])
def test_position_resize_is_the_official_bicubic_on_the_patch_rows(old, new):
    """What `resample_pos_embed`'s docstring says: the official resize needs a class row (on
    I-JEPA's class-free table it cannot reshape the rest into a square); given one, it
    produces our rows."""
    from ijepa_eval.models.vit import resample_pos_embed

    table = torch.randn(1, old * old, 24)
    ours = resample_pos_embed(table, new)
    with_cls = torch.cat([torch.zeros(1, 1, 24), table], dim=1)
    torch.testing.assert_close(_official_resize(with_cls, new * new)[:, 1:], ours)
    # The class-free table, as the official encoder holds it: its npatch is x's token count
    # minus the class token it assumes, and the N - 1 rows after row 0 are not a square.
    with pytest.raises(RuntimeError, match="is invalid for input of size"):
        _official_resize(table, new * new - 1)


def test_image_size_must_fit_patches(official_ckpt):
    with pytest.raises(ie.UserError, match="not a multiple of the patch size 8"):
        ie.load_encoder(official_ckpt, img_size=36)
