"""Extraction time and peak memory against the number of images and the resolution.

    python benchmarks/bench_scaling.py [--arch small] [--patch 16] [--counts 128,512,2048]
                                       [--res 224,448] [--dtype bf16]

Each (images, resolution) point runs `ie.extract` from JPEG files in a fresh process (random-init
weights, cache refreshed), so its peak RSS is its own. What it shows: time grows linearly with
the number of images and peak memory does not (features stream to shards on disk); both grow
with the resolution (4x the tokens at 448 px, attention quadratic in them). Prints a Markdown
block for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_extract import make_checkpoint
from PIL import Image


def child(args: argparse.Namespace) -> None:
    import ijepa_eval as ie

    encoder = ie.load_encoder(args.ckpt, img_size=args.one_res)
    dataset = ie.load_dataset("imagefolder", args.root, "train")
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    feats = ie.extract(encoder, dataset, compute_dtype=args.dtype, refresh=True, progress=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest loader worker
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak,
                "loaded_mb": rss_loaded,
                "worker_mb": worker,
                "n": len(feats),
            }
        )
    )


def jpegs(root: Path, count: int, source: Path) -> Path:
    """`root/train/cls/` holding the first `count` images of `source` (hard links)."""
    folder = root / "train" / "cls"
    folder.mkdir(parents=True)
    for f in sorted(source.iterdir())[:count]:
        os.link(f, folder / f.name)
    return root


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="small")
    p.add_argument("--patch", type=int, default=16)
    p.add_argument("--counts", default="128,512,2048")
    p.add_argument("--res", default="224,448")
    p.add_argument("--dtype", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--one-res", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    counts = [int(c) for c in args.counts.split(",")]
    resolutions = [int(r) for r in args.res.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    ckpt = make_checkpoint(args.arch, 224, args.patch, work / "model.pth.tar")
    source = work / "all"
    source.mkdir()
    rng = np.random.default_rng(0)
    for i in range(max(counts)):
        pixels = rng.integers(0, 256, (512, 640, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(source / f"{i:05d}.jpg", quality=90)
    rows = []
    for res in resolutions:
        for count in counts:
            root = jpegs(work / f"n{count}-r{res}", count, source)
            env = {**os.environ, "IJEPA_EVAL_CACHE": str(work / "cache")}
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--ckpt",
                str(ckpt),
                "--root",
                str(root),
                "--one-res",
                str(res),
                "--dtype",
                args.dtype,
            ]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            point = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((res, count, point))
            print(f"res {res} images {count}: {point}", file=sys.stderr)
    print(f"### Extraction scaling, ViT-{args.arch}/{args.patch}, {args.dtype}, CPU")
    print()
    print(
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}"
    )
    print(
        f"- command: `python benchmarks/bench_scaling.py --arch {args.arch} --patch "
        f"{args.patch} --counts {args.counts} --res {args.res} --dtype {args.dtype}` (each point "
        "a fresh process: `ie.extract` from 512x640 JPEGs, default batch and workers, float16 "
        "pooled features stored)"
    )
    print()
    print(
        "| resolution | images | wall s | img/s | peak RSS MB | of it, at model load MB "
        "| largest loader worker MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for res, count, pt in rows:
        print(
            f"| {res} | {count:,} | {pt['seconds']:.1f} | {count / pt['seconds']:.1f} | "
            f"{pt['peak_mb']:.0f} | {pt['loaded_mb']:.0f} | {pt['worker_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
