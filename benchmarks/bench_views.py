"""Training views (issue 15): what cached augmented views do to the linear probe's top-1 and to
time, on synthetic data.

    python benchmarks/bench_views.py [--classes 72 --per-class 70 --val-per-class 50]
                                     [--workdir /tmp/bench-views] [--threads 1]

The `linprobe` task (its default grid; test = the val split, selection = 10% held out of train)
on `data synth-classes` images (64 px) encoded by the bundled checkpoint, once per training-view
setting: none, hflip, random:1, random:2, random:4, random:8. Views are cached, and random:K's
views are the first K of random:8's, so the runs go in that order and each extracts only the
views it adds; a setting's cold-cache cost is then the plain pass plus each of its view passes,
each as measured when it was first computed. Probe seconds are the record's (the grid, the
refit and the test); top-1 is on the reported split, with its binomial standard error.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

SETTINGS = ("none", "hflip", "random:1", "random:2", "random:4", "random:8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=72)
    parser.add_argument("--per-class", type=int, default=70)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-views"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from bench_probes import synth_classes

    import ijepa_eval as ie

    root = synth_classes(args.workdir, args.classes, args.per_class, args.val_per_class)
    encoder = ie.load_encoder("ijepa_tiny_synth")
    options = ie.ExtractOptions(
        cache_dir=args.workdir / "cache", progress=False, workers=args.workers
    )
    pass_s: dict[str, float] = {}  # first-computed seconds of each cache entry ("" = plain)
    rows = []
    for setting in args.settings:
        started = time.perf_counter()
        result = ie.evaluate(
            "linprobe",
            encoder=encoder,
            data=str(root),
            views=setting,
            extraction=options,
            results_dir=args.workdir / "results",
        )
        record = result.record
        items = {"train": record["splits"]["fit"] + record["splits"]["select"]}
        items["test"] = record["splits"]["test"]
        computed = [e for e in record["features"]["entries"] if not e["cache_hit"]]
        total = sum(items[e["split"]] for e in computed)
        for e in computed:  # the run's extraction time, shared by what it computed, per image
            if e["split"] == "train":
                pass_s[e.get("view", "")] = record["timings"]["extract_s"] * items["train"] / total
        views = [e.get("view", "") for e in record["features"]["entries"] if e["split"] == "train"]
        top1 = record["metrics"]["top1"]
        n_test = record["splits"]["test"]
        rows.append(
            {
                "setting": setting,
                "passes": len(views),
                "extract_s": sum(pass_s.get(v, float("nan")) for v in views),
                "probe_s": record["timings"]["probe_s"],
                "top1": top1,
                "se": 100 * math.sqrt(top1 / 100 * (1 - top1 / 100) / n_test),
                "chosen": record["chosen"],
                "wall_s": time.perf_counter() - started,
                "splits": record["splits"],
            }
        )
        print(f"{setting}: top1 {top1:.2f}, {rows[-1]}", file=sys.stderr, flush=True)
    report(args, rows)


def report(args: argparse.Namespace, rows: list[dict]) -> None:
    import torch

    splits = rows[0]["splits"]
    print(
        f"- Date {datetime.date.today()}; {platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {torch.get_num_threads()} torch threads."
    )
    print(f"- Command: `python {shlex.join(sys.argv)}`")
    print(
        f"- Data (synthetic): `data synth-classes`, {args.classes} classes, 64 px, seed 0; fit "
        f"{splits.get('fit')} + select {splits.get('select')} (held out of train), test "
        f"{splits.get('test')} (the val split); bundled `ijepa_tiny_synth`."
    )
    print()
    print("| views | train passes | extraction s (cold) | probe s | top-1 % | ± SE | chosen |")
    print("|---|---|---|---|---|---|---|")
    base = rows[0]
    for row in rows:
        chosen = row["chosen"]
        picked = f"{chosen['representation']}, {chosen['head']}, lr {chosen['lr']:g}"
        print(
            f"| {row['setting']} | {row['passes']} | {row['extract_s']:.1f} "
            f"({row['extract_s'] / base['extract_s']:.1f}×) | {row['probe_s']:.0f} | "
            f"{row['top1']:.2f} | {row['se']:.2f} | {picked} |"
        )


if __name__ == "__main__":
    main()
