"""Every GPU figure the issues ask for, in one command that takes under 8 minutes on an H100.

    python benchmarks/gpu_check.py [--out out/gpu-check] [--budget-s 450] [--peak-tflops N]
                                   [--sections model_only,knn]
    python benchmarks/gpu_check.py --dry-run   # the same code paths, tiny shapes, on the CPU

(`make gpu-check`, `make gpu-check-dry`.) The sections, in order, each a function below:

- gpu_tests: `pytest -m gpu -q` over the test files that hold gpu-marked tests, in a subprocess.
- model_only: ViT-H/14 at 224 px, bf16 autocast, pre-batched tensors: ours (the extraction
  path), timm's own `VisionTransformer` and transformers' `IJepaModel` holding the same random
  weights (`bench_extract.py`'s loaders), runs alternating, medians.
- end_to_end: from ImageNet-sized JPEGs to pooled features: `ie.extract` (cache written) vs
  `pipeline("image-feature-extraction")` in bf16 (on a share of the images: it is slower).
- linear_grid: `linear_grid` on ImageNet-sized synthetic features (1,281,167 x 1,280, 1,000
  classes), 26 heads (linear and BatchNorm + linear x DINOv2's 13 lrs), 10 epochs; one epoch
  is timed first, and the 10 are run only if they fit in the section's time, else extrapolated.
- knn: `knn_eval` of 50,000 queries over those 1,281,167 training features (k = 10, 20, 100, 200).
- pretrain: one epoch of `pretrain` (the `vith14_in1k` recipe, batch 128, on the JPEGs) vs a
  plain PyTorch loop of the same networks, masks and loss on one batch held on the device.
- finetune: one epoch of `finetune` (the `full` recipe, batch 64) vs a plain loop of the same
  classifier.

Each section is timed and guarded: an error (out of memory, an import) or its time running out
is recorded in the JSON and the run goes on; a global budget (`--budget-s`) bounds the whole run.
Peak memory is `torch.cuda.max_memory_allocated` over each figure's own runs, everything then
resident included (null on the CPU). Weights and data are random: no network is needed.

FLOPs, for each figure's % of the bf16 limit (a multiply-add counts 2): a ViT forward is
`vit_forward_flops` (the formula in its docstring; the model_only section also checks it against
torch's FlopCounterMode); the linear grid counts its two GEMMs per step and the evaluation; k-NN
`2 x queries x train x dim`; a training step is counted by FlopCounterMode on the plain loop's
warm-up steps (the trainer runs the same networks on the same masks). The limit is the dense
bf16 tensor-core peak of the device from `BF16_PEAK_TFLOPS` (NVIDIA's data sheets), or
`--peak-tflops`; for another device the % is left out.

Writes `gpu_check.json` and `gpu_check.md` (a table: section, figure, value, unit, % of the bf16
limit, target, verdict, peak memory) to --out, and the sections' own output to
`gpu_check.log`. Exits 1 if a section failed. `tests/test_gpu_check.py` runs --dry-run in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import datetime
import gc
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import ijepa_eval as ie
from ijepa_eval.models.arch import VitArch
from ijepa_eval.models.vit import Encoder, apply_masks

if TYPE_CHECKING:
    from ijepa_eval.finetune import FinetuneConfig
    from ijepa_eval.train import PretrainConfig

# What a section needs beyond torch (bench_extract with timm and transformers, the trainers, the
# probes) is imported inside it, so that an import error is that section's recorded error.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ROOT = Path(__file__).resolve().parents[1]
LOADER_WORKERS = min(os.cpu_count() or 1, 10)  # training loaders (the ViT-H recipe's 10)

# Dense bf16 tensor-core peaks in TFLOP/s (no sparsity), NVIDIA's data sheets; matched against
# torch.cuda.get_device_name(), first match wins.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("H100", 989.0),  # SXM: "NVIDIA H100 80GB HBM3"
    ("H200", 989.0),  # SXM, and GH200
    ("A100", 312.0),  # SXM and PCIe
)


@dataclass(frozen=True)
class Sizes:
    """Every size one run uses: `GPU` for the real check, `DRY` for the CPU dry run."""

    arch: str  # the encoder of model_only, end_to_end and finetune (bench_extract's names)
    patch: int
    res: int
    depth: int
    batch: int  # model-only and end-to-end batch (ie.extract's GPU default)
    repeats: int  # model-only timed runs per model, after one warm-up
    jpegs: int  # end-to-end images; also the pretraining and fine-tuning epoch
    jpeg_hw: tuple[int, int]
    classes: int
    pipeline_jpegs: int  # the pipeline's share of them
    e2e_repeats: int
    grid_train: int  # features for the linear grid and the k-NN training set
    grid_val: int
    grid_dim: int
    grid_classes: int
    grid_epochs: int
    knn_test: int
    pretrain_preset: str
    pretrain_batch: int
    finetune_batch: int
    warmup_steps: int  # training steps left out of steps/s
    plain_steps: int  # the plain loops' steps, warm-up included
    budget_s: float


GPU = Sizes(
    arch="huge", patch=14, res=224, depth=32, batch=256, repeats=10,
    jpegs=4096, jpeg_hw=(375, 500), classes=10, pipeline_jpegs=512, e2e_repeats=2,
    grid_train=1_281_167, grid_val=50_000, grid_dim=1280, grid_classes=1000, grid_epochs=10,
    knn_test=50_000,
    pretrain_preset="vith14_in1k", pretrain_batch=128, finetune_batch=64,
    warmup_steps=5, plain_steps=20, budget_s=450,
)  # fmt: skip
DRY = replace(  # the same sections with tiny shapes, on the CPU
    GPU, arch="tiny", patch=8, res=64, depth=4, batch=8, repeats=1, jpegs=16, jpeg_hw=(72, 96),
    classes=4, pipeline_jpegs=8, e2e_repeats=1, grid_train=2048, grid_val=256, grid_dim=64,
    grid_classes=10, knn_test=256, pretrain_preset="vit_tiny_synth", pretrain_batch=4,
    finetune_batch=4, warmup_steps=1, plain_steps=2, budget_s=300,
)  # fmt: skip


@dataclass
class Figure:
    """One row of the table. `tflops` (achieved) gives the % of the bf16 limit; `met` is None
    where there is no target or it cannot be judged (a dry run, an unknown device)."""

    figure: str
    value: float
    unit: str
    tflops: float | None = None
    target: str = ""
    met: bool | None = None
    peak_gib: float | None = None


@dataclass
class Check:
    """What the sections share: the sizes, the device's bf16 peak, a scratch folder, the time
    left, and the encoder and JPEGs, each built on first use (again by a later section if the
    first try failed)."""

    sizes: Sizes
    dry_run: bool
    peak_tflops: float | None
    scratch: Path
    deadline: float = 0.0  # time.monotonic() at which the running section is stopped
    notes: list[str] = field(default_factory=list)

    @cached_property
    def encoder(self) -> Encoder:
        """Ours with random weights, on the CPU (sections move it and back); `scratch/hf` holds
        the same weights for transformers."""
        from bench_extract import random_encoder

        s = self.sizes
        return random_encoder(s.arch, s.res, s.patch, self.scratch, s.depth)

    @cached_property
    def jpegs(self) -> Path:
        s = self.sizes
        return imagenet_like_jpegs(self.scratch / "images", s.jpegs, s.jpeg_hw, s.classes)

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def judge(self, ok: bool) -> bool | None:
        return None if self.dry_run else ok

    def pct_target(self, tflops: float, pct: float) -> bool | None:
        if self.peak_tflops is None:
            return None
        return self.judge(100 * tflops / self.peak_tflops >= pct)


Outcome = tuple[list[Figure], dict]  # a section's figures, and details for the JSON
Timing = tuple[float, float, float | None]  # a loop's steps/s, FLOPs per step, peak GiB

# -- the sections ------------------------------------------------------------------------------


def gpu_tests(check: Check) -> Outcome:
    """`pytest -m gpu` over the test files holding gpu-marked tests (collecting only those takes
    seconds, the whole suite a minute); without CUDA they skip."""
    files = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "tests").glob("test_*.py"))
        if "mark.gpu" in p.read_text()
    ]
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(run.stdout, run.stderr, sep="\n")
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else ""
    if run.returncode not in (0, 1, 5):  # 1: tests failed (a figure), 5: none collected
        raise RuntimeError(f"pytest exited {run.returncode}: {summary or run.stderr[-500:]}")
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", summary):
        counts[word.rstrip("s") if word.startswith("error") else word] += int(n)
    bad = counts["failed"] + counts["error"]
    figures = [
        Figure(
            "gpu tests passed",
            counts["passed"],
            "tests",
            target="all, none skipped",
            met=check.judge(counts["passed"] > 0 and counts["skipped"] == 0),
        ),
        Figure("gpu tests failed or errors", bad, "tests", target="0", met=check.judge(bad == 0)),
        Figure("gpu tests skipped", counts["skipped"], "tests"),
    ]
    return figures, {"command": " ".join(cmd[1:]), "summary": summary}


def model_only(check: Check) -> Outcome:
    """Ours, timm and transformers on the same weights and batch, bf16 autocast, alternating."""
    from bench_extract import model_only_runs, peers, timed_all

    s, ours = check.sizes, check.encoder
    theirs, plain = (m.to(DEVICE) for m in peers(ours, check.scratch / "hf", s.res))
    flops = vit_forward_flops(ours.arch)
    peaks: dict[str, float | None] = {}
    with on_device(ours), torch.inference_mode():
        x = torch.randn(s.batch, 3, s.res, s.res, device=DEVICE)
        counted = counted_flops(lambda: ours.forward_features(x[:1]))
        runs = model_only_runs(ours, theirs, plain, x, "bf16")
        t = timed_all(tracked(runs, peaks), s.repeats)
    rate = {name: s.batch / seconds for name, seconds in t.items()}
    tflops = {name: r * flops / 1e12 for name, r in rate.items()}
    names = {
        "ours": "ours (forward_blocks + mean pool)",
        "timm": "timm VisionTransformer",
        "hf": "transformers IJepaModel (SDPA)",
    }
    model = f"ViT-{s.arch}/{s.patch} {s.res}px bf16 model-only"
    figures = [
        Figure(f"{model}, {names[name]}", rate[name], "img/s", tflops[name], peak_gib=peaks[name])
        for name in ("ours", "timm", "hf")
    ]
    figures[0].target, figures[0].met = "≥ 60% of the limit", check.pct_target(tflops["ours"], 60)
    for peer, label in (("timm", "timm"), ("hf", "transformers")):
        ratio = t[peer] / t["ours"]
        figures.append(
            Figure(
                f"model-only, ours / {label}",
                ratio,
                "×",
                target="≥ 0.95 (parity)",
                met=check.judge(ratio >= 0.95),
            )
        )
    details = {
        "batch": s.batch,
        "repeats": s.repeats,
        "gflop_per_image_formula": flops / 1e9,
        "gflop_per_image_counted": counted / 1e9,
    }
    return figures, details


def end_to_end(check: Check) -> Outcome:
    """JPEG files to pooled features: `ie.extract` (decode, resize, crop, forward, checksummed
    cache shards) against transformers' pipeline, bf16, alternating runs."""
    from bench_extract import end_to_end_runs, timed_all

    s, root, ours = check.sizes, check.jpegs, check.encoder
    files = sorted(str(f) for f in (root / "train").rglob("*.jpg"))
    workers = min(os.cpu_count() or 1, 8)  # ie.extract's default
    runs = end_to_end_runs(
        ours, root, files[: s.pipeline_jpegs], check.scratch / "hf", s.batch, "bf16", workers
    )
    peaks: dict[str, float | None] = {}
    with on_device(ours):
        t = timed_all(tracked(runs, peaks), s.e2e_repeats)
    ours_rate, pipe_rate = len(files) / t["ours"], s.pipeline_jpegs / t["pipeline"]
    flops = vit_forward_flops(ours.arch) / 1e12
    ratio = ours_rate / pipe_rate
    figures = [
        Figure(
            f"end to end from {len(files):,} JPEGs, ours (ie.extract)",
            ours_rate,
            "img/s",
            ours_rate * flops,
            "≥ 1,000 img/s (issue 9)",
            check.judge(ours_rate >= 1000),
            peaks["ours"],
        ),
        Figure(
            f"end to end from {s.pipeline_jpegs:,} JPEGs, pipeline",
            pipe_rate,
            "img/s",
            pipe_rate * flops,
            peak_gib=peaks["pipeline"],
        ),
        Figure(
            "end to end, ours / pipeline", ratio, "×", target="≥ 2", met=check.judge(ratio >= 2)
        ),
    ]
    sizes = f"{s.jpeg_hw[1]}x{s.jpeg_hw[0]}"
    return figures, {"jpeg_size": sizes, "batch": s.batch, "loader_workers": workers}


