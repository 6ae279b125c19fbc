"""Frozen feature extraction: one forward per image, every requested block, into the cache.

``extract(encoder, dataset)`` returns a `FeatureSet`. It looks in the cache first (a hit costs
a few file reads); otherwise it encodes the shards the entry still lacks — after a crash, only
those — and commits each one atomically. Under torchrun each rank takes every N-th shard.
"""

from __future__ import annotations

import copy
import ctypes
import hashlib
import json
import os
import time
import warnings
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from filelock import BaseFileLock, Timeout
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch.utils.data import DataLoader, Dataset

from ijepa_eval import atomic
from ijepa_eval.data.base import EvalDataset
from ijepa_eval.dist import World, world
from ijepa_eval.errors import CacheWarning, UserError
from ijepa_eval.features.spec import FeatureSpec, parse_layers, parse_store_dtype, parse_tokens
from ijepa_eval.features.store import (
    EXTRACTOR_VERSION,
    Damage,
    Entry,
    FeatureSet,
    FeatureStore,
    key_of,
)
from ijepa_eval.models.vit import Encoder


@dataclass(frozen=True)
class Numerics:
    """How the forward computes. Under autocast (the default) the weights, LayerNorms, softmax
    and residual stream stay in fp32 and only the matrix products run in ``dtype``; with
    ``whole_model`` a copy of the encoder is cast to ``dtype`` and everything runs in it, as
    transformers' ``pipeline(dtype=torch.bfloat16)`` does: faster on a CPU, less precise
    (benchmarks/RESULTS.md measures both)."""

    dtype: torch.dtype
    whole_model: bool = False

    @property
    def key(self) -> str:
        """The cache key's ``compute_dtype`` (autocast's names are those of earlier versions)."""
        name = str(self.dtype).removeprefix("torch.")
        return f"{name}-weights" if self.whole_model else name


COMPUTE_DTYPES = {
    "fp32": Numerics(torch.float32),
    "bf16": Numerics(torch.bfloat16),
    "fp16": Numerics(torch.float16),
    "bf16-weights": Numerics(torch.bfloat16, whole_model=True),
}
_NUMPY_STORE = {"float16": np.float16, "float32": np.float32}
console = Console(stderr=True)


