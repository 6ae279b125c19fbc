"""The feature cache: content-addressed entries of atomically committed shards.

Layout under the cache root (``~/.cache/ijepa-eval/features`` by default)::

    <base key>/                    what was encoded: checkpoint, network, data, preprocessing…
      <variant>/                   what was kept: blocks, tokens, storage dtype
        entry.json                 the key's fields, item count, shard size (written first)
        shards/00000/              one committed shard: pooled.npy, [tokens.npy],
                                   shard.json (sha256 of each file); a directory appears under
                                   its final name by one rename, so a half-written shard is
                                   never visible
        manifest.json              written last, once every shard is there: the entry is complete

A request is served by any complete variant that covers it (the last block from an entry that
holds all blocks). Each shard is computed under its own file lock, so two processes — or the
ranks of a torchrun job — share the work of one entry instead of colliding.

Every file a process reads is first checked against the checksum recorded when its shard was
committed (xxh3-128: it detects damage, not tampering). `Entry.damage` says what is off — a
changed, truncated or missing array, a lost shard, an unreadable ``manifest.json`` — and
`Entry.discard` drops exactly that, so the next extraction recomputes only those shards. An
entry whose ``entry.json`` is unreadable is a `BrokenEntry`: listed, verified, removable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import mmap
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from ijepa_eval import atomic
from ijepa_eval.errors import CacheWarning, UserError
from ijepa_eval.features.spec import FeatureSpec
from ijepa_eval.hashing import digest_file
from ijepa_eval.paths import cache_dir

EXTRACTOR_VERSION = 1
CHECKSUM = "xxh3_128"  # 7 GB/s here vs 1.3 for sha256 (benchmarks/RESULTS.md); older: sha256
_verified: dict[str, tuple[int, int, int, str]] = {}  # path → (inode, size, mtime, checksum)


def default_root() -> Path:
    return cache_dir() / "features"


def key_of(fields: dict[str, Any]) -> str:
    """A short stable hash of JSON-able fields."""
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def variant_of(spec: FeatureSpec) -> str:
    return "v-" + key_of({"layers": spec.layers, "tokens": spec.tokens, "dtype": spec.store_dtype})


def _intact(path: Path, expected: dict[str, Any], *, remember: bool = True) -> str | None:
    """None if ``path`` holds what was committed; otherwise what is wrong with it.

    A file checked once by this process is not read again until it changes (inode, size or
    mtime): a sweep over many tasks pays for each array once.
    """
    algo = CHECKSUM if CHECKSUM in expected else "sha256"
    want = expected.get(algo)
    if want is None:
        return "no checksum recorded"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns, want)
    if remember and _verified.get(str(path)) == stamp:
        return None
    try:
        got = digest_file(path, algo)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if got != want:
        return "checksum mismatch"
    if remember:
        _verified[str(path)] = stamp
    return None


@dataclass(frozen=True)
class Damage:
    """One thing wrong in an entry; ``shard`` None: the manifest itself."""

    shard: int | None
    what: str


class _Named:
    dir: Path

    @property
    def key(self) -> str:
        return f"{self.dir.parent.name}/{self.dir.name}"

    @property
    def short_key(self) -> str:
        """Enough of the key to name it on the command line (``cache rm``)."""
        return f"{self.dir.parent.name[:8]}/{self.dir.name.removeprefix('v-')[:6]}"

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file())


class BrokenEntry(_Named):
    """An entry directory whose ``entry.json`` cannot be read: nothing in it can be trusted."""

    def __init__(self, directory: Path, problem: str) -> None:
        self.dir, self.problem = directory, problem


class Entry(_Named):
    """One cache entry: a directory of shards, complete once ``manifest.json`` exists."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        try:
            self.meta: dict[str, Any] = json.loads((directory / "entry.json").read_text())
            self.spec = FeatureSpec(
                layers=tuple(self.meta["spec"]["layers"]),
                tokens=self.meta["spec"]["tokens"],
                store_dtype=self.meta["spec"]["store_dtype"],
            )
            if self.num_items < 0 or self.shard_size < 1:
                raise ValueError("bad sizes")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _Unreadable(f"entry.json is unreadable ({type(exc).__name__})") from None

    @property
    def num_items(self) -> int:
        return int(self.meta["num_items"])

    @property
    def shard_size(self) -> int:
        return int(self.meta["shard_size"])

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.num_items // self.shard_size))

    def shard_range(self, index: int) -> range:
        start = index * self.shard_size
        return range(start, min(start + self.shard_size, self.num_items))

    def shard_dir(self, index: int) -> Path:
        return self.dir / "shards" / f"{index:05d}"

    def is_committed(self, index: int) -> bool:
        return (self.shard_dir(index) / "shard.json").is_file()

    def shard_record(self, index: int) -> dict[str, Any] | None:
        """A committed shard's ``shard.json`` (its files' checksums), None if gone or unreadable."""
        try:
            record = json.loads((self.shard_dir(index) / "shard.json").read_text())
            return record if isinstance(record.get("files"), dict) else None
        except (OSError, ValueError, AttributeError):
            return None

    def missing_shards(self) -> list[int]:
        return [i for i in range(self.num_shards) if not self.is_committed(i)]

    def shard_lock(self, index: int) -> FileLock:
        return FileLock(str(self.dir / "shards" / f"{index:05d}.lock"))

    @property
    def complete(self) -> bool:
        return (self.dir / "manifest.json").is_file()

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.dir / "manifest.json").read_text())

    def commit_shard(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Write a shard's arrays into a private directory, then rename it into place.

        Call it holding the shard's lock; a shard another process committed first is kept.
        """
        expected = len(self.shard_range(index))
        if any(len(a) != expected for a in arrays.values()):
            raise RuntimeError(f"shard {index} holds the wrong number of items")
        final = self.shard_dir(index)
        tmp = atomic.temp_path(final)
        try:
            tmp.mkdir(parents=True)
            files = {}
            for name, array in arrays.items():
                path = tmp / f"{name}.npy"
                np.save(path, array, allow_pickle=False)
                files[name] = {CHECKSUM: digest_file(path, CHECKSUM), "shape": list(array.shape)}
            info = {"index": index, "items": expected, "files": files}
            (tmp / "shard.json").write_text(json.dumps(info))
            if not self.is_committed(index):
                shutil.rmtree(final, ignore_errors=True)  # what a discard may have left
                os.rename(tmp, final)
        except OSError as exc:
            if self.is_committed(index):
                return  # another process (without working locks) committed it first
            raise UserError(
                f"could not write shard {index} of {self.dir} ({exc.strerror or exc}); nothing "
                "partial was kept: free some space (or fix permissions) and rerun to resume"
            ) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def finalize(self, extra: dict[str, Any]) -> None:
        shards = [self.shard_record(i) for i in range(self.num_shards)]
        if any(shard is None for shard in shards):
            raise UserError(f"cache entry {self.key} lost a shard while it was finished; rerun")
        manifest = {
            **self.meta,
            **extra,
            "completed": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "shards": shards,
        }
        atomic.write_json(self.dir / "manifest.json", manifest)
        for lock in (self.dir / "shards").glob("*.lock"):  # all committed: none is needed again
            lock.unlink(missing_ok=True)

    def damage(self, names: Iterable[str] | None = None, *, remember: bool = True) -> list[Damage]:
        """What of a complete entry no longer holds what was committed (empty: all intact).

        ``names``: the arrays to check (``pooled``, ``tokens``); all by default. Checked against
        the manifest, or each shard's own ``shard.json`` when the manifest is unreadable.
        """
        problems = []
        try:
            listed = {s["index"]: s["files"] for s in self.manifest["shards"]}
            if sorted(listed) != list(range(self.num_shards)):
                raise ValueError("shards do not match")
        except (OSError, ValueError, KeyError, TypeError):
            problems.append(Damage(None, "manifest.json is unreadable"))
            listed = {}
        for index in range(self.num_shards):
            record = self.shard_record(index)
            files = listed.get(index) or (record or {}).get("files")
            where = f"shards/{index:05d}"
            if record is None or files is None:
                problems.append(Damage(index, f"{where} is missing or unreadable"))
                continue
            for name in names if names is not None else files:
                if name not in files:
                    problems.append(Damage(index, f"{where}/{name}.npy was never written"))
                    continue
                path = self.shard_dir(index) / f"{name}.npy"
                wrong = _intact(path, files[name], remember=remember)
                if wrong:
                    problems.append(Damage(index, f"{where}/{name}.npy: {wrong}"))
        return problems

    def discard(self, problems: Iterable[Damage]) -> list[int]:
        """Drop the manifest and each damaged shard, so an extraction recomputes just those."""
        shards = sorted({p.shard for p in problems if p.shard is not None})
        with FileLock(str(self.dir / "entry.lock")):
            (self.dir / "manifest.json").unlink(missing_ok=True)
        for index in shards:
            with self.shard_lock(index):
                shutil.rmtree(self.shard_dir(index), ignore_errors=True)
        return shards

    def verify(self) -> list[str]:
        """Problems found by re-reading every file (empty: all good); for `cache verify`."""
        if not self.complete:
            return [f"{self.key}: incomplete ({len(self.missing_shards())} shards missing)"]
        return [f"{self.key}: {p.what}" for p in self.damage(remember=False)]


class _Unreadable(Exception):
    """An entry directory whose entry.json cannot be read."""


class FeatureStore:
    """All entries under one root."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def find(self, base_key: str, spec: FeatureSpec) -> Entry | None:
        """A complete entry that covers ``spec`` (the smallest such), or None."""
        candidates = [
            e
            for e in self._scan(self.root / base_key)
            if isinstance(e, Entry) and e.complete and e.spec.covers(spec)
        ]
        return min(candidates, key=lambda e: len(e.spec.layers), default=None)

    def open(
        self,
        base_key: str,
        spec: FeatureSpec,
        meta: dict[str, Any],
        num_items: int,
        shard_size: int,
    ) -> Entry:
        """The entry for exactly ``spec``, created if new; an existing one keeps its shard size.

        One whose ``entry.json`` is unreadable is started afresh (its shards cannot be trusted).
        """
        directory = self.root / base_key / variant_of(spec)
        try:
            (directory / "shards").mkdir(parents=True, exist_ok=True)
            atomic.remove_stale_temporaries(directory / "shards")
            with FileLock(str(directory / "entry.lock")):
                if (directory / "entry.json").is_file():
                    try:
                        Entry(directory)
                    except _Unreadable as exc:
                        _warn(
                            f"cache entry {base_key[:8]}/{directory.name[2:8]}: {exc}; "
                            "extracting it afresh"
                        )
                        (directory / "manifest.json").unlink(missing_ok=True)
                        shutil.rmtree(directory / "shards", ignore_errors=True)
                        (directory / "shards").mkdir()
                        (directory / "entry.json").unlink()
                if not (directory / "entry.json").is_file():
                    record = {
                        **meta,
                        "spec": {
                            "layers": list(spec.layers),
                            "tokens": spec.tokens,
                            "store_dtype": spec.store_dtype,
                        },
                        "num_items": num_items,
                        "shard_size": shard_size,
                        "extractor_version": EXTRACTOR_VERSION,
                        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    }
                    atomic.write_json(directory / "entry.json", record)
        except OSError as exc:
            raise UserError(
                f"feature cache {self.root} is not writable ({exc.strerror or exc}); point "
                "--cache-dir or IJEPA_EVAL_CACHE at a writable directory"
            ) from exc
        entry = Entry(directory)
        if entry.num_items != num_items:
            raise UserError(
                f"cache entry {entry.key} was started for {entry.num_items} items, the data now "
                f"has {num_items}: the data changed; rerun with --refresh"
            )
        return entry

    def remove(self, entry: Entry | BrokenEntry) -> None:
        shutil.rmtree(entry.dir)
        if entry.dir.parent.is_dir() and not any(entry.dir.parent.iterdir()):
            entry.dir.parent.rmdir()

    def entries(self) -> list[Entry]:
        """Every readable entry."""
        return [e for e in self.all_entries() if isinstance(e, Entry)]

    def all_entries(self) -> list[Entry | BrokenEntry]:
        """Every entry directory, readable or not (`cache ls`, `verify`, `rm` show both)."""
        if not self.root.is_dir():
            return []
        return [e for base in sorted(self.root.iterdir()) for e in self._scan(base)]

    def get(self, key: str) -> Entry | BrokenEntry:
        """An entry by its key ``base/variant``, each part possibly shortened to a prefix."""
        base, _, variant = key.partition("/")
        matches = [
            e
            for e in self.all_entries()
            if e.dir.parent.name.startswith(base)
            and e.dir.name.removeprefix("v-").startswith(variant.removeprefix("v-"))
        ]
        if len(matches) != 1:
            found = "no entry" if not matches else f"{len(matches)} entries"
            raise UserError(f"{found} matches cache key {key!r}; `ijepa-eval cache ls` lists them")
        return matches[0]

    @staticmethod
    def _scan(base: Path) -> Iterator[Entry | BrokenEntry]:
        if not base.is_dir():
            return
        for variant in sorted(base.iterdir()):
            if (variant / "entry.json").is_file():
                try:
                    yield Entry(variant)
                except _Unreadable as exc:
                    yield BrokenEntry(variant, str(exc))


def _warn(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


class FeatureSet:
    """Read side of a complete entry: pooled features and optional tokens (memory-mapped)."""

    def __init__(
        self,
        entry: Entry,
        layers: tuple[int, ...],
        labels: np.ndarray | None = None,
        *,
        hit: bool = False,
        computed: list[int] | None = None,
    ) -> None:
        if not entry.complete:
            raise RuntimeError(f"cache entry {entry.key} is not complete")
        self.entry = entry
        self.layers = layers
        self.labels = labels  # from the dataset, not the cache: tasks may label images differently
        self.hit = hit  # served from the cache without encoding anything
        self.computed = computed or []  # shards this process encoded (others: another process)
        self._pos = [entry.spec.layers.index(layer) for layer in layers]

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def manifest(self) -> dict[str, Any]:
        return self.entry.manifest

    def __len__(self) -> int:
        return self.entry.num_items

    def _shards(self, name: str) -> list[np.ndarray]:
        return [
            np.load(self.entry.shard_dir(i) / f"{name}.npy", mmap_mode="r")
            for i in range(self.entry.num_shards)
        ]

    def _as_tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.view(torch.bfloat16) if self.entry.spec.store_dtype == "bfloat16" else tensor

    def pooled(self) -> torch.Tensor:
        """``(N, L, D)``: per requested block, the mean of its final-normed patch tokens."""
        return self._as_tensor(np.concatenate([s[:, self._pos] for s in self._shards("pooled")]))

    def tokens(self) -> TokenArray:
        if self.entry.spec.tokens == "none":
            raise UserError(f"cache entry {self.key} holds no patch tokens; extract with --tokens")
        shards = [
            MappedNpy(self.entry.shard_dir(i) / "tokens.npy") for i in range(self.entry.num_shards)
        ]
        return TokenArray(shards, self._pos, self._as_tensor)


class MappedNpy:
    """A read-only ``.npy`` mapped into memory, whose pages can be handed back after a read.

    Reading rows of a mapping makes those pages resident and counted in the process's RSS
    until unmapped; `release` tells the kernel we are done with them (they stay in the page
    cache), so streaming a token cache larger than RAM keeps the RSS at one batch.
    """

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if fortran:
            raise RuntimeError(f"{path} is Fortran-ordered; the cache never writes that")
        self.array = np.ndarray(shape, dtype=dtype, buffer=self._map, offset=offset)

    def release(self) -> None:
        if hasattr(self._map, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)


class TokenArray:
    """Patch tokens ``(N, L, T, D)`` spread over memory-mapped shards; indexing reads only rows."""

    def __init__(self, shards: list[MappedNpy], positions: list[int], as_tensor) -> None:
        self._shards = shards
        self._pos = positions
        self._as_tensor = as_tensor
        self._starts = np.cumsum([0] + [len(s.array) for s in shards])
        first = shards[0].array
        self.shape = (int(self._starts[-1]), len(positions), *first.shape[2:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> torch.Tensor:
        rows = np.arange(len(self))[index]
        scalar = np.ndim(rows) == 0
        rows = np.atleast_1d(rows)
        shard_of = np.searchsorted(self._starts, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), dtype=self._shards[0].array.dtype)
        for shard in np.unique(shard_of):
            mask = shard_of == shard
            local = rows[mask] - self._starts[shard]
            out[mask] = self._shards[shard].array[local[:, None], self._pos]  # only these blocks
            self._shards[shard].release()
        tensor = self._as_tensor(out)
        return tensor[0] if scalar else tensor
