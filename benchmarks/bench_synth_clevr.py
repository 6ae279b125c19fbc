"""Wall time of ``data synth-clevr``: 2,000 scenes at 128×128 into a fresh temporary folder.

    python benchmarks/bench_synth_clevr.py              # the recorded figure (target: < 60 s)
    python benchmarks/bench_synth_clevr.py --scenes 500 --size 64 --workers 1

Timed end to end as a user sees it: sampling, ray casting, shading, PNG encoding and the atomic
(fsync'ed) writes of images, depth maps and scenes JSON. Split 1,600 train + 400 val.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from ijepa_eval.data.synth import generate_clevr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=2000, help="train + val scenes")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    args = parser.parse_args()
    val = args.scenes // 5
    with tempfile.TemporaryDirectory(prefix="bench-synth-clevr-") as tmp:
        start = time.perf_counter()
        generate_clevr(
            Path(tmp) / "CLEVR_v1.0",
            train=args.scenes - val,
            val=val,
            size=args.size,
            seed=0,
            workers=args.workers,
            progress=False,
        )
        seconds = time.perf_counter() - start
    print(
        f"synth-clevr: {args.scenes} scenes at {args.size}x{args.size} in {seconds:.1f} s "
        f"({args.scenes / seconds:.1f} scenes/s) on {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}"
    )


if __name__ == "__main__":
    main()