def extract(
    encoder: Encoder,
    dataset: Dataset,
    *,
    layers: str | Sequence[int] = "last",
    tokens: str = "none",
    store_dtype: str = "float16",
    compute_dtype: str | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    shard_size: int = 1024,
    refresh: bool = False,
    compile: bool = False,
    progress: bool = True,
) -> FeatureSet:
    """Features of ``dataset`` under ``encoder``, from the cache or computed into it.

    Args:
        layers: ``last``, ``last4``, ``all`` or block indices; all come from one forward.
        tokens: ``none``; ``all`` patch tokens; or ``grid:HxW``, tokens average-pooled to HxW.
        store_dtype: ``float16`` (default), ``float32`` or ``bfloat16`` on disk.
        compute_dtype: ``fp32`` / ``bf16`` / ``fp16`` autocast (default bf16 on GPU, fp32 on
            CPU), or ``bf16-weights``: the whole model in bf16 (`Numerics`).
        batch_size: images per forward; default 256 on GPU (halved on out-of-memory), 32 on CPU.
        shard_size: images per committed shard (a crash loses at most one shard of work).
        refresh: ignore and replace what the cache holds for these inputs.
    """
    if encoder.info is None or encoder.preprocess is None:
        raise UserError(
            "extract needs an encoder from load_encoder (its checkpoint hash keys the cache)"
        )
    spec = FeatureSpec(
        layers=parse_layers(layers, len(encoder.blocks)),
        tokens=parse_tokens(tokens, encoder.grid),
        store_dtype=parse_store_dtype(store_dtype),
    )
    the_world = world()
    dev = _device(device, the_world)
    numerics = _numerics(compute_dtype, dev)
    store = FeatureStore(cache_dir)
    fields = _key_fields(encoder, dataset, numerics)
    base_key = key_of(fields)

    labels = _labels(dataset)
    fill = spec  # what to extract: the request, or a damaged entry's own spec to repair it
    hit = None if refresh else store.find(base_key, spec)
    if hit is not None:
        atomic.remove_stale_temporaries(hit.dir / "shards")  # left by a process killed there
        damage = hit.damage(["pooled"] if spec.tokens == "none" else ["pooled", "tokens"])
        if not damage:
            return FeatureSet(hit, spec.layers, labels, hit=True)
        _report_damage(hit, damage, the_world)
        fill = hit.spec
    if refresh and the_world.is_main:
        scanned = store._scan(store.root / base_key)
        for stale in [e for e in scanned if not isinstance(e, Entry) or e.spec.covers(spec)]:
            store.remove(stale)
    the_world.barrier()
    made_from = {  # provenance for `cache ls`; not part of the key
        "adapter": getattr(dataset, "adapter", type(dataset).__name__),
        "root": str(getattr(dataset, "root", "")),
    }
    meta = {"key_fields": fields, "made_from": made_from}
    entry = store.open(base_key, fill, meta, len(dataset), shard_size)
    missing = entry.missing_shards()
    mine = [i for i in missing if i % the_world.size == the_world.rank]
    computed: list[int] = []
    if missing:  # ours first, then anyone's still unclaimed: ranks and processes share the rest
        run = _Run(encoder, dataset, entry, fill, dev, numerics, batch_size, workers, compile)
        order = mine + [i for i in missing if i not in mine]
        computed = run.encode(order, progress and the_world.is_main)
    the_world.barrier()
    if the_world.is_main and not entry.complete:
        _finalize(entry, dataset, fields)
    the_world.barrier()
    return FeatureSet(entry, spec.layers, labels, computed=computed)


def _report_damage(entry: Entry, damage: list[Damage], the_world: World) -> None:
    """Drop what is damaged (rank 0 only) and say so in one line: what, and what is redone."""
    if not the_world.is_main:
        return
    shards = entry.discard(damage)
    first = damage[0].what + (f" and {len(damage) - 1} more" if len(damage) > 1 else "")
    redo = f"recomputing {len(shards)} of {entry.num_shards} shards" if shards else "rebuilding it"
    warnings.warn(
        f"cache entry {entry.short_key} was damaged ({first}): {redo}", CacheWarning, stacklevel=3
    )


def dataset_identity(dataset: Dataset, *, fresh: bool = False) -> dict[str, Any]:
    """What the cache key knows of a dataset: the images (not the labels), split and selection.

    Labels are left out on purpose: tasks that label the same images differently
    (``clevr_count``, ``clevr_dist``) share one entry, and labels are read from the dataset.
    ``fresh`` re-reads the files (an `EvalDataset` otherwise remembers its fingerprint).
    """
    if isinstance(dataset, EvalDataset):
        fingerprint = dataset.fingerprint(fresh=fresh, images_only=True)
    elif callable(getattr(dataset, "fingerprint", None)):
        fingerprint = dataset.fingerprint()
    else:
        raise UserError(
            f"{type(dataset).__name__} has no fingerprint(): the cache cannot tell when its data "
            "changes; load it with ijepa_eval.load_dataset or give it a fingerprint() method"
        )
    selection = getattr(dataset, "selection", None)
    selected = json.dumps(selection, sort_keys=True, default=str) if selection else None
    return {
        "split": getattr(dataset, "split", None),
        "fingerprint": fingerprint,
        "selection": hashlib.sha256(selected.encode()).hexdigest() if selected else None,
        "items": len(dataset),
    }


def _labels(dataset: Dataset) -> np.ndarray | None:
    targets = getattr(dataset, "targets", None)
    return None if targets is None else np.asarray(targets, dtype=np.int64)


