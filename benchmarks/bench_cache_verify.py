"""What verifying the feature cache on read costs: the checksum's speed, and its share of a
cache-hit run on pooled features.

    python benchmarks/bench_cache_verify.py [--images 20000] [--out /tmp/cache-verify]

1. Throughput of candidate checksums over a 512 MB file in the page cache (sha256, blake2b,
   crc32 and xxh3), read as the cache reads it: 8 MB `readinto` chunks.
2. A `knn` run (synth-classes at 64 px, the bundled checkpoint) twice: the first extracts, the
   second, in a fresh process, is a cache hit; that process reports its wall time and the time
   spent in `Entry.damage` (the verification). `bench_depth_memory.py` does the same for a
   2.2 GB patch-token cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

# Run inside a fresh process before the evaluation: adds up the time spent verifying.
VERIFY_TIMER = """
import time
from ijepa_eval.features import store
verify_s = [0.0]
_damage = store.Entry.damage
def _timed(*args, **kwargs):
    started = time.perf_counter()
    try:
        return _damage(*args, **kwargs)
    finally:
        verify_s[0] += time.perf_counter() - started
store.Entry.damage = _timed
"""

HIT = (
    VERIFY_TIMER
    + """
import json, sys
started = time.perf_counter()
import ijepa_eval as ie
result = ie.evaluate("knn", ckpt="ijepa_tiny_synth", data=sys.argv[1],
                     results_dir=sys.argv[2], extraction=ie.ExtractOptions(progress=False))
print(json.dumps({"seconds": time.perf_counter() - started, "verify_s": verify_s[0],
    "cache_hits": [e["cache_hit"] for e in result.record["features"]["entries"]],
    "top1": result.record["metrics"].get("top1_k20")}))
"""
)


def throughput(path: Path) -> dict[str, float]:
    import xxhash

    makers = {
        "sha256 (hashlib)": hashlib.sha256,
        "blake2b (hashlib)": hashlib.blake2b,
        "xxh3_64 (xxhash)": xxhash.xxh3_64,
        "xxh3_128 (xxhash)": xxhash.xxh3_128,
        "crc32 (zlib)": None,
        "read only": False,
    }
    size = path.stat().st_size
    out = {}
    for name, make in makers.items():
        buffer = bytearray(8 << 20)
        view = memoryview(buffer)
        digest, crc = (make() if make else None), 0
        started = time.perf_counter()
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                if digest is not None:
                    digest.update(view[:n])
                elif make is None:
                    crc = zlib.crc32(view[:n], crc)
        out[name] = round(size / (time.perf_counter() - started) / 1e9, 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=20000, help="training images (val: a tenth)")
    p.add_argument("--out", type=Path, default=Path("/tmp/cache-verify"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    blob = args.out / "blob.bin"
    if not blob.exists():
        blob.write_bytes(os.urandom(512 << 20))
    throughput(blob)  # once to bring it into the page cache
    speeds = throughput(blob)

    from ijepa_eval.data.synth import generate_classes

    per_class = args.images // 10
    data = generate_classes(
        args.out / "data", classes=10, per_class=per_class, size=64, progress=False
    )
    env = {**os.environ, "IJEPA_EVAL_CACHE": str(args.out / "cache")}
    runs = []
    for _ in range(3):  # extract, then two cache hits
        done = subprocess.run(
            [sys.executable, "-c", HIT, str(data), str(args.out / "results")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    pooled = sum(f.stat().st_size for f in (args.out / "cache").rglob("pooled.npy"))
    hits = [r for r in runs if all(r["cache_hits"])]
    print(
        json.dumps(
            {
                "checksum_gb_per_s": speeds,
                "pooled_cache_mb": round(pooled / 1e6, 1),
                "runs": runs,
                "hit_verify_share": [round(r["verify_s"] / r["seconds"], 4) for r in hits],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