def linear_grid_section(check: Check) -> Outcome:
    """26 heads on ImageNet-sized features for 10 epochs; one epoch first, to know it fits."""
    from ijepa_eval.probes import LinearGridConfig, linear_grid

    s = check.sizes
    x, y = synthetic_features(s.grid_train, s.grid_dim, s.grid_classes, seed=0)
    xv, yv = synthetic_features(s.grid_val, s.grid_dim, s.grid_classes, seed=1)
    # linear and bn_linear x DINOv2's 13 lrs = 26 heads; no weight decay, no whitening
    base = LinearGridConfig(weight_decays=(0.0,), whiten=(False,), min_steps=0)

    def run(epochs: int) -> tuple[float, dict]:
        cfg = replace(base, epochs=epochs)
        start = synced_time()
        grid = linear_grid(
            {"lastPOOL": x},
            y,
            {"lastPOOL": xv},
            yv,
            num_classes=s.grid_classes,
            config=cfg,
            device=DEVICE,
        )
        seconds = synced_time() - start
        n, heads = s.grid_train, len(grid.rows)
        rows = 4 * cfg.steps(n) * cfg.batch(n) + 2 * s.grid_val  # forward and weight gradient
        return seconds, {
            "tflops": rows * s.grid_dim * heads * s.grid_classes / seconds / 1e12,
            "steps": cfg.steps(n),
            "heads": len(grid.rows),
            "best_val_top1": grid.best["val_top1"],
        }

    reset_peak()
    one, info = run(1)
    details = {"one_epoch_s": one, "features": f"{s.grid_train:,} x {s.grid_dim} float16"}
    if s.grid_epochs * one < 0.8 * check.seconds_left():
        seconds, info = run(s.grid_epochs)
        label = f"linear grid, {info['heads']} heads, {s.grid_epochs} epochs"
    else:
        seconds = s.grid_epochs * one  # an upper bound: the set-up and evaluation counted 10x
        label = f"linear grid, {info['heads']} heads, {s.grid_epochs} epochs (extrapolated)"
        check.notes.append(
            f"linear_grid: {s.grid_epochs} epochs did not fit; 1 epoch took {one:.1f} s"
        )
    figure = Figure(
        f"{label}, {s.grid_train:,} x {s.grid_dim}",
        seconds,
        "s",
        info["tflops"],
        "< 180 s",
        check.judge(seconds < 180),
        peak_gib(),
    )
    return [figure], {**details, **info}