def _key_fields(encoder: Encoder, dataset: Dataset, numerics: Numerics) -> dict[str, Any]:
    info = encoder.info
    return {
        "extractor_version": EXTRACTOR_VERSION,
        "checkpoint_sha256": info.sha256,
        "network": info.network,
        "arch": info.arch,
        "resolution": info.resolution,
        "preprocess": info.preprocess,
        "compute_dtype": numerics.key,
        "dataset": dataset_identity(dataset),
    }


def _finalize(entry: Entry, dataset: Dataset, fields: dict[str, Any]) -> None:
    now = dataset_identity(dataset, fresh=True)
    if now["fingerprint"] != fields["dataset"]["fingerprint"]:
        raise UserError(
            "the data changed while its features were extracted (its fingerprint differs from "
            "the start); rerun with --refresh to extract it again from scratch"
        )
    entry.finalize({"versions": _versions()})


def _versions() -> dict[str, str]:
    import timm

    from ijepa_eval import __version__

    return {"ijepa_eval": __version__, "torch": torch.__version__, "timm": timm.__version__}


def _device(device: str | torch.device | None, the_world: World) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", the_world.local_rank)
    return torch.device("cpu")


def _numerics(name: str | None, dev: torch.device) -> Numerics:
    if name is None:
        return COMPUTE_DTYPES["bf16" if dev.type == "cuda" else "fp32"]
    if name not in COMPUTE_DTYPES:
        raise UserError(f"--dtype {name!r}: use {', '.join(COMPUTE_DTYPES)}")
    return COMPUTE_DTYPES[name]


def cast_copy(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``module`` whose floating-point weights are ``dtype``; ``module`` is untouched.

    Each tensor is cast straight into the copy (no full-precision copy first): for ViT-H/14 that
    is 1.3 GB written instead of 2.5 GB copied and 1.3 GB more written.
    """
    memo: dict[int, Any] = {}
    for param in module.parameters():
        if param.is_floating_point():
            memo[id(param)] = torch.nn.Parameter(param.detach().to(dtype), param.requires_grad)
    for buffer in module.buffers():
        if buffer.is_floating_point():
            memo[id(buffer)] = buffer.to(dtype, copy=True)
    return copy.deepcopy(module, memo)


_last_cast: tuple[weakref.ref, torch.dtype, tuple, torch.nn.Module] | None = None


def _tensor_state(module: torch.nn.Module) -> tuple:
    """Where each weight lives and how often it was written in place (an optimizer step or
    ``load_state_dict`` bumps ``_version``): what a cast copy must still match to be reused.
    A write through ``.data`` bumps nothing and is not seen, as the feature cache, keyed by the
    checkpoint's hash, does not see it either."""
    tensors = [*module.parameters(), *module.buffers()]
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)


def cast_for_extraction(encoder: Encoder, dtype: torch.dtype) -> torch.nn.Module:
    """``cast_copy(encoder, dtype)``, kept for the next call with the same, unchanged encoder.

    A caller that extracts several splits with one encoder gets one copy for all of them, and a
    fresh copy per call made the whole-model bf16 extraction 6% slower on the CPU
    (benchmarks/RESULTS.md).
    Only the last copy is kept, so at most one extra model's worth of memory is held, and it
    goes when the encoder does.
    """
    global _last_cast
    state = _tensor_state(encoder)
    if _last_cast is not None:
        owner, cast_dtype, cast_state, copy_ = _last_cast
        if owner() is encoder and cast_dtype == dtype and cast_state == state:
            return copy_
    _last_cast = None  # free the old copy before making a new one
    copy_ = cast_copy(encoder, dtype)
    _last_cast = (weakref.ref(encoder, _forget_cast), dtype, state, copy_)
    return copy_


def _forget_cast(owner: weakref.ref) -> None:
    global _last_cast
    if _last_cast is not None and _last_cast[0] is owner:
        _last_cast = None


