"""End-to-end fine-tuning on real data no one here made: scikit-learn's digits as an ImageFolder
(32 px), from the official-format tiny checkpoint; timm's parts, seeding, resume, DDP, bad input."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SLOW_DATASET
from PIL import Image
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.errors import UserError
from ijepa_eval.finetune import FinetuneConfig, Logits, build_classifier, finetune, load_finetuned
from ijepa_eval.finetune.model import param_groups
from ijepa_eval.probes.metrics import classification_metrics
from ijepa_eval.tasks.record import RunRecord

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
# A short recipe the tiny model learns something from in seconds (no mixup: a small batch).
QUICK = ["epochs=2", "batch_size=20", "warmup_epochs=0.5", "workers=0", "lr=2e-3",
         "log_every=5", "crop_scale=[0.5, 1.0]"]  # fmt: skip


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """sklearn's 1,797 handwritten digits (8×8, 16 grey levels) upsampled to 32 px RGB PNGs,
    one folder per class; every fifth image (in a seeded order) goes to val."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits") / "digits"
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    for n, i in enumerate(order):
        split = "val" if n % 5 == 0 else "train"
        pixels = (data.images[i] * (255 / 16)).astype(np.uint8)
        image = Image.fromarray(pixels, "L").resize((32, 32), Image.BICUBIC).convert("RGB")
        dest = root / split / f"digit{data.target[i]}" / f"{i:04d}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        image.save(dest)
    return root