def knn_section(check: Check) -> Outcome:
    """k-NN of ImageNet-val-sized queries over ImageNet-sized training features."""
    from ijepa_eval.probes import knn_eval

    s = check.sizes
    x, y = synthetic_features(s.grid_train, s.grid_dim, s.grid_classes, seed=0)
    q, qy = synthetic_features(s.knn_test, s.grid_dim, s.grid_classes, seed=2)
    reset_peak()
    start = synced_time()
    metrics = knn_eval(x, y, q, qy, num_classes=s.grid_classes, device=DEVICE)
    seconds = synced_time() - start
    tflops = 2 * s.knn_test * s.grid_train * s.grid_dim / seconds / 1e12
    figure = Figure(
        f"k-NN, {s.knn_test:,} queries over {s.grid_train:,} x {s.grid_dim}",
        seconds,
        "s",
        tflops,
        "< 60 s ('in seconds')",
        check.judge(seconds < 60),
        peak_gib(),
    )
    return [figure], {"top1": {k: m["top1"] for k, m in metrics.items()}}


def pretrain_section(check: Check) -> Outcome:
    """One epoch of the bundled trainer against a plain loop of the same model."""
    from ijepa_eval.train import load_config, pretrain

    s, out = check.sizes, check.scratch / "pretrain"
    cfg = load_config(
        s.pretrain_preset,
        [
            f"data.root={check.jpegs}",
            f"data.batch_size={s.pretrain_batch}",
            f"data.workers={LOADER_WORKERS}",
            f"logging.out={out}",
            "logging.log_every=1",
            "logging.keep_every=0",
            "eval.every=0",
            "optimization.stop_after=1",
        ],
    )
    reset_peak()
    pretrain(cfg)
    ours, ours_peak = steps_per_second(out / "log.csv", s.warmup_steps), peak_gib()
    shutil.rmtree(out)  # its checkpoint: 10 GB at ViT-H
    free_memory()
    plain = plain_pretrain(cfg, s.plain_steps, s.warmup_steps)
    what = f"pretraining {cfg.model.arch().name}"
    return training_figures(what, cfg.data.batch_size, ours, ours_peak, plain, check)


