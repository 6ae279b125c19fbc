"""Two identical extractions started together into one cache, against one alone: CPU time,
wall time, who computed which shard, and whether the arrays are byte-identical.

    python benchmarks/bench_concurrent_extract.py [--images 4000] [--out /tmp/concurrent]

Each run is a fresh `ijepa-eval extract` process (the bundled checkpoint on synth-classes at
64 px, shards of 128 images); CPU time is the process's own user + system time (`os.wait4`),
start-up included, as a user would pay it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

EVAL = Path(sys.executable).with_name("ijepa-eval")


def extract(data: Path, cache: Path, count: int) -> list[dict]:
    """Start ``count`` identical extractions together; their CPU and wall seconds."""
    args = [str(EVAL), "extract", "--data", str(data), "--cache-dir", str(cache)]
    args += ["--shard-size", "128", "--store", "float32"]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(count)
    ]
    out = []
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        said = proc.stdout.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"an extraction failed: {said}")
        here = re.search(r"\((\d+) of (\d+) shards here", said)
        out.append(
            {
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "wall_s": round(time.perf_counter() - started, 2),
                "shards_here": 0 if "from the cache" in said else int(here[1]) if here else "all",
            }
        )
    return out


def arrays(cache: Path) -> dict[str, bytes]:
    (entry,) = [p.parent for p in cache.glob("*/*/manifest.json")]
    return {str(p.relative_to(entry)): p.read_bytes() for p in sorted(entry.glob("shards/*/*.npy"))}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--out", type=Path, default=Path("/tmp/concurrent"))
    args = p.parse_args()
    from ijepa_eval.data.synth import generate_classes

    data = generate_classes(
        args.out / "data", classes=10, per_class=args.images // 10, size=64, progress=False
    )
    for name in ("lone", "pair"):
        shutil.rmtree(args.out / name, ignore_errors=True)
    lone = extract(data, args.out / "lone", 1)
    pair = extract(data, args.out / "pair", 2)
    pair_cpu = sum(r["cpu_s"] for r in pair)
    print(
        json.dumps(
            {
                "images": args.images,
                "lone": lone,
                "pair": pair,
                "pair_cpu_over_lone": round(pair_cpu / lone[0]["cpu_s"], 3),
                "byte_identical": arrays(args.out / "lone") == arrays(args.out / "pair"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
