"""Every spec form reaches the same encoder: Hub cache, registry downloads, timm, extra registry."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import timm
import torch
from helpers import max_diff, reference, save_random_ijepa
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.download import download
from ijepa_eval.paths import cache_dir

runner = CliRunner()


def _put_in_hub_cache(hub_cache: Path, repo_id: str, files_from: Path) -> None:
    """Lay out a model the way huggingface_hub's cache stores it (refs → snapshot)."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in files_from.iterdir():
        shutil.copy(f, snapshot / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_hub_id_from_local_hub_cache(tmp_path, _isolated_caches):
    model = save_random_ijepa(tmp_path / "hf", hidden=192, heads=3, mlp=768)
    (tmp_path / "hf" / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}'
    )
    _put_in_hub_cache(_isolated_caches / "hf-hub", "facebook/ijepa_vith14_1k", tmp_path / "hf")
    enc = ie.load_encoder("facebook/ijepa_vith14_1k")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert max_diff(enc(x), model(pixel_values=x).last_hidden_state) <= 1e-5
    info = enc.info
    assert info.registry_name == "facebook/ijepa_vith14_1k"
    assert info.network == "encoder"
    # the Hub's 0.5 normalisation is reported, not silently inherited
    assert info.preprocess["mean"] == (0.485, 0.456, 0.406)
    assert info.declared_normalization["mean"] == [0.5, 0.5, 0.5]
    assert any("declares mean=[0.5, 0.5, 0.5]" in w for w in info.warnings)
    assert any("context encoder" in w for w in info.warnings)
    chosen = ie.load_encoder("facebook/ijepa_vith14_1k", source_norm=True)
    assert chosen.preprocess.mean == (0.5, 0.5, 0.5)


def test_registry_name_uses_cached_download(official_ckpt, official_input):
    dest = cache_dir() / "checkpoints" / "IN1K-vit.h.14-300e.pth.tar"
    dest.parent.mkdir(parents=True)
    shutil.copy(official_ckpt, dest)  # as if downloaded before: no network needed
    for spec in ("ijepa_vith14_in1k", "IN1K-vit.h.14-300e.pth.tar"):
        enc = ie.load_encoder(spec)
        assert enc.info.registry_name == "ijepa_vith14_in1k"
        with torch.no_grad():
            assert max_diff(enc(official_input), reference("target_encoder_tokens")) <= 1e-5


def test_timm_tag_defaults_to_target_encoder_and_matches_timm_for_context(
    official_ckpt, official_input
):
    dest = cache_dir() / "checkpoints" / "IN1K-vit.h.14-300e.pth.tar"
    dest.parent.mkdir(parents=True)
    shutil.copy(official_ckpt, dest)
    spec = "timm:vit_huge_patch14_gap_224.in1k_ijepa"
    target = ie.load_encoder(spec)
    assert target.info.source_format == "timm" and target.info.network == "target_encoder"
    assert any(
        "timm.create_model(pretrained=True) loads the context" in w for w in target.info.warnings
    )
    # timm's own filter on the same file gives its model the context encoder; so do we.
    from timm.models.vision_transformer import checkpoint_filter_fn

    timm_model = timm.create_model(
        "vit_huge_patch14_gap_224", embed_dim=192, depth=2, num_heads=3, patch_size=8, img_size=32
    ).eval()
    timm_model.load_state_dict(
        checkpoint_filter_fn(torch.load(dest, weights_only=True), timm_model), strict=False
    )
    context = ie.load_encoder(spec, which="encoder")
    with torch.no_grad():
        assert (
            max_diff(context(official_input), timm_model.forward_features(official_input)) <= 1e-5
        )
        assert max_diff(target(official_input), reference("target_encoder_tokens")) <= 1e-5


def test_unknown_timm_tag_lists_ijepa_tags():
    with pytest.raises(ie.UserError, match=r"vit_huge_patch14_gap_224\.in1k_ijepa"):
        ie.load_encoder("timm:vit_huge_patch14_gap_224.nope")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    cut_first = False  # the first full request dies half-way, like a dropped connection
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = self.payload[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_first:
            type(self).cut_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_download_resumes_and_checks_sha256(tmp_path, http_server, official_ckpt):
    data = official_ckpt.read_bytes()
    _RangeHandler.payload, _RangeHandler.cut_first, _RangeHandler.requests = data, True, []
    url = f"http://127.0.0.1:{http_server.server_address[1]}/tiny.pth.tar"
    dest = tmp_path / "tiny.pth.tar"
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(ie.UserError, match="rerun to resume"):
        download(url, dest, sha, quiet=True)
    part = tmp_path / "tiny.pth.tar.part"
    assert not dest.exists() and 0 < part.stat().st_size < len(data)
    download(url, dest, sha, quiet=True)
    assert dest.read_bytes() == data and not part.exists()
    assert _RangeHandler.requests == [None, f"bytes={len(data) // 2}-"]


def test_download_with_wrong_sha256_is_discarded(tmp_path, http_server):
    _RangeHandler.payload, _RangeHandler.cut_first = b"x" * 1000, False
    url = f"http://127.0.0.1:{http_server.server_address[1]}/f.bin"
    with pytest.raises(ie.UserError, match="does not match"):
        download(url, tmp_path / "f.bin", "0" * 64, quiet=True)
    assert not (tmp_path / "f.bin").exists() and not (tmp_path / "f.bin.part").exists()


def test_extra_registry_entry_downloads_and_verifies(
    tmp_path, http_server, monkeypatch, official_ckpt
):
    data = official_ckpt.read_bytes()
    _RangeHandler.payload, _RangeHandler.cut_first = data, False
    url = f"http://127.0.0.1:{http_server.server_address[1]}/mine.pth.tar"
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        "checkpoints:\n  my_tiny:\n    source: native\n"
        f"    url: {url}\n    sha256: {hashlib.sha256(data).hexdigest()}\n"
        "    arch: vit_tiny_patch8\n    patch_size: 8\n    resolution: 32\n"
        "    pretrain_data: synthetic\n    epochs: 7\n"
        "    networks: [encoder, target_encoder, predictor]\n    license: MIT\n"
    )
    monkeypatch.setenv("IJEPA_EVAL_REGISTRY", str(extra))
    enc = ie.load_encoder("my_tiny")
    assert enc.info.registry_name == "my_tiny"
    assert enc.info.sha256 == hashlib.sha256(data).hexdigest()
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "my_tiny" in result.output


def test_registry_collisions_and_bad_yaml(tmp_path, monkeypatch):
    dup = tmp_path / "dup.yaml"
    dup.write_text("checkpoints:\n  ijepa_vith14_in1k: {source: native, url: http://x/y}\n")
    monkeypatch.setenv("IJEPA_EVAL_REGISTRY", str(dup))
    with pytest.raises(ie.UserError, match="defined twice"):
        ie.load_encoder("anything")
    bad = tmp_path / "bad.yaml"
    bad.write_text("checkpoints: [unclosed\n")
    monkeypatch.setenv("IJEPA_EVAL_REGISTRY", str(bad))
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 1 and "not valid YAML" in result.stderr