def finetune_section(check: Check) -> Outcome:
    """One epoch of `finetune` (the `full` recipe) against a plain loop of the same classifier."""
    from ijepa_eval.finetune import finetune, load_recipe

    s, encoder, out = check.sizes, check.encoder, check.scratch / "finetune"
    data = ie.load_dataset("imagefolder", check.jpegs, "train")
    overrides = {
        "batch_size": s.finetune_batch,
        "workers": LOADER_WORKERS,
        "log_every": 1,
        "stop_after": 1,
    }
    cfg = load_recipe("full", encoder.arch.name, overrides)
    reset_peak()
    finetune(encoder, data, data, cfg, out, progress=False)
    ours, ours_peak = steps_per_second(out / "log.csv", s.warmup_steps), peak_gib()
    shutil.rmtree(out)  # its checkpoint: 7.6 GB at ViT-H
    free_memory()
    plain = plain_finetune(encoder, data.num_classes, cfg, s.plain_steps, s.warmup_steps)
    what = f"fine-tuning {encoder.arch.name}"
    return training_figures(what, cfg.batch_size, ours, ours_peak, plain, check)


SECTIONS: dict[str, tuple[Callable[[Check], Outcome], float]] = {
    # name: (function, the most seconds it may take; its estimate on an H100 is half or less)
    "gpu_tests": (gpu_tests, 90),
    "model_only": (model_only, 150),
    "end_to_end": (end_to_end, 150),
    "linear_grid": (linear_grid_section, 150),
    "knn": (knn_section, 60),
    "pretrain": (pretrain_section, 150),
    "finetune": (finetune_section, 150),
}


