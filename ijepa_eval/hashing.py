"""Content hashes of large files, computed once.

Hashing a 2.5 GB checkpoint takes seconds; the result is remembered in the cache keyed by
(path, size, mtime), so a file that has not changed is never hashed twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from ijepa_eval import atomic
from ijepa_eval.paths import cache_dir

_CHUNK = 8 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, served from the memo when the file is unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    key = str(path)
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    memo = _read_memo()
    entry = memo.get(key)
    if entry and {k: entry.get(k) for k in stamp} == stamp:
        return entry["sha256"]
    memo[key] = {**stamp, "sha256": digest_file(path)}
    _write_memo(memo)
    return memo[key]["sha256"]


def digest_file(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, always read afresh, in 8 MB chunks into one buffer.

    ``sha256`` (checkpoints, downloads, content fingerprints) or ``xxh3_128`` (the feature
    cache's damage check: 5× faster, benchmarks/RESULTS.md).
    """
    if algorithm == "xxh3_128":
        import xxhash

        digest = xxhash.xxh3_128()
    else:
        digest = hashlib.new(algorithm)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while size := f.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def _memo_path() -> Path:
    return cache_dir() / "sha256-memo.json"


def _read_memo() -> dict[str, dict]:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}  # no memo yet, or an unreadable one: start afresh


def _write_memo(memo: dict[str, dict]) -> None:
    with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
        atomic.write_json(_memo_path(), memo)
