"""`convert`: HF output loads in transformers; native output round-trips bit for bit."""

from __future__ import annotations

import pytest
import torch
from helpers import max_diff, save_random_ijepa
from safetensors.torch import load_file
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app

runner = CliRunner()


def _convert(*args: str):
    return runner.invoke(app, ["convert", *map(str, args)])


def test_convert_to_hf_loads_in_transformers(tmp_path, official_ckpt, official_input):
    from transformers import IJepaModel

    result = _convert("--ckpt", official_ckpt, "--to", "hf", "--out", tmp_path / "hf")
    assert result.exit_code == 0, result.output
    model = IJepaModel.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        got = model(pixel_values=official_input).last_hidden_state
        expected = ie.load_encoder(official_ckpt)(official_input)
    assert max_diff(got, expected) <= 1e-5
    # what was converted is recorded, so loading it back knows it is the target encoder
    assert ie.load_encoder(tmp_path / "hf").info.network == "target_encoder"


def test_convert_context_encoder_to_hf(tmp_path, official_ckpt, official_input):
    from transformers import IJepaModel

    args = ("--ckpt", official_ckpt, "--to", "hf", "--out", tmp_path / "hf", "--which", "encoder")
    assert _convert(*args).exit_code == 0
    model = IJepaModel.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        got = model(pixel_values=official_input).last_hidden_state
        expected = ie.load_encoder(official_ckpt, which="encoder")(official_input)
    assert max_diff(got, expected) <= 1e-5


def test_native_round_trip_is_bit_exact(tmp_path, official_ckpt):
    first = tmp_path / "once.pth.tar"
    second = tmp_path / "twice.pth.tar"
    assert _convert("--ckpt", official_ckpt, "--to", "native", "--out", first).exit_code == 0
    assert _convert("--ckpt", first, "--to", "native", "--out", second).exit_code == 0
    original = torch.load(official_ckpt, weights_only=True)["target_encoder"]
    for path in (first, second):
        written = torch.load(path, weights_only=True)
        assert set(written) == {"target_encoder", "epoch", "ijepa_eval"}
        assert written["target_encoder"].keys() == original.keys()
        assert all(torch.equal(written["target_encoder"][k], v) for k, v in original.items())


def test_hf_native_hf_round_trip_is_bit_exact(tmp_path):
    save_random_ijepa(tmp_path / "a")
    assert (
        _convert("--ckpt", tmp_path / "a", "--to", "native", "--out", tmp_path / "n.pth").exit_code
        == 0
    )
    assert (
        _convert("--ckpt", tmp_path / "n.pth", "--to", "hf", "--out", tmp_path / "b").exit_code == 0
    )
    before = load_file(tmp_path / "a" / "model.safetensors")
    after = load_file(tmp_path / "b" / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_convert_refuses_to_overwrite(tmp_path, official_ckpt):
    out = tmp_path / "x.pth"
    out.write_bytes(b"precious")
    result = _convert("--ckpt", official_ckpt, "--to", "native", "--out", out)
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert out.read_bytes() == b"precious"
    assert (
        _convert("--ckpt", official_ckpt, "--to", "native", "--out", out, "--overwrite").exit_code
        == 0
    )
    assert ie.load_encoder(out).info.network == "target_encoder"


def test_convert_rejects_unknown_format(tmp_path, official_ckpt):
    result = _convert("--ckpt", official_ckpt, "--to", "onnx", "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert "--to must be 'hf' or 'native'" in result.output


@pytest.mark.parametrize("which", ["target_encoder", "encoder"])
def test_native_output_loads_in_official_layout(tmp_path, official_ckpt, which):
    """What we write is what the official save_checkpoint writes for that network."""
    out = tmp_path / "n.pth.tar"
    assert (
        _convert(
            "--ckpt", official_ckpt, "--to", "native", "--out", out, "--which", which
        ).exit_code
        == 0
    )
    written = torch.load(out, weights_only=True)[which]
    assert all(k.startswith("module.") for k in written)
    assert torch.equal(
        written["module.pos_embed"],
        torch.load(official_ckpt, weights_only=True)[which]["module.pos_embed"],
    )


def test_native_output_is_byte_deterministic(tmp_path, official_ckpt):
    """Equal weights give equal bytes, so their sha256 (and feature-cache keys) stay equal."""
    for name in ("a.pth.tar", "b.pth.tar"):
        assert (
            _convert("--ckpt", official_ckpt, "--to", "native", "--out", tmp_path / name).exit_code
            == 0
        )
    assert (tmp_path / "a.pth.tar").read_bytes() == (tmp_path / "b.pth.tar").read_bytes()
