"""What whole-model bf16 costs in precision: features and linear-probe top-1 against fp32.

    python benchmarks/bench_precision.py [--ckpt ijepa_tiny_synth] [--classes 72]
                                         [--per-class 50] [--val-per-class 10] [--raw-heads]

One dataset (`data synth-classes`, 64 px, made here: synthetic images, labelled so), encoded
through `ie.extract` with float32 storage under ``fp32``, ``bf16`` (autocast: fp32 weights,
LayerNorms and residual stream; the default on a GPU) and ``bf16-weights`` (the whole model
cast to bf16, as transformers' `pipeline` runs with ``dtype=torch.bfloat16``). Two yardsticks
sit beside them: fp32 with the default float16 storage, and fp32 with another probe seed. For
each it reports:

- the features against fp32's: cosine similarity per image (mean and minimum) and the relative
  error ``|x - x_fp32| / |x_fp32|`` (mean) of lastPOOL (the last block's tokens, mean-pooled),
  and the cosine of concatPOOL4 (the last four blocks pooled, concatenated);
- the linear probe as `make demo` runs it (`linear_grid` with the Makefile's LINEAR settings:
  lrs 0.003–0.1, weight decay 0, 300 steps; lastPOOL and concatPOOL4, raw and whitened
  (`--raw-heads`: raw only), linear and BatchNorm+linear) trained on those train features and
  scored on their val features: the chosen configuration's val top-1 (the task's full 208-head
  grid takes ~10× as long);
- the fp32 run's chosen head applied to those val features: top-1 and the share of
  predictions that change (what a head trained in fp32 sees when the features are bf16).

Prints a Markdown block for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from bench_probes import synth_classes

from ijepa_eval.data import load_dataset
from ijepa_eval.features import extract
from ijepa_eval.models.loading import load_encoder
from ijepa_eval.probes.linear import LinearGridConfig, linear_grid

DEMO_GRID = LinearGridConfig(lrs=(0.003, 0.01, 0.03, 0.1), weight_decays=(0.0,), min_steps=300)
# (row, compute dtype, storage dtype, probe seed); the first is the reference. The second and
# third are yardsticks: the probe's own seed-to-seed spread, and the default float16 storage.
VARIANTS = (
    ("fp32", "fp32", "float32", 0),
    ("fp32, probe seed 1", "fp32", "float32", 1),
    ("fp32, float16 storage (the default)", "fp32", "float16", 0),
    ("bf16 (autocast)", "bf16", "float32", 0),
    ("bf16-weights (whole model)", "bf16-weights", "float32", 0),
)


def features(
    encoder, root: Path, dtype: str, store: str, cache: Path
) -> dict[str, tuple[dict, torch.Tensor]]:
    """``split -> ({representation: (N, D) float32}, labels)`` under one compute dtype."""
    out = {}
    for split in ("train", "val"):
        ds = load_dataset("imagefolder", root, split)
        got = extract(
            encoder,
            ds,
            layers="last4",
            compute_dtype=dtype,
            store_dtype=store,
            cache_dir=cache,
            progress=False,
        )
        pooled = got.pooled().float()  # (N, 4, D)
        reps = {"lastPOOL": pooled[:, -1], "concatPOOL4": pooled.flatten(1)}
        out[split] = (reps, torch.as_tensor(got.labels))
    return out


def compare(x: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    """Mean and minimum cosine similarity per row, and the mean relative error of the rows."""
    cos = torch.nn.functional.cosine_similarity(x, ref, dim=1)
    rel = (x - ref).norm(dim=1) / ref.norm(dim=1)
    return float(cos.mean()), float(cos.min()), float(rel.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", default="ijepa_tiny_synth")
    p.add_argument("--classes", type=int, default=72)
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--val-per-class", type=int, default=10)
    p.add_argument("--raw-heads", action="store_true", help="the grid without whitened heads")
    p.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    args = p.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-precision-"))
    root = synth_classes(work, args.classes, args.per_class, args.val_per_class)
    encoder = load_encoder(args.ckpt)
    config = replace(DEMO_GRID, whiten=(False,)) if args.raw_heads else DEMO_GRID
    feats, grids = {}, {}
    for label, dtype, store, seed in VARIANTS:
        feats[label] = features(encoder, root, dtype, store, work / "cache")
        (train, y_train), (val, y_val) = feats[label]["train"], feats[label]["val"]
        grids[label] = linear_grid(
            train, y_train, val, y_val, num_classes=args.classes, config=replace(config, seed=seed)
        )
    ref = VARIANTS[0][0]
    fp32, head = grids[ref].best, grids[ref].best_head
    rep = fp32["representation"]
    ref_val, y_val = feats[ref]["val"]
    ref_pred = head.predict(ref_val[rep])

    info = encoder.info
    print(f"### Whole-model bf16: its precision cost ({info.arch}, `{args.ckpt}`; synthetic data)")
    print()
    print(
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"torch {torch.__version__}"
    )
    print(
        f"- command: `python benchmarks/bench_precision.py --ckpt {args.ckpt} --classes "
        f"{args.classes} --per-class {args.per_class} --val-per-class {args.val_per_class}"
        f"{' --raw-heads' if args.raw_heads else ''}`"
    )
    print(
        f"- data: `data synth-classes` ({args.classes} classes, {args.per_class} train and "
        f"{args.val_per_class} val images per class, 64 px, seed 0); features stored as float32 "
        "except in the float16 row"
    )
    print(f"- the fp32 grid chose {rep}, whiten={fp32['whiten']}, {fp32['head']}")
    print()
    print(
        "| compute | lastPOOL cosine vs fp32, mean / min | lastPOOL rel. error | concatPOOL4 "
        "cosine, mean / min | probe val top-1 (own grid) | fp32 head on these features: "
        "top-1 / predictions changed |"
    )
    print("|---|---|---|---|---|---|")
    for label, *_ in VARIANTS:
        val = feats[label]["val"][0]
        last = compare(val["lastPOOL"], ref_val["lastPOOL"])
        cat = compare(val["concatPOOL4"], ref_val["concatPOOL4"])
        pred = head.predict(val[rep])
        top1 = 100 * float((pred == y_val).float().mean())
        changed = 100 * float((pred != ref_pred).float().mean())
        print(
            f"| {label} | {last[0]:.6f} / {last[1]:.6f} | {last[2]:.2e} | "
            f"{cat[0]:.6f} / {cat[1]:.6f} | {grids[label].best['val_top1']:.2f} | "
            f"{top1:.2f} / {changed:.2f}% |"
        )
    print()
    print(f"- {len(y_val):,} val images: one image is {100 / len(y_val):.2f} points of top-1")


if __name__ == "__main__":
    main()
