"""The training loop end to end on tiny models: learning, checkpoints, resume, DDP, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import OFFICIAL, TINY_PRETRAIN
from PIL import Image
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.errors import UserError
from ijepa_eval.train import export_encoder, load_config, pretrain
from ijepa_eval.train.checkpoint import plain_state

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add contention

OFFICIAL_KEYS = {"encoder", "predictor", "target_encoder", "opt", "scaler", "epoch", "loss",
                 "batch_size", "world_size", "lr"}  # fmt: skip

TINY = [*TINY_PRETRAIN, "logging.keep_every=2"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "classes"
    generate_classes(root, classes=4, per_class=16, val_per_class=4, size=32, progress=False)
    return root


def tiny(synth: Path, out: Path, *extra: str):
    return load_config(
        "vit_tiny_synth", [*TINY, f"data.root={synth}", f"logging.out={out}", *extra]
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, weights_only=True)
    flat = {
        f"{n}.{k}": v
        for n in ("encoder", "predictor", "target_encoder")
        for k, v in ckpt[n].items()
    }
    for i, state in ckpt["opt"]["state"].items():
        flat |= {f"opt.{i}.{k}": v for k, v in state.items()}
    return flat


@pytest.mark.slow
def test_loss_falls_and_the_run_is_logged(synth, tmp_path):
    """100 steps on synth images: the loss drops by more than half; eval, CSV and PNG are there."""
    cfg = tiny(synth, tmp_path / "run", "optimization.epochs=25", "eval.every=20", "eval.k=5",
               "logging.keep_every=0")  # fmt: skip
    latest = pretrain(cfg)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert list(log.columns) == [
        "step",
        "epoch",
        "loss",
        "lr",
        "wd",
        "momentum",
        "knn_top1",
        "time",
    ]
    assert log.step.iloc[-1] == 25 * 4 and log.epoch.iloc[-1] == 25
    first, last = log.loss.iloc[:10].mean(), log.loss.iloc[-10:].mean()
    assert last < 0.5 * first, (first, last)
    knn = log.knn_top1.dropna()
    assert len(knn) == 2 and knn.between(0, 100).all()  # epoch 20 and the last
    assert log.momentum.is_monotonic_increasing and log.wd.is_monotonic_increasing
    with Image.open(tmp_path / "run" / "curves.png") as curves:  # 3 panels a row, 2 rows
        assert curves.format == "PNG" and curves.width > 1.5 * curves.height
    assert sorted(p.name for p in latest.parent.glob("*.pth.tar")) == ["latest.pth.tar"]


def test_checkpoint_is_in_the_official_layout_and_loads_everywhere(synth, tmp_path):
    """Trained with the fixture's architecture, every network's keys and shapes equal those of
    the official checkpoint; `load_encoder` reads the target encoder by default."""
    cfg = tiny(synth, tmp_path / "run", "model.embed_dim=192", "model.num_heads=3",
               "model.patch_size=8", "model.predictor_embed_dim=96", "mask.min_keep=1",
               "mask.target_scale=[0.2, 0.3]",
               "optimization.epochs=2")  # fmt: skip
    latest = pretrain(cfg)
    ckpt = torch.load(latest, weights_only=True)
    official = torch.load(OFFICIAL / "tiny-vit-p8-32px.pth.tar", weights_only=True)
    assert set(ckpt) == OFFICIAL_KEYS | {"ijepa_eval"}
    for network in ("encoder", "predictor", "target_encoder"):
        assert {k: v.shape for k, v in ckpt[network].items()} == {
            k: v.shape for k, v in official[network].items()
        }
    assert (ckpt["epoch"], ckpt["batch_size"], ckpt["world_size"]) == (2, 16, 1)
    ours = ckpt["ijepa_eval"]
    assert ours["arch"]["num_heads"] == 3 and ours["step"] == 8 and ours["sampler_epoch"] == 2
    assert ours["config"] == cfg.to_dict()
    assert sorted(p.name for p in latest.parent.glob("*.pth.tar")) == [
        "ep2.pth.tar",
        "latest.pth.tar",
    ]

    enc = ie.load_encoder(latest)
    assert enc.info.network == "target_encoder" and enc.info.epoch == 2
    target = plain_state(ckpt["target_encoder"])
    assert all(torch.equal(v, target[k]) for k, v in enc.state_dict().items())
    assert not torch.equal(
        target["blocks.0.attn.qkv.weight"], plain_state(ckpt["encoder"])["blocks.0.attn.qkv.weight"]
    )


def test_exported_fp16_target_encoder_loads_with_its_head_count(synth, tmp_path):
    """A width outside the I-JEPA size table (64) loads thanks to the recorded arch."""
    latest = pretrain(tiny(synth, tmp_path / "run", "optimization.epochs=1"))
    small = export_encoder(latest, tmp_path / "tiny.pth.tar")
    payload = torch.load(small, weights_only=True)
    assert set(payload) == {"target_encoder", "epoch", "loss", "ijepa_eval"}
    assert all(v.dtype == torch.float16 for v in payload["target_encoder"].values())
    enc = ie.load_encoder(small)
    assert (enc.arch.num_heads, enc.arch.embed_dim, enc.info.network) == (2, 64, "target_encoder")
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 32, 32)).shape == (1, 64, 64)


def test_resume_after_a_crash_equals_the_uninterrupted_run(synth, tmp_path):
    """Stop after epoch 1 (as a kill would leave it), resume to 3: same weights, optimizer state,
    and the same loss / lr / wd / momentum at every step."""
    pretrain(tiny(synth, tmp_path / "whole", "eval.every=2"))
    stopped = tiny(synth, tmp_path / "split", "eval.every=2", "optimization.stop_after=1")
    pretrain(stopped)
    assert torch.load(tmp_path / "split" / "latest.pth.tar", weights_only=True)["epoch"] == 1
    with open(tmp_path / "split" / "log.csv", "a") as f:  # rows of a step the crash lost
        f.write("6,2,9,9,9,9,,9\n")
    pretrain(stopped.with_overrides(["optimization.stop_after=null"]), resume=True)

    whole, split = (
        _weights(tmp_path / "whole" / "latest.pth.tar"),
        _weights(tmp_path / "split" / "latest.pth.tar"),
    )
    assert whole.keys() == split.keys()
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    columns = ["step", "epoch", "loss", "lr", "wd", "momentum", "knn_top1"]
    a = pd.read_csv(tmp_path / "whole" / "log.csv")[columns]
    b = pd.read_csv(tmp_path / "split" / "log.csv")[columns]
    pd.testing.assert_frame_equal(a, b)
    assert a.step.tolist() == list(range(1, 13))


@pytest.mark.slow
def test_torchrun_two_processes_train_and_write_one_checkpoint(synth, tmp_path, torchrun_two):
    overrides = [*TINY, f"data.root={synth}", "optimization.epochs=1", "data.batch_size=8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*torchrun_two, "-m", "ijepa_eval",
         "pretrain", "--config", "vit_tiny_synth", "--out", str(tmp_path / "run"), *overrides],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["config.yaml", "curves.png", "latest.pth.tar", "log.csv"]
    ckpt = torch.load(tmp_path / "run" / "latest.pth.tar", weights_only=True)
    assert (ckpt["world_size"], ckpt["ijepa_eval"]["step"]) == (2, 4)  # 64 images / (2 × 8)
    assert ie.load_encoder(tmp_path / "run" / "latest.pth.tar").info.network == "target_encoder"


@pytest.fixture(scope="module")
def one_epoch(synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    pretrain(tiny(synth, out, "optimization.stop_after=1"))
    return out


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(synth, one_epoch, tmp_path):
    run = _copy(one_epoch, tmp_path / "run")
    before = (run / "latest.pth.tar").read_bytes()
    cfg = tiny(synth, run, "optimization.start_lr=1e30", "optimization.lr=1e30")
    with pytest.raises(
        UserError, match=r"loss is (nan|inf) at step 6 .* last good checkpoint is .*latest"
    ):
        pretrain(cfg, resume=True)
    assert (run / "latest.pth.tar").read_bytes() == before
    with pytest.raises(UserError, match=r"no checkpoint was written yet"):
        pretrain(
            tiny(synth, tmp_path / "fresh", "optimization.start_lr=1e30", "optimization.lr=1e30")
        )


def test_resuming_another_architecture_is_refused(synth, one_epoch, tmp_path):
    run = _copy(one_epoch, tmp_path / "run")
    with pytest.raises(UserError, match=r"cannot resume from .*another architecture \(depth 2→3\)"):
        pretrain(tiny(synth, run, "model.depth=3"), resume=True)
    with pytest.raises(UserError, match=r"already holds a run .* pass --resume"):
        pretrain(tiny(synth, run))


def test_batch_larger_than_the_dataset_is_refused(synth, tmp_path):
    with pytest.raises(UserError, match=r"data.batch_size=100 per process is larger than the 64"):
        pretrain(tiny(synth, tmp_path / "run", "data.batch_size=100"))


def test_cli_reports_bad_input_in_one_line(synth, tmp_path):
    from ijepa_eval.cli import app

    result = CliRunner().invoke(
        app,
        ["pretrain", "--config", "vit_tiny_synth", "optimization.lrr=1", "--out", str(tmp_path)],
    )
    assert result.exit_code == 1
    assert "unknown config key 'optimization.lrr'; did you mean optimization.lr" in result.output
    assert "Traceback" not in result.output
