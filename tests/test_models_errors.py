"""Bad checkpoints and bad specs: one clear line, exit status 1, nothing executed."""

from __future__ import annotations

import pytest
import torch
from helpers import save_random_ijepa
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app

runner = CliRunner()


class _Payload:
    """Unpickling this object would create a file: proof of code execution."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _info(spec, *extra: str):
    return runner.invoke(app, ["info", "--ckpt", str(spec), *extra])


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.stderr.split())  # rich may wrap a long line
    assert text.startswith("error:"), result.stderr
    for needle in needles:
        assert needle in text, text


def test_pickle_that_runs_code_is_refused(tmp_path, official_ckpt):
    marker = tmp_path / "code-ran"
    state = torch.load(official_ckpt, weights_only=True)
    state["payload"] = _Payload(marker)
    torch.save(state, tmp_path / "evil.pth.tar")
    with pytest.raises(ie.CheckpointError, match="refusing to load .*could run code"):
        ie.load_encoder(tmp_path / "evil.pth.tar")
    _assert_one_line_error(_info(tmp_path / "evil.pth.tar"), "refusing to load", "open")
    assert not marker.exists()


def test_truncated_checkpoint(tmp_path, official_ckpt):
    data = official_ckpt.read_bytes()
    (tmp_path / "cut.pth.tar").write_bytes(data[: len(data) // 3])
    _assert_one_line_error(_info(tmp_path / "cut.pth.tar"), "cut.pth.tar", "truncated or corrupt")


def test_garbage_and_empty_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"\x00not a checkpoint at all" * 10)
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "bad.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    _assert_one_line_error(_info(tmp_path / "junk.pth"), "junk.pth")
    _assert_one_line_error(_info(tmp_path / "empty.pth"), "empty (0 bytes)")
    _assert_one_line_error(_info(tmp_path / "bad.safetensors"), "bad.safetensors")


def _native_with(tmp_path, official_ckpt, edit) -> str:
    state = torch.load(official_ckpt, weights_only=True)
    edit(state["target_encoder"])
    path = tmp_path / "edited.pth.tar"
    torch.save(state, path)
    return str(path)


def test_missing_key_is_named(tmp_path, official_ckpt):
    path = _native_with(tmp_path, official_ckpt, lambda sd: sd.pop("module.blocks.1.norm2.weight"))
    _assert_one_line_error(_info(path), "edited.pth.tar", "missing: blocks.1.norm2.weight")


def test_unexpected_key_is_named(tmp_path, official_ckpt):
    def add(sd):
        sd["module.head.weight"] = torch.zeros(10, 192)

    _assert_one_line_error(
        _info(_native_with(tmp_path, official_ckpt, add)), "unexpected: head.weight"
    )


def test_wrong_shape_is_named(tmp_path, official_ckpt):
    def reshape(sd):
        sd["module.blocks.0.attn.proj.weight"] = torch.zeros(192, 100)

    path = _native_with(tmp_path, official_ckpt, reshape)
    with pytest.raises(ie.CheckpointError, match=r"wrong shape: blocks\.0\.attn\.proj\.weight"):
        ie.load_encoder(path)


def test_predictor_only_checkpoint(tmp_path, official_ckpt):
    state = torch.load(official_ckpt, weights_only=True)
    torch.save({"predictor": state["predictor"], "epoch": 3}, tmp_path / "pred.pth.tar")
    _assert_one_line_error(_info(tmp_path / "pred.pth.tar"), "holds only a predictor")


def test_missing_requested_network(tmp_path, official_ckpt):
    state = torch.load(official_ckpt, weights_only=True)
    torch.save({"encoder": state["encoder"]}, tmp_path / "ctx.pth.tar")
    with pytest.warns(ie.models.SourceWarning, match="only the context encoder"):
        assert ie.load_encoder(tmp_path / "ctx.pth.tar").info.network == "encoder"
    _assert_one_line_error(
        _info(tmp_path / "ctx.pth.tar", "--which", "target_encoder"), "holds no target_encoder"
    )
    _assert_one_line_error(_info(tmp_path / "ctx.pth.tar", "--which", "teacher"), "which must be")


def test_nonexistent_path():
    _assert_one_line_error(_info("does/not/exist.pth.tar"), "no such file or directory")


def test_directory_without_config(tmp_path):
    (tmp_path / "weights").mkdir()
    _assert_one_line_error(_info(tmp_path / "weights"), "has no config.json")


def test_unknown_name_suggests_close_matches():
    _assert_one_line_error(
        _info("ijepa_vith14_in1"), "unknown checkpoint", "did you mean ijepa_vith14_in1k"
    )


def test_hub_id_without_network_says_what_to_do():
    result = _info("someone/ijepa_tiny")
    _assert_one_line_error(result, "cannot get someone/ijepa_tiny", "hf download", "--ckpt DIR")


def test_unknown_width_asks_for_heads(tmp_path):
    model = save_random_ijepa(tmp_path / "hf", hidden=96, heads=4, mlp=192)
    torch.save(model.state_dict(), tmp_path / "w96.pth")  # a bare state dict: no config
    _assert_one_line_error(_info(tmp_path / "w96.pth"), "width 96", "--heads")
    x = torch.randn(1, 3, 32, 32)
    enc = ie.load_encoder(tmp_path / "w96.pth", heads=4)
    with torch.no_grad():
        assert torch.allclose(enc(x), model(pixel_values=x).last_hidden_state, atol=1e-5)
    assert _info(tmp_path / "w96.pth", "--heads", "4").exit_code == 0


def test_debug_flag_shows_traceback():
    result = runner.invoke(app, ["--debug", "info", "--ckpt", "nope.pth"])
    assert isinstance(result.exception, ie.UserError)


def test_non_tensor_state_dict(tmp_path):
    torch.save({"blocks": [1, 2, 3]}, tmp_path / "odd.pth")
    _assert_one_line_error(_info(tmp_path / "odd.pth"), "expected a state dict of tensors")
