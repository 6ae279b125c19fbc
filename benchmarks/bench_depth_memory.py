"""A depth run over a patch-token cache larger than 2 GB, with the peak RSS it costs.

    python benchmarks/bench_depth_memory.py [--train 22000] [--size 64] [--out /tmp/depth-mem]

Renders synth-clevr (depth maps beside it), extracts the tiny official-format checkpoint's
patch tokens of both blocks at 64 px in float32 (64 tokens x 192 x 2 blocks = 96 KiB an image),
then runs the `depth_synth` task on them in a fresh process (a cache hit) and reports that
process's peak RSS next to the size of the token cache it streamed through, and how long of its
wall time went to verifying the cache's checksums (`verify_s`: every array it reads is checked
once against the checksum recorded at commit, see ijepa_eval/features/store.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_cache_verify import VERIFY_TIMER  # benchmarks/ is on the path of a script run

CKPT = (
    Path(__file__).resolve().parents[1] / "tests/fixtures/official-ijepa/tiny-vit-p8-32px.pth.tar"
)
RUN = (
    VERIFY_TIMER
    + """
import json, resource, sys, time
from dataclasses import replace
import ijepa_eval as ie
from ijepa_eval.tasks import evaluate, get_task
ckpt, size, data, results = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
spec = get_task("depth_synth")
spec = replace(spec, probe=replace(spec.probe, representations=("linear4",)))
start = time.perf_counter()
encoder = ie.load_encoder(ckpt, img_size=size)
result = evaluate(spec, encoder=encoder, data=data, results_dir=results,
                  params={"epochs": 1, "lrs": [0.01]},
                  extraction=ie.ExtractOptions(store_dtype="float32", progress=False))
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "seconds": time.perf_counter() - start, "verify_s": round(verify_s[0], 2),
    "metrics": result.record["metrics"],
    "baseline": result.record["baselines"]["train_mean_depth_map"],
    "entries": result.record["features"]["entries"], "record": str(result.path)}))
"""
)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=22000)
    p.add_argument("--val", type=int, default=500)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("/tmp/depth-mem"))
    args = p.parse_args()
    os.environ["IJEPA_EVAL_CACHE"] = str(args.out / "cache")

    import ijepa_eval as ie
    from ijepa_eval.data.synth import generate_clevr

    started = time.perf_counter()
    root = generate_clevr(args.out / "CLEVR_v1.0", train=args.train, val=args.val, size=args.size)
    generated = time.perf_counter() - started
    enc = ie.load_encoder(CKPT, img_size=args.size)
    started = time.perf_counter()
    for split in ("train", "val"):
        ds = ie.load_dataset("depth_folder", root / "depth", split)
        ie.extract(enc, ds, layers=[0, 1], tokens="all", store_dtype="float32", shard_size=1024)
    extracted = time.perf_counter() - started
    cache_bytes = sum(f.stat().st_size for f in (args.out / "cache").rglob("tokens.npy"))
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN,
            str(CKPT),
            str(args.size),
            str(root / "depth"),
            str(args.out / "results"),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "IJEPA_EVAL_CACHE": str(args.out / "cache")},
    )
    report = json.loads(run.stdout.strip().splitlines()[-1])
    print(
        json.dumps(
            {
                "train": args.train,
                "val": args.val,
                "size": args.size,
                "generate_s": round(generated, 1),
                "extract_s": round(extracted, 1),
                "token_cache_gb": round(cache_bytes / 1e9, 3),
                **report,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