class _Prepared(Dataset):
    """The dataset with the encoder's preprocessing (or training view) applied to each image."""

    def __init__(self, dataset: Dataset, transform) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.dataset[index][0], index)


def _glibc_malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only; elsewhere nothing to do
    except (AttributeError, OSError, TypeError):  # TypeError: CDLL(None) on Windows
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def _return_freed_heap() -> None:
    """Hand the batch's freed heap back to the OS (glibc), so RSS stays flat over the run.

    Without it, glibc keeps the per-batch activations (a few MB each, under its adaptive mmap
    threshold) as fragmented heap: extracting 2,048 images at 224 px with ViT-S/16 on the CPU
    grew the process from ~0.9 to ~1.5 GB; with it RSS stays at ~0.9 GB at no measurable cost
    (`benchmarks/bench_scaling.py`, figures in benchmarks/RESULTS.md).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class _Run:
    """One extraction pass over a list of shards."""

    def __init__(
        self,
        encoder: Encoder,
        dataset: Dataset,
        entry: Entry,
        spec: FeatureSpec,
        dev: torch.device,
        numerics: Numerics,
        batch_size: int | None,
        workers: int | None,
        compile: bool,
    ) -> None:
        self.dataset = _Prepared(dataset, encoder.preprocess.item_transform())
        if numerics.whole_model:
            encoder = cast_for_extraction(encoder, numerics.dtype)
        self.encoder = encoder.to(dev).eval()
        self.forward = torch.compile(encoder.forward_blocks) if compile else encoder.forward_blocks
        self.entry, self.spec, self.dev, self.numerics = entry, spec, dev, numerics
        self.batch_size = batch_size or (256 if dev.type == "cuda" else 32)
        self.micro = self.batch_size  # shrinks on out-of-memory
        self.workers = min(8, os.cpu_count() or 1) if workers is None else workers

    def encode(self, shards: list[int], show: bool) -> list[int]:
        """Compute and commit those of ``shards`` no other process is computing; wait for the
        others to be committed (or their process to die, then compute them). Returns the
        shards computed here."""
        computed: list[int] = []
        todo = list(shards)
        total = sum(len(self.entry.shard_range(i)) for i in shards)
        with _progress(show) as bar:
            task = bar.add_task("extracting", total=total)
            while todo:
                computed += self._pass(todo, bar, task)
                todo = [i for i in todo if not self.entry.is_committed(i)]
                if todo:  # claimed by another process: its lock frees on commit or death
                    with self.entry.shard_lock(todo[0]):
                        pass
                done = sum(len(self.entry.shard_range(i)) for i in shards if i not in todo)
                bar.update(task, completed=done)
        return computed

    def _pass(self, shards: list[int], bar: Progress, task: TaskID) -> list[int]:
        """One DataLoader pass over the shards this process can claim now."""
        claimed: dict[int, BaseFileLock] = {}
        order: deque[int] = deque()  # the shard of each batch handed to the loader, in order

        def batches() -> Iterator[list[int]]:
            for shard in shards:
                lock = self.entry.shard_lock(shard)
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue  # another process computes it
                if self.entry.is_committed(shard):
                    lock.release()
                    continue
                claimed[shard] = lock
                r = self.entry.shard_range(shard)
                for start in range(r.start, r.stop, self.batch_size):
                    order.append(shard)
                    yield list(range(start, min(start + self.batch_size, r.stop)))

        loader = DataLoader(
            self.dataset,
            batch_sampler=batches(),
            num_workers=self.workers,
            pin_memory=self.dev.type == "cuda",
            prefetch_factor=4 if self.workers else None,
        )
        pending: dict[int, list[dict[str, np.ndarray]]] = {}
        done_in: dict[int, int] = {}
        committed = []
        started = time.perf_counter()
        try:
            for images in _unwrapped_errors(loader):
                shard = order.popleft()
                first = self.entry.shard_range(shard).start + done_in.get(shard, 0)
                out = self._encode_batch(images)
                _require_finite(out, range(first, first + len(images)), self.spec.store_dtype)
                _return_freed_heap()
                pending.setdefault(shard, []).append(out)
                done_in[shard] = done_in.get(shard, 0) + len(images)
                if done_in[shard] == len(self.entry.shard_range(shard)):
                    parts = pending.pop(shard)
                    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
                    self.entry.commit_shard(shard, arrays)
                    claimed.pop(shard).release()
                    committed.append(shard)
                bar.advance(task, len(images))
                rate = sum(done_in.values()) / (time.perf_counter() - started)
                bar.update(task, description=f"extracting {rate:,.1f} img/s")
        finally:
            for lock in claimed.values():
                lock.release()
        return committed

    def _encode_batch(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        dtype = self.numerics.dtype if self.numerics.whole_model else images.dtype
        images = images.to(self.dev, dtype, non_blocking=True)
        while True:
            try:
                parts = [self._forward(chunk) for chunk in images.split(self.micro)]
                break
            except torch.OutOfMemoryError:
                if self.micro == 1:
                    raise
                self.micro //= 2
                torch.cuda.empty_cache()
                console.print(
                    f"[yellow]out of memory: retrying with {self.micro} images per forward[/]"
                )
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _forward(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        dtype = self.numerics.dtype
        autocast = dtype != torch.float32 and not self.numerics.whole_model
        with torch.inference_mode(), torch.autocast(self.dev.type, dtype=dtype, enabled=autocast):
            blocks = self.forward(x, list(self.spec.layers))
        stacked = torch.stack(blocks, dim=1).float()  # (B, L, N, D)
        out = {"pooled": self._to_store(stacked.mean(dim=2))}
        if self.spec.tokens != "none":
            out["tokens"] = self._to_store(self._pool_tokens(stacked))
        return out

    def _pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        grid = self.spec.token_grid
        if grid is None:
            return tokens
        b, layers, _, d = tokens.shape
        gh, gw = self.encoder.grid
        maps = tokens.reshape(b * layers, gh, gw, d).permute(0, 3, 1, 2)
        pooled = F.adaptive_avg_pool2d(maps, grid)  # grid divides the patch grid: exact means
        return pooled.permute(0, 2, 3, 1).reshape(b, layers, grid[0] * grid[1], d)

    def _to_store(self, tensor: torch.Tensor) -> np.ndarray:
        if self.spec.store_dtype == "bfloat16":
            return tensor.to(torch.bfloat16).view(torch.uint16).cpu().numpy()
        with np.errstate(over="ignore"):  # an overflow is refused, in one line, by the caller
            return tensor.cpu().numpy().astype(_NUMPY_STORE[self.spec.store_dtype])


def _unwrapped_errors(loader: DataLoader) -> Iterator[torch.Tensor]:
    """The loader's batches; a `UserError` raised in a worker process comes out as its one
    line (PyTorch re-raises it with the worker's whole traceback as the message)."""
    try:
        yield from loader
    except UserError as exc:
        text = str(exc)
        if "Original Traceback" not in text:
            raise
        last = text.strip().splitlines()[-1]
        name = f"{type(exc).__module__}.{type(exc).__qualname__}: "
        raise type(exc)(last.removeprefix(name)) from None


def _require_finite(out: dict[str, np.ndarray], items: range, store_dtype: str) -> None:
    """Stop at the first batch whose features are not all finite numbers."""
    for name, array in out.items():
        values = torch.from_numpy(array)
        if store_dtype == "bfloat16":
            values = values.view(torch.bfloat16)
        if not torch.isfinite(values).all():
            raise UserError(
                f"the encoder gave non-finite {name} features (NaN or infinite) for items "
                f"{items.start}–{items.stop - 1}; nothing was cached for them: check the "
                "checkpoint, or avoid overflow with --dtype fp32 and --store float32"
            )


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=True,
    )