def _cli(*args: str) -> object:
    return runner.invoke(app, ["finetune", *args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def run(digits, official_ckpt, tmp_path_factory) -> tuple[Path, RunRecord]:
    """One CLI run: a subset file of 20 images per class, two epochs, reported on the 360 val
    images."""
    base = tmp_path_factory.mktemp("run")
    out, results = base / "out", base / "results"
    listed = base / "subset.txt"
    train = ie.load_dataset("imagefolder", digits, "train", shots=20, seed=0)
    listed.write_text("".join(f"{item}\n" for item in train.ids()))
    args = ["--ckpt", str(official_ckpt), "--data", str(digits), "--subset-file", str(listed),
            "--out", str(out), "--results", str(results)]  # fmt: skip
    result = _cli(*args, *[f"-o{o}" for o in QUICK])
    assert result.exit_code == 0, result.output
    (path,) = (results / "runs" / "finetune").glob("*.json")
    return out, RunRecord.read(path)


def test_finetune_runs_end_to_end_and_its_top1_is_reproduced_from_the_file(
    run, digits, official_ckpt
):
    out, record = run
    assert sorted(p.name for p in out.iterdir()) == [
        "curves.png", "finetuned.pth.tar", "latest.pth.tar", "log.csv", "recipe.yaml"
    ]  # fmt: skip
    assert set(record.metrics) == {"top1", "top5", "mean_per_class_acc"}
    assert record.data["datasets"]["train"]["selection"]["kind"] == "subset_file"
    ft = record["finetune"]
    assert ft["network"] == "target_encoder" and ft["finetuned_from"]["network"] == "target_encoder"
    assert (ft["world_size"], ft["batch_size_per_process"], ft["batch_size_global"]) == (1, 20, 20)
    assert ft["recipe"]["epochs"] == 2 and ft["recipe"]["layer_decay"] == 0.75
    assert ft["recipe"]["rand_augment"] == "rand-m9-mstd0.5-inc1" and ft["steps"] == 20
    assert ft["selection"].startswith("none: the reported split was evaluated once")
    assert {"train_s", "eval_s"} <= set(ft["timings"]) and record.splits["test"] == 360

    # re-evaluate finetuned.pth.tar with its saved head: the record's numbers, exactly
    net = load_finetuned(out / "finetuned.pth.tar")
    val = ie.load_dataset("imagefolder", digits, "val", transform=net.preprocess.transform())
    images, labels = zip(*(val[i] for i in range(len(val))), strict=True)
    with torch.no_grad():
        scores = Logits(net)(torch.stack(images))
    again = classification_metrics(scores, torch.tensor(labels), 10)
    assert again["top1"] == record.metrics["top1"]
    assert again["mean_per_class_acc"] == record.metrics["mean_per_class_acc"]
    preds = np.load(record.sibling(".preds.npz"))
    assert np.array_equal(preds["top5"], scores.topk(5, dim=1).indices.numpy())

    # the native layout: the official file's keys and shapes, the head under its own key
    saved = torch.load(out / "finetuned.pth.tar", weights_only=True)
    official = torch.load(official_ckpt, weights_only=True)
    assert {k: v.shape for k, v in saved["target_encoder"].items()} == {
        k: v.shape for k, v in official["target_encoder"].items()
    }
    assert sorted(saved["head"]) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    encoder = ie.load_encoder(out / "finetuned.pth.tar")
    assert encoder.info.network == "target_encoder"
    before = ie.load_encoder(official_ckpt).state_dict()
    assert not torch.equal(encoder.state_dict()["blocks.0.attn.qkv.weight"],
                           before["blocks.0.attn.qkv.weight"])  # fmt: skip
    log = (out / "log.csv").read_text().splitlines()
    assert log[0] == "step,epoch,loss,lr,wd,holdout_top1,time" and log[-1].startswith("20,2,")


def test_layer_decay_groups_are_timms_and_maes(official_ckpt):
    from timm.optim import param_groups_layer_decay

    net = build_classifier(ie.load_encoder(official_ckpt), 10, drop_path=0.1)
    ours = param_groups(net, 0.05, 0.75)
    timms = param_groups_layer_decay(
        net, weight_decay=0.05, no_weight_decay_list=net.no_weight_decay(), layer_decay=0.75
    )
    as_sets = lambda groups: sorted(  # noqa: E731
        (g["lr_scale"], g["weight_decay"], sorted(id(p) for p in g["params"])) for g in groups
    )
    assert as_sets(ours) == as_sets(timms)
    # MAE's rule (depth 2): the patch embedding 0.75³, block i 0.75^(2 − i), fc_norm and head 1;
    # the encoder's final norm (MAE has none: its fc_norm replaces it) goes with the last block
    scale = {id(p): g["lr_scale"] for g in ours for p in g["params"]}
    named = dict(net.named_parameters())
    expect = {"patch_embed.proj.weight": 0.75**3, "blocks.0.mlp.fc1.weight": 0.75**2,
              "blocks.1.attn.qkv.weight": 0.75, "norm.weight": 0.75, "fc_norm.weight": 1.0,
              "head.weight": 1.0}  # fmt: skip
    assert {k: scale[id(named[k])] for k in expect} == pytest.approx(expect)
    assert "pos_embed" not in {n for n, p in named.items() if id(p) in scale}
    decays = {id(p): g["weight_decay"] for g in ours for p in g["params"]}
    decayed = {n for n, p in named.items() if decays.get(id(p))}
    assert "head.weight" in decayed and not any(n.endswith("bias") for n in decayed)


def _small(digits: Path, per_class: int):
    train = ie.load_dataset("imagefolder", digits, "train", shots=per_class, seed=0)
    test = ie.load_dataset("imagefolder", digits, "val")
    return train, test


def test_randaugment_mixup_and_drop_path_are_seeded(digits, official_ckpt, tmp_path):
    """Two runs with one seed (RandAugment, mixup, cutmix, drop path on) give equal weights; a
    third with another seed does not."""
    encoder = ie.load_encoder(official_ckpt)
    train, test = _small(digits, 4)
    cfg = FinetuneConfig().with_overrides(
        [
            "epochs=1",
            "batch_size=8",
            "warmup_epochs=0",
            "workers=0",
            "mixup=0.8",
            "cutmix=1.0",
            "drop_path=0.25",
            "blr=1e-3",
        ]  # fmt: skip
    )
    runs = [
        finetune(encoder, train, test, c, tmp_path / name, progress=False).net.state_dict()
        for name, c in (("a", cfg), ("b", cfg), ("c", cfg.with_overrides(["seed=1"])))
    ]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not torch.equal(runs[0]["head.weight"], runs[2]["head.weight"])


_KILLABLE = (
    SLOW_DATASET
    + """
import sys
import ijepa_eval as ie
from ijepa_eval.finetune import FinetuneConfig, finetune

ckpt, root, out, resume = sys.argv[1:5]
train = Slow(ie.load_dataset("imagefolder", root, "train", shots=4, seed=0), 0.02)
test = ie.load_dataset("imagefolder", root, "val")
cfg = FinetuneConfig().with_overrides(
    ["epochs=3", "batch_size=8", "warmup_epochs=0.5", "workers=0", "log_every=1", "mixup=0.8",
     "drop_path=0.1"])
finetune(ie.load_encoder(ckpt), train, test, cfg, out, resume=resume == "1", progress=False)
"""
)


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_equals_the_uninterrupted_run(digits, official_ckpt, tmp_path):
    script = tmp_path / "killable.py"
    script.write_text(textwrap.dedent(_KILLABLE))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(script), str(official_ckpt), str(digits)]
    whole = subprocess.run([*cmd, str(tmp_path / "whole"), "0"], env=env, capture_output=True)
    assert whole.returncode == 0, whole.stderr.decode()[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, str(out), "0"], env=env, stdout=subprocess.DEVNULL)
    log = out / "log.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the first epoch is checkpointed, the second under way
        rows = log.read_text().splitlines()[1:] if log.is_file() else []
        if any(r.split(",")[1] == "2" for r in rows):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "finetuned.pth.tar").exists()
    resumed = subprocess.run([*cmd, str(out), "1"], env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]

    a = torch.load(tmp_path / "whole" / "latest.pth.tar", weights_only=True)
    b = torch.load(out / "latest.pth.tar", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(v, b["classifier"][k]) for k, v in a["classifier"].items())
    for i, state in a["opt"]["state"].items():
        assert all(torch.equal(v, b["opt"]["state"][i][k]) for k, v in state.items())
    steps = [r.split(",")[0] for r in log.read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(1, 16)]  # 40 images / 8 = 5 steps per epoch