# -- the plain loops ---------------------------------------------------------------------------


def plain_pretrain(cfg: PretrainConfig, steps: int, warmup: int) -> Timing:
    """I-JEPA's step as a PyTorch user writes it from the paper: the same networks, masks and
    loss, one batch held on the device, AdamW with torch's defaults, a foreach EMA; no loader,
    schedules, logging or checkpoints. Returns (steps/s, FLOPs per step, peak GiB)."""
    from ijepa_eval.train import MultiBlockMasks, Predictor
    from ijepa_eval.train.init import new_encoder
    from ijepa_eval.train.predictor import repeat_interleave_batch

    arch, m, b = cfg.model.arch(), cfg.model, cfg.data.batch_size
    context = new_encoder(arch).to(DEVICE)
    target = copy.deepcopy(context).requires_grad_(False)
    predictor = Predictor(
        arch.grid**2,
        arch.embed_dim,
        m.predictor_embed_dim,
        depth=m.predictor_depth,
        num_heads=arch.num_heads,
    ).to(DEVICE)
    learned = [p for p in (*context.parameters(), *predictor.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(learned)
    sampler = MultiBlockMasks(arch.grid, cfg.mask, seed=cfg.seed)  # the trainer's masks
    masks = [[[t.to(DEVICE) for t in part] for part in sampler(b, i)] for i in range(steps)]
    images = torch.randn(b, 3, m.img_size, m.img_size, device=DEVICE)
    online, ema = list(context.parameters()), list(target.parameters())

    def step(i: int) -> None:
        keep, predict = masks[i]
        with training_autocast():
            with torch.no_grad():
                h = F.layer_norm(target(images), (arch.embed_dim,))
                h = repeat_interleave_batch(apply_masks(h, predict), b, repeat=len(keep))
            loss = F.smooth_l1_loss(predictor(context(images, keep), keep, predict), h)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, online, 1 - 0.996)

    return timed_steps(step, steps, warmup)


def plain_finetune(
    encoder: Encoder, num_classes: int, cfg: FinetuneConfig, steps: int, warmup: int
) -> Timing:
    """The same classifier (drop path as the recipe's) in a plain loop: one batch on the device,
    AdamW with torch's defaults, label-smoothed cross-entropy; no loader, mixup or schedule."""
    from ijepa_eval.finetune import Logits, build_classifier

    torch.manual_seed(0)
    model = Logits(build_classifier(encoder, num_classes, drop_path=cfg.drop_path))
    model = model.to(DEVICE).train()
    optimizer = torch.optim.AdamW(model.parameters())
    size = encoder.preprocess.img_size
    images = torch.randn(cfg.batch_size, 3, size, size, device=DEVICE)
    labels = torch.randint(num_classes, (cfg.batch_size,), device=DEVICE)

    def step(_: int) -> None:
        with training_autocast():
            loss = F.cross_entropy(model(images), labels, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed_steps(step, steps, warmup)


def training_figures(
    what: str,
    batch: int,
    ours: float,
    ours_peak: float | None,
    plain: Timing,
    check: Check,
) -> Outcome:
    """Steps/s of ours and of the plain loop (FLOPs per step counted on the plain loop, which
    runs the same networks on the same masks), and their ratio."""
    plain_rate, flops, plain_peak = plain
    ratio = ours / plain_rate
    figures = [
        Figure(f"{what}, ours, batch {batch}", ours, "steps/s", ours * flops / 1e12,
               peak_gib=ours_peak),
        Figure(f"{what}, plain PyTorch loop", plain_rate, "steps/s", plain_rate * flops / 1e12,
               peak_gib=plain_peak),
        Figure(f"{what}, ours / plain loop", ratio, "×", target="≥ 0.95 (at least the plain loop)",
               met=check.judge(ratio >= 0.95)),
    ]  # fmt: skip
    return figures, {"batch": batch, "img_per_s": ours * batch, "tflop_per_step": flops / 1e12}


# -- helpers -----------------------------------------------------------------------------------


def vit_forward_flops(arch: VitArch) -> float:
    """FLOPs of one image through the encoder, a multiply-add counted as 2, with N tokens,
    width D, depth L, MLP width H, patch p: the patch embedding 2·N·3p²·D, then per block the
    qkv projection 6·N·D², the attention scores and weighted sum 4·N²·D, the output
    projection 2·N·D² and the MLP 4·N·D·H. Norms, softmax, GELU and biases are left out
    (< 1% at ViT-H). ViT-H/14 at 224 px (N = 256): 333.2 GFLOP."""
    n, d, h, p = arch.grid**2, arch.embed_dim, arch.mlp_hidden, arch.patch_size
    return 2 * n * 3 * p * p * d + arch.depth * (8 * n * d * d + 4 * n * n * d + 4 * n * d * h)


def counted_flops(fn: Callable[[], object]) -> float:
    """FLOPs of `fn()` as torch's FlopCounterMode counts them. On the CPU attention runs on the
    math backend for the count: the fused CPU kernel is not one FlopCounterMode knows."""
    math_only = sdpa_kernel(SDPBackend.MATH) if DEVICE == "cpu" else contextlib.nullcontext()
    with FlopCounterMode(display=False) as counter, math_only:
        fn()
    return float(counter.get_total_flops())


def timed_steps(step: Callable[[int], None], steps: int, warmup: int) -> Timing:
    """(steps/s after `warmup` steps, FLOPs per step counted over the warm-up, peak GiB)."""
    flops = counted_flops(lambda: [step(i) for i in range(warmup)]) / warmup
    reset_peak()
    start = synced_time()
    for i in range(warmup, steps):
        step(i)
    return (steps - warmup) / (synced_time() - start), flops, peak_gib()


def steps_per_second(log_csv: Path, warmup: int) -> float:
    """Steps/s from a training loop's log.csv (a row every step, each with the seconds since
    the start), from the end of step `warmup` to the last step."""
    with open(log_csv, newline="") as f:
        rows = [(int(r["step"]), float(r["time"])) for r in csv.DictReader(f)]
    (s0, t0), (s1, t1) = rows[warmup - 1], rows[-1]
    return (s1 - s0) / (t1 - t0)


def training_autocast() -> torch.autocast:
    """bf16 autocast on the GPU and fp32 on the CPU, as the trainers run."""
    return torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=DEVICE == "cuda")


def synthetic_features(
    n: int, dim: int, classes: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, dim) float16 features on the device, as the cache stores them, and their labels: a
    class centre (shared by every seed) plus unit noise, made in chunks to bound the memory."""
    centres = 0.1 * torch.randn(classes, dim, generator=torch.Generator().manual_seed(1000))
    centres = centres.to(DEVICE)
    gen = torch.Generator(DEVICE).manual_seed(seed)
    y = torch.randint(classes, (n,), generator=gen, device=DEVICE)
    x = torch.empty(n, dim, dtype=torch.float16, device=DEVICE)
    for start in range(0, n, 1 << 17):
        part = y[start : start + (1 << 17)]
        noise = torch.randn(len(part), dim, generator=gen, device=DEVICE)
        x[start : start + len(part)] = centres[part] + noise
    return x, y


def imagenet_like_jpegs(root: Path, count: int, hw: tuple[int, int], classes: int) -> Path:
    """`root/train/c<k>/` holding `count` JPEGs of ImageNet's usual size (500x375 for the GPU)
    and weight (~105 KB, quality 90): smooth random colour fields plus pixel noise. Random
    noise alone makes files 1.6x heavier and slower to decode than photographs."""
    height, width = hw
    for k in range(classes):
        (root / "train" / f"c{k}").mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        rng = np.random.default_rng(i)
        coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
        pixels = np.asarray(smooth, dtype=np.float32) + rng.normal(0, 16, (height, width, 3))
        path = root / "train" / f"c{i % classes}" / f"{i:06d}.jpg"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)

    with ThreadPoolExecutor(os.cpu_count()) as pool:  # Pillow encodes outside the GIL
        list(pool.map(write, range(count)))
    return root


@contextlib.contextmanager
def on_device(module: torch.nn.Module) -> Iterator[None]:
    """`module` on the device for the block and back on the CPU after it: sections share it,
    and each section's peak memory should be its own."""
    try:
        module.to(DEVICE)
        yield
    finally:
        module.cpu()


def tracked(
    runs: dict[str, Callable[[], object]], peaks: dict[str, float | None]
) -> dict[str, Callable[[], None]]:
    """The same runs, each recording into `peaks` the highest memory its own calls reached."""

    def with_peak(name: str, run: Callable[[], object]) -> Callable[[], None]:
        def wrapped() -> None:
            reset_peak()
            run()
            peak = peak_gib()
            peaks[name] = None if peak is None else max(peak, peaks.get(name) or 0.0)

        return wrapped

    return {name: with_peak(name, run) for name, run in runs.items()}


def free_memory() -> None:
    """Give back what a finished run held (its networks may sit in reference cycles)."""
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def synced_time() -> float:
    if DEVICE == "cuda":
        torch.cuda.synchronize()  # GPU work is asynchronous: time it to the end
    return time.perf_counter()


def reset_peak() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else None


class SectionTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise SectionTimeout in the main thread after `seconds` (between two Python steps)."""

    def expire(signum, frame):
        raise SectionTimeout(f"stopped after {seconds:.0f} s, its share of the time budget")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_sections(check: Check, names: list[str], log) -> dict[str, dict]:
    """Each section in turn, timed and guarded; its output goes to `log`."""
    results: dict[str, dict] = {}
    end = time.monotonic() + check.sizes.budget_s
    for name in names:
        fn, cap = SECTIONS[name]
        entry: dict = {"seconds": 0.0, "error": None, "figures": [], "details": {}}
        left = end - time.monotonic()
        if left < 5:
            entry["error"] = f"skipped: the {check.sizes.budget_s:.0f} s budget is spent"
        else:
            check.deadline = time.monotonic() + min(cap, left)
            start = time.monotonic()
            try:
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    print(f"===== {name}", flush=True)
                    with time_limit(min(cap, left)):
                        figures, details = fn(check)
                entry["figures"], entry["details"] = [asdict(f) for f in figures], details
            except Exception as error:  # recorded, and the run goes on
                entry["error"] = f"{type(error).__name__}: {error}"[:1000]
                log.write(traceback.format_exc())
            entry["seconds"] = round(time.monotonic() - start, 2)
            free_memory()
        results[name] = entry
        shown = entry["error"] or "; ".join(
            f"{f['figure']}: {f['value']:,.3g} {f['unit']}" for f in entry["figures"]
        )
        print(f"{name} ({entry['seconds']:.0f} s): {shown}", flush=True)
    return results


def bf16_peak(override: float | None) -> tuple[float | None, str]:
    """The device's dense bf16 peak (TFLOP/s) and the sentence saying where it came from."""
    if override:
        return override, f"bf16 limit {override:g} TFLOP/s, as given by --peak-tflops"
    if DEVICE != "cuda":
        return None, "no GPU: % of the bf16 limit left out"
    name = torch.cuda.get_device_name()
    for part, tflops in BF16_PEAK_TFLOPS:
        if part in name:
            return tflops, (
                f"bf16 limit {tflops:g} TFLOP/s for {name!r} (matched {part!r}: NVIDIA's data "
                "sheet, dense tensor-core bf16, no sparsity)"
            )
    return None, f"{name!r} is not in the bf16 peak table: % of the limit left out"


def machine() -> dict:
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": version("timm"),
        "transformers": version("transformers"),
        "cuda": torch.version.cuda,
        "driver": None,
    }
    if DEVICE == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cudnn"] = torch.backends.cudnn.version()
        if shutil.which("nvidia-smi"):
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            smi = subprocess.run(query, capture_output=True, text=True)
            info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
    return info


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def markdown(report: dict) -> str:
    m, peak = report["machine"], report["bf16_peak_tflops"]
    lines = [
        f"# GPU check{' (dry run: tiny shapes, no verdicts)' if report['dry_run'] else ''}",
        "",
        f"- device: {m['device']}; driver {m['driver']}, CUDA {m['cuda']}, "
        f"cuDNN {m.get('cudnn')}; {m['cpu_count']} CPU cores",
        f"- torch {m['torch']}, timm {m['timm']}, transformers {m['transformers']}, "
        f"python {m['python']}; {m['date']}",
        f"- {report['bf16_peak_note']}",
        f"- `{report['command']}`: {report['wall_s']:.0f} s (budget {report['budget_s']:.0f} s)",
        "",
        "| section | figure | value | unit | % of bf16 limit | target | verdict | peak GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, section in report["sections"].items():
        if section["error"]:
            lines.append(
                f"| {name} | **error** ({section['seconds']:.0f} s): "
                f"{section['error'].replace('|', '/')} | | | | | | |"
            )
        for f in section["figures"]:
            pct = "—" if not (peak and f["tflops"]) else f"{100 * f['tflops'] / peak:.1f}"
            verdict = {True: "met", False: "**not met**", None: "—"}[f["met"]]
            mem = "—" if f["peak_gib"] is None else f"{f['peak_gib']:.1f}"
            lines.append(
                f"| {name} | {f['figure']} | {f['value']:,.4g} | {f['unit']} | {pct} | "
                f"{f['target'] or '—'} | {verdict} | {mem} |"
            )
    lines += ["", "| section | seconds | details |", "|---|---|---|"]
    for name, section in report["sections"].items():
        details = json.dumps(section["details"], default=str).replace("|", "/")
        lines.append(f"| {name} | {section['seconds']:.1f} | `{details}` |")
    lines += [f"- note: {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def scratch_parent(dry_run: bool) -> str | None:
    """/dev/shm when it has room for the ViT-H checkpoints the training loops write each epoch
    (10 GB): there a checkpoint is a memory copy, not a minute of disk writes."""
    shm = Path("/dev/shm")
    room = shm.is_dir() and shutil.disk_usage(shm).free > 40 * 2**30
    return str(shm) if room and not dry_run else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (CI)")
    p.add_argument("--out", type=Path, default=ROOT / "out" / "gpu-check")
    p.add_argument("--budget-s", type=float, default=None, help="default 450 (GPU), 300 (dry)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 peak")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    args = p.parse_args(argv)
    names = args.sections.split(",")
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; known: {', '.join(SECTIONS)}")
    if not args.dry_run and DEVICE != "cuda":
        p.error("no CUDA device here: run with --dry-run (tiny shapes on the CPU)")
    sizes = DRY if args.dry_run else GPU
    if args.dry_run:  # tiny shapes gain nothing from threads, and on a shared CPU (CI) idle
        torch.set_num_threads(1)  # OpenMP threads spin against other jobs: 10-50x slower steps
    if args.budget_s:
        sizes = replace(sizes, budget_s=args.budget_s)
    peak, peak_note = bf16_peak(args.peak_tflops)
    print(peak_note, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-", dir=scratch_parent(args.dry_run)))
    os.environ["IJEPA_EVAL_CACHE"] = str(scratch / "cache")
    check = Check(sizes, args.dry_run, peak, scratch)
    start = time.monotonic()
    try:
        with open(args.out / "gpu_check.log", "w") as log:
            sections = run_sections(check, names, log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "schema": 1,
        "dry_run": args.dry_run,
        "command": shlex.join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]]),
        "machine": machine(),
        "bf16_peak_tflops": peak,
        "bf16_peak_note": peak_note,
        "budget_s": sizes.budget_s,
        "wall_s": round(time.monotonic() - start, 2),
        "sizes": asdict(sizes),
        "notes": check.notes,
        "sections": sections,
    }
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(f"wrote {args.out / 'gpu_check.json'} and gpu_check.md ({report['wall_s']:.0f} s)")
    return 1 if any(s["error"] for s in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
