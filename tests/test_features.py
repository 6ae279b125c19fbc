"""Feature extraction and its cache: equal to a direct forward, keyed by content, crash-safe."""

from __future__ import annotations

import errno
import gc
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SLOW_DATASET
from PIL import Image
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.features import store as store_module

runner = CliRunner()


@pytest.fixture
def folder(tmp_path) -> Path:
    """An ImageFolder of 3 classes × 8 random 40×36 images."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for c in range(3):
        (root / "train" / f"class{c}").mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "train" / f"class{c}" / f"img{i}.png")
    return root


def _extract(enc, ds, cache, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("shard_size", 5)
    kw.setdefault("progress", False)
    return ie.extract(enc, ds, cache_dir=cache, **kw)


def _direct(enc, ds) -> torch.Tensor:
    transform = enc.preprocess.transform()
    x = torch.stack([transform(ds[i][0]) for i in range(len(ds))])
    with torch.no_grad():
        return torch.stack(enc.forward_blocks(x, list(range(len(enc.blocks)))), dim=1)


def test_cached_features_equal_direct_forward(folder, tmp_path, official_ckpt):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    blocks = _direct(enc, ds)  # (N, 2, 16, 192)
    fp32 = _extract(enc, ds, tmp_path / "c", layers="all", tokens="all", store_dtype="float32")
    assert torch.equal(fp32.pooled(), blocks.mean(dim=2))
    assert torch.equal(fp32.tokens()[:], blocks)
    assert fp32.labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    fp16 = _extract(enc, ds, tmp_path / "c", layers="last", store_dtype="float16")
    assert fp16.pooled().dtype == torch.float16
    assert torch.equal(fp16.pooled()[:, 0], blocks[:, -1].mean(dim=1).half())
    bf16 = _extract(enc, ds, tmp_path / "c", layers="last", store_dtype="bfloat16")
    assert torch.equal(bf16.pooled()[:, 0], blocks[:, -1].mean(dim=1).bfloat16())


def test_whole_model_bf16_runs_a_cast_copy_keyed_apart(folder, tmp_path, official_ckpt):
    """``bf16-weights`` equals the model cast to bf16 (not autocast), leaves the caller's
    fp32 weights alone, and is cached under its own key."""
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    x = torch.stack([enc.preprocess.transform()(ds[i][0]) for i in range(len(ds))])
    cast = enc.__class__(enc.arch)
    cast.load_state_dict(before)
    with torch.no_grad():
        want = cast.to(torch.bfloat16).forward_blocks(x.bfloat16(), [-1])[0].float().mean(1)
        autocast = _extract(enc, ds, tmp_path / "c", compute_dtype="bf16", store_dtype="float32")
    got = _extract(enc, ds, tmp_path / "c", compute_dtype="bf16-weights", store_dtype="float32")
    assert torch.equal(got.pooled()[:, 0], want)
    assert not torch.equal(got.pooled(), autocast.pooled())  # autocast keeps fp32 LayerNorms
    assert got.key != autocast.key and not got.hit
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())
    assert got.entry.meta["key_fields"]["compute_dtype"] == "bfloat16-weights"
    again = _extract(enc, ds, tmp_path / "c", compute_dtype="bf16-weights", store_dtype="float32")
    assert again.hit and again.key == got.key
    with pytest.raises(ie.UserError, match="use fp32, bf16, fp16, bf16-weights"):
        _extract(enc, ds, tmp_path / "c", compute_dtype="int8")


def test_cast_copy_is_reused_until_the_encoder_changes(official_ckpt):
    """One bf16 copy serves every extraction with the same encoder (the train and the test
    split); a weight written in place, another dtype or another encoder gets a fresh one, and the
    copy goes with its encoder."""
    extraction = importlib.import_module("ijepa_eval.features.extract")  # not the function
    enc = ie.load_encoder(official_ckpt)
    first = extraction.cast_for_extraction(enc, torch.bfloat16)
    assert first.patch_embed.proj.weight.dtype == torch.bfloat16
    assert extraction.cast_for_extraction(enc, torch.bfloat16) is first
    assert extraction.cast_for_extraction(enc, torch.float16) is not first
    with torch.no_grad():
        enc.blocks[0].mlp.fc1.weight.mul_(2)  # as an optimizer step would
    changed = extraction.cast_for_extraction(enc, torch.bfloat16)
    assert changed is not first
    want = enc.blocks[0].mlp.fc1.weight.bfloat16()
    assert torch.equal(changed.blocks[0].mlp.fc1.weight, want)
    other = ie.load_encoder(official_ckpt)
    assert extraction.cast_for_extraction(other, torch.bfloat16) is not changed
    del other
    gc.collect()
    assert extraction._last_cast is None  # no copy outlives its encoder


def test_token_grid_is_average_pooled_patch_tokens(folder, tmp_path, official_ckpt):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    feats = _extract(enc, ds, tmp_path / "c", tokens="grid:2x2", store_dtype="float32")
    last = _direct(enc, ds)[:, -1]  # (N, 16, 192) on the 4×4 grid
    maps = last.reshape(-1, 4, 4, 192).permute(0, 3, 1, 2)
    expected = F.avg_pool2d(maps, 2).permute(0, 2, 3, 1).reshape(-1, 1, 4, 192)
    tokens = feats.tokens()
    assert tokens.shape == (24, 1, 4, 192)
    assert torch.allclose(tokens[np.arange(24)], expected, atol=1e-6)
    assert torch.allclose(tokens[7], expected[7], atol=1e-6)  # one row, read from one shard


def test_subset_of_cached_blocks_is_served_without_encoding(folder, tmp_path, official_ckpt):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    everything = _extract(enc, ds, tmp_path / "c", layers="all", store_dtype="float32")
    assert not everything.hit

    def no_encoding(*args, **kwargs):
        raise AssertionError("the encoder ran on a cache hit")

    enc.forward_blocks = no_encoding
    last = _extract(enc, ds, tmp_path / "c", layers="last", store_dtype="float32")
    assert last.hit and last.key == everything.key
    assert torch.equal(last.pooled()[:, 0], everything.pooled()[:, 1])
    first = _extract(enc, ds, tmp_path / "c", layers=[0], store_dtype="float32")
    assert torch.equal(first.pooled()[:, 0], everything.pooled()[:, 0])


def test_changed_inputs_miss_the_cache(folder, tmp_path, official_ckpt):
    cache = tmp_path / "c"
    ds = ie.load_dataset("imagefolder", folder, "train")
    base = _extract(ie.load_encoder(official_ckpt), ds, cache)
    assert _extract(ie.load_encoder(official_ckpt), ds, cache).hit
    # a different crop
    cropped = _extract(ie.load_encoder(official_ckpt, preprocess={"crop_pct": 1.0}), ds, cache)
    assert not cropped.hit and cropped.key != base.key
    # the other network of the same file
    context = _extract(ie.load_encoder(official_ckpt, which="encoder"), ds, cache)
    assert not context.hit and context.key != base.key
    # a different checkpoint under the same file name
    state = torch.load(official_ckpt, weights_only=True)
    state["target_encoder"]["module.norm.bias"] += 0.5
    twin = tmp_path / official_ckpt.name
    torch.save(state, twin)
    other = _extract(ie.load_encoder(twin), ds, cache)
    assert not other.hit and other.key != base.key
    # changed data: one image rewritten
    Image.new("RGB", (40, 36), "red").save(folder / "train" / "class1" / "img3.png")
    changed = _extract(
        ie.load_encoder(official_ckpt), ie.load_dataset("imagefolder", folder, "train"), cache
    )
    assert not changed.hit and changed.key != base.key
    assert not torch.equal(changed.pooled()[11], base.pooled()[11])
    assert torch.equal(changed.pooled()[:11], base.pooled()[:11])


def test_bad_requests(folder, tmp_path, official_ckpt):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    with pytest.raises(ie.UserError, match="out of range for an encoder of depth 2"):
        _extract(enc, ds, tmp_path / "c", layers="0,5")
    with pytest.raises(ie.UserError, match="does not divide the 4x4 patch grid"):
        _extract(enc, ds, tmp_path / "c", tokens="grid:3x3")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ie.UserError, match="not writable"):
        _extract(enc, ds, blocker / "cache")


def test_disk_full_mid_shard_leaves_nothing_partial_and_resumes(
    folder, tmp_path, official_ckpt, monkeypatch
):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    real_save, calls = np.save, {"n": 0}

    def save_until_full(path, array, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the second shard
            with open(path, "wb") as f:
                f.write(b"\x93NUMPY half")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(path, array, **kw)

    monkeypatch.setattr(store_module.np, "save", save_until_full)
    with pytest.raises(ie.UserError, match="No space left on device.*nothing partial was kept"):
        _extract(enc, ds, tmp_path / "c", store_dtype="float32")
    monkeypatch.setattr(store_module.np, "save", real_save)
    shards = sorted((tmp_path / "c").glob("*/*/shards/*"))
    assert [p.name for p in shards if p.is_dir()] == ["00000"]  # no temp dir, no half shard
    resumed = _extract(enc, ds, tmp_path / "c", store_dtype="float32")
    fresh = _extract(enc, ds, tmp_path / "fresh", store_dtype="float32")
    assert torch.equal(resumed.pooled(), fresh.pooled())


def test_data_changed_during_extraction_is_an_error(folder, tmp_path, official_ckpt, monkeypatch):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    real_commit = store_module.Entry.commit_shard

    def commit_then_touch(self, index, arrays):
        real_commit(self, index, arrays)
        if index == 0:
            Image.new("RGB", (40, 36), "blue").save(folder / "train" / "class2" / "img0.png")

    monkeypatch.setattr(store_module.Entry, "commit_shard", commit_then_touch)
    with pytest.raises(
        ie.UserError, match="data changed while its features were extracted.*--refresh"
    ):
        _extract(enc, ds, tmp_path / "c")


_SCRIPT = (
    SLOW_DATASET
    + """