@pytest.mark.slow
def test_torchrun_two_processes_match_one_at_the_same_global_batch(
    digits, official_ckpt, tmp_path, torchrun_two
):
    """2 × 10 images per step under torchrun (gloo) compute what one process computes with 20:
    the same loss at every step, the same Adam moments (the DDP-averaged gradients) and the same
    weights after 5 steps, to 1e-5, with RandAugment on (each item's augmentation is seeded by
    item, not by process).

    Mixup, cutmix and drop path are switched off (the task's preset, ``full``, has them on): they
    draw from streams seeded per process, and batch-mode mixup mixes pairs within each process's
    batch with one λ per process, as MAE's does, so N processes draw other (equally distributed)
    numbers than one; with them on, the weights here differ by 1e-3 or more after 5 steps. Off, the
    observed difference is ~1e-7: Adam does amplify the all-reduce's summation-order noise on
    near-zero gradients, but its eps (1e-8) bounds that far below 1e-5 at lr 1e-3."""
    args = ["finetune", "--ckpt", str(official_ckpt), "--data", str(digits), "--shots", "10",
            "-o", "epochs=1", "-o", "batch_size=20", "-o", "warmup_epochs=0.2", "-o", "workers=0",
            "-o", "lr=1e-3", "-o", "log_every=1",
            "-o", "mixup=0", "-o", "cutmix=0", "-o", "drop_path=0"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = runner.invoke(app, [*args, "--out", str(tmp_path / "one"), "--results", str(tmp_path)])
    assert one.exit_code == 0, one.output
    two = subprocess.run(
        [*torchrun_two, "-m", "ijepa_eval", *args, "--out", str(tmp_path / "two"),
         "--results", str(tmp_path / "r2")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "latest.pth.tar", weights_only=True)
    b = torch.load(tmp_path / "two" / "latest.pth.tar", weights_only=True)
    assert (a["world_size"], b["world_size"], b["batch_size"]) == (1, 2, 10)
    assert a["ijepa_eval"]["step"] == b["ijepa_eval"]["step"] == 5
    recipe = b["ijepa_eval"]["recipe"]
    assert (recipe["mixup"], recipe["cutmix"], recipe["drop_path"]) == (0, 0, 0)
    assert recipe["rand_augment"] == "rand-m9-mstd0.5-inc1" and recipe["label_smoothing"] == 0.1

    # every step's loss (rank-averaged) and lr: the same images, augmented the same way
    logs = [np.genfromtxt(run / "log.csv", delimiter=",", names=True) for run in
            (tmp_path / "one", tmp_path / "two")]  # fmt: skip
    assert list(logs[0]["step"]) == list(logs[1]["step"]) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(logs[1]["loss"], logs[0]["loss"], rtol=1e-6)
    assert list(logs[1]["lr"]) == list(logs[0]["lr"])
    # Adam's moments, running averages of the DDP-averaged gradients and their squares: equal
    # to 1e-5 of each tensor's largest entry (summation order moves the smallest ones more)
    for i, state in a["opt"]["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            ours, theirs = b["opt"]["state"][i][key], state[key]
            assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max(), (i, key)
    # the weights, which moved by far more than the tolerance
    start = ie.load_encoder(official_ckpt).state_dict()
    moved = a["classifier"]["module.blocks.1.attn.qkv.weight"] - start["blocks.1.attn.qkv.weight"]
    assert moved.abs().max() > 1e-3
    for k, v in a["classifier"].items():
        torch.testing.assert_close(b["classifier"][k], v, atol=1e-5, rtol=0)
    (path,) = (tmp_path / "r2" / "runs" / "finetune").glob("*.json")  # rank 0 alone writes
    ft = RunRecord.read(path)["finetune"]
    assert (ft["world_size"], ft["batch_size_per_process"], ft["batch_size_global"]) == (2, 10, 20)


# --- bad input: one line each, nothing overwritten ---------------------------------------------


def _one_line(result, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert expected in line, line


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_subset_file_naming_missing_images_is_one_line(digits, official_ckpt, tmp_path):
    listed = tmp_path / "1percent.txt"
    listed.write_text("digit0/0000.png\ndigit3/9999.png\n")
    result = _cli("--ckpt", str(official_ckpt), "--data", str(digits), "--percent", "1",
                  "--subset-file", str(listed), "--preset", "full", "--out", str(tmp_path / "o"),
                  "--results", str(tmp_path / "r"))  # fmt: skip
    _one_line(result, "names 1 image(s) not in")
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_a_preset_unknown_for_the_architecture_is_one_line(digits, official_ckpt, tmp_path):
    listed = tmp_path / "1percent.txt"
    listed.write_text("digit0/0000.png\n")
    result = _cli("--ckpt", str(official_ckpt), "--data", str(digits), "--percent", "1",
                  "--subset-file", str(listed), "--out", str(tmp_path / "o"))  # fmt: skip
    _one_line(result, "preset ijepa_1pct has no numbers for vit_tiny_patch8_32")
    assert not (tmp_path / "o").exists()
    unknown = _cli("--ckpt", str(official_ckpt), "--data", str(digits), "--preset", "fulll",
                   "--out", str(tmp_path / "o"))  # fmt: skip
    _one_line(unknown, "no fine-tuning preset or file named 'fulll'; did you mean full?")


def test_a_batch_smaller_than_the_world_is_refused(digits, official_ckpt, tmp_path, monkeypatch):
    from ijepa_eval.dist import World
    from ijepa_eval.finetune import loop

    monkeypatch.setattr(loop, "world", lambda: World(rank=0, size=4))
    train, test = _small(digits, 2)
    cfg = FinetuneConfig().with_overrides(["batch_size=2", "workers=0"])
    with pytest.raises(UserError, match=r"batch_size=2 \(global\) does not split evenly across 4"):
        finetune(ie.load_encoder(official_ckpt), train, test, cfg, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_resume_with_another_recipe_or_architecture_is_one_line(run, digits, official_ckpt,
                                                                tmp_path):  # fmt: skip
    out = tmp_path / "out"
    shutil.copytree(run[0], out)
    before = _snapshot(out)
    args = ["--data", str(digits), "--subset-file", str(run[0].parent / "subset.txt"),
            "--out", str(out), "--resume",
            "--results", str(tmp_path / "r"), *[f"-o{o}" for o in QUICK]]  # fmt: skip
    other = _cli("--ckpt", str(official_ckpt), *args, "-o", "weight_decay=0.3")
    _one_line(other, "it ran another recipe (weight_decay 0.04→0.3)")
    # a shallower encoder: the official file with its second block dropped
    ckpt = torch.load(official_ckpt, weights_only=True)
    ckpt["target_encoder"] = {k: v for k, v in ckpt["target_encoder"].items()
                              if ".blocks.1." not in k}  # fmt: skip
    ckpt.pop("encoder")
    torch.save(ckpt, tmp_path / "shallow.pth.tar")
    shallow = _cli("--ckpt", str(tmp_path / "shallow.pth.tar"), *args)
    _one_line(shallow, "it fine-tunes another architecture (depth 2→1)")
    fresh = _cli("--ckpt", str(official_ckpt), *[a for a in args if a != "--resume"])
    _one_line(fresh, "already holds a fine-tuning run; pass --resume")
    assert _snapshot(out) == before and not (tmp_path / "r").exists()


def test_seeds_fine_tune_once_per_seed_each_in_its_folder(digits, official_ckpt, tmp_path):
    """--seeds 2: two fine-tunings (recipe seeds 0 and 1) in out/seed0 and out/seed1, averaged."""
    out, listed = tmp_path / "out", tmp_path / "subset.txt"
    train = ie.load_dataset("imagefolder", digits, "train", shots=4, seed=0)
    listed.write_text("".join(f"{item}\n" for item in train.ids()))
    args = ["--ckpt", str(official_ckpt), "--data", str(digits), "--subset-file", str(listed),
            "--seeds", "2", "--out", str(out), "--results", str(tmp_path / "results")]  # fmt: skip
    result = _cli(*args, *[f"-o{o}" for o in QUICK], "-oepochs=1")
    assert result.exit_code == 0, result.output
    (path,) = (tmp_path / "results" / "runs" / "finetune").glob("*.json")
    record = RunRecord.read(path)
    assert record.seeds["probe"] == [0, 1] and "finetune" not in record.seeds
    sections = record.extra["finetune"]
    for seed in (0, 1):
        assert sections[f"probe_seed{seed}"]["recipe"]["seed"] == seed
        assert (out / f"seed{seed}" / "finetuned.pth.tar").is_file()
    each = record.metrics_per_seed["top1"]
    assert len(each) == 2 and record.metrics["top1"] == pytest.approx(np.mean(each))
    assert f"{out}/seed*/finetuned.pth.tar" in result.output.replace("\n", "")
