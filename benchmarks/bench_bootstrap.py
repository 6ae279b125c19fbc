"""Cost of the 95% bootstrap intervals (`ijepa_eval.results.stats`) at ImageNet-val size.

50,000 test items, 1,000 classes, 1,000 resamples: the three classification metrics a linear
probe reports (top-1, top-5, mean per-class accuracy), as `run_job` computes them into
``metrics_ci``; then the worst case, a per-image metric with 50,000 distinct values (depth-style:
no two items share a value, so the resample counts cover every item); then a paired comparison
(top-1: McNemar + paired bootstrap). Also the probe it would follow, timed on this machine:
the nearest-class-mean probe (the cheapest probe, no training) on the same 50,000 test items.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_bootstrap.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from ijepa_eval.results import stats

    rng = np.random.default_rng(0)
    n, c = args.items, args.classes
    target = rng.integers(0, c, n).astype(np.int32)
    top5 = rng.integers(0, c, (n, 5)).astype(np.int32)
    top5[:, 0] = np.where(rng.random(n) < 0.7, target, top5[:, 0])
    preds = {"top5": top5, "target": target}
    other = {
        "top5": np.where(rng.random((n, 1)) < 0.05, np.roll(top5, 1, 1), top5),
        "target": target,
    }
    depth = {"rmse": rng.gamma(4.0, 0.1, n).astype(np.float32)}

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    cls = best(lambda: stats.intervals(preds, ["top1", "top5", "mean_per_class_acc"]))
    per_image = best(lambda: stats.intervals(depth, ["rmse"]))
    a, b = stats.item_scores(preds, "top1"), stats.item_scores(other, "top1")
    pair = best(lambda: stats.paired(a, b))
    print(f"{n} items, {c} classes, {stats.RESAMPLES} resamples (best of {args.repeats})")
    print(f"classification metrics_ci (top1, top5, mean_per_class_acc): {cls:.3f} s")
    print(f"per-image metric, {n} distinct values: {per_image:.3f} s")
    print(f"paired top-1 (bootstrap + McNemar): {pair:.3f} s")

    from ijepa_eval.probes.base import Part, ProbeInputs
    from ijepa_eval.probes.nearest_mean import NearestMeanProbe

    torch.manual_seed(0)
    x = torch.randn(n, args.dim)
    inputs = ProbeInputs(
        fit=Part({"lastPOOL": x}, torch.as_tensor(target, dtype=torch.int64)),
        select=None,
        test=Part({"lastPOOL": x}, torch.as_tensor(target, dtype=torch.int64)),
        train=Part({"lastPOOL": x}, torch.as_tensor(target, dtype=torch.int64)),
        num_classes=c,
        representations=("lastPOOL",),
        blocks=(),
        num_heads=1,
        grid=(1, 1),
    )
    probe = NearestMeanProbe()
    config = NearestMeanProbe.parse({"metric": "cosine"})
    probe_s = best(lambda: probe.run(inputs, config, "cpu"))
    print(f"nearest-mean probe, {n} train = test items x {args.dim}-d: {probe_s:.3f} s")
    print(f"classification metrics_ci / nearest-mean probe: {100 * cls / probe_s:.1f}%")


if __name__ == "__main__":
    main()