import sys
import ijepa_eval as ie

ckpt, root, cache, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
enc = ie.load_encoder(ckpt)
ds = Slow(ie.load_dataset("imagefolder", root, "train"), delay)
ie.extract(enc, ds, cache_dir=cache, store_dtype="float32", shard_size=3, workers=0, progress=False)
print("done")
"""
)


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_and_matches(folder, tmp_path, official_ckpt):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    cache = tmp_path / "c"
    cmd = [sys.executable, str(script), str(official_ckpt), str(folder), str(cache)]
    proc = subprocess.Popen([*cmd, "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:  # 8 shards of 3 images; kill once 4 are committed
        if len(list(cache.glob("*/*/shards/*/shard.json"))) >= 4:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (entry,) = cache.glob("*/*")
    committed = sorted(p.parent.name for p in entry.glob("shards/*/shard.json"))
    assert 4 <= len(committed) < 8 and not (entry / "manifest.json").exists()
    for shard in committed:  # every visible shard is whole
        info = json.loads((entry / "shards" / shard / "shard.json").read_text())
        assert all(
            np.load(entry / "shards" / shard / f"{n}.npy").shape == tuple(f["shape"])
            for n, f in info["files"].items()
        )
    rerun = subprocess.run([*cmd, "0"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed = ie.features.FeatureStore(cache).entries()[0]
    assert resumed.complete and resumed.verify() == []
    assert not list(resumed.dir.glob("shards/.*"))  # the killed writer's temporary is gone
    enc = ie.load_encoder(official_ckpt)
    fresh = _extract(
        enc,
        ie.load_dataset("imagefolder", folder, "train"),
        tmp_path / "fresh",
        store_dtype="float32",
        shard_size=3,
    )
    got = ie.features.FeatureSet(resumed, (1,))
    assert torch.equal(got.pooled(), fresh.pooled())


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(folder, tmp_path, official_ckpt, torchrun_two):
    args = ["extract", "--ckpt", str(official_ckpt), "--data", str(folder), "--layers", "all"]
    args += ["--store", "float32", "--shard-size", "5", "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [
            *torchrun_two,
            "-m",
            "ijepa_eval",
            *args,
            "--cache-dir",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, "-m", "ijepa_eval", *args, "--cache-dir", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr
    (a,), (b,) = (
        ie.features.FeatureStore(tmp_path / "two").entries(),
        ie.features.FeatureStore(tmp_path / "one").entries(),
    )
    assert a.complete and b.complete and a.key == b.key
    fa, fb = ie.features.FeatureSet(a, (0, 1)), ie.features.FeatureSet(b, (0, 1))
    assert torch.allclose(fa.pooled(), fb.pooled(), atol=1e-6)


def test_cli_extract_and_cache_commands(folder, tmp_path, official_ckpt):
    cache = str(tmp_path / "c")
    args = [
        "extract",
        "--ckpt",
        str(official_ckpt),
        "--data",
        str(folder),
        "--cache-dir",
        cache,
        "--workers",
        "0",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "extracted" in first.output and "24 images" in first.output
    second = runner.invoke(app, args)
    assert "from the cache" in second.output
    listing = runner.invoke(app, ["cache", "ls", "--cache-dir", cache], env={"COLUMNS": "200"})
    (entry,) = ie.features.FeatureStore(cache).entries()
    assert entry.short_key in listing.output and "imagefolder:train" in listing.output
    assert runner.invoke(app, ["cache", "verify", "--cache-dir", cache]).exit_code == 0
    pooled = next(entry.dir.glob("shards/00000/pooled.npy"))
    pooled.write_bytes(pooled.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    bad = runner.invoke(app, ["cache", "verify", "--cache-dir", cache])
    assert bad.exit_code == 1 and "checksum mismatch" in bad.output
    assert runner.invoke(app, ["cache", "rm", entry.short_key, "--cache-dir", cache]).exit_code == 0
    assert ie.features.FeatureStore(cache).entries() == []
    runner.invoke(app, args)
    assert (
        runner.invoke(app, ["cache", "rm", "--older-than", "0", "--cache-dir", cache]).exit_code
        == 0
    )
    assert ie.features.FeatureStore(cache).entries() == []
