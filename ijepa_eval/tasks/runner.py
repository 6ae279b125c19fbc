"""``evaluate``: one task, one checkpoint → features (from the cache) → probe → run record.

The probe never sees the reported split until its configuration is fixed: selection uses a
separate split or a held-out part of train (see `DataSpec`), and the test features enter once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ijepa_eval import atomic
from ijepa_eval.data import available_splits, load_dataset
from ijepa_eval.data.detect import detect_format
from ijepa_eval.data.load import DATASETS
from ijepa_eval.errors import UserError
from ijepa_eval.features import FeatureSet, extract
from ijepa_eval.features.store import TokenArray
from ijepa_eval.models import load_encoder
from ijepa_eval.models.vit import Encoder
from ijepa_eval.probes import (
    AttentiveConfig,
    LinearGridConfig,
    TokenRows,
    attentive_probe,
    classification_metrics,
    knn_eval,
    linear_probe,
    logreg_grid,
    resolve_device,
    stratified_split,
)
from ijepa_eval.probes.depth import DepthConfig, depth_probe
from ijepa_eval.settings import data_root, require_data_root
from ijepa_eval.tasks.record import SCHEMA, environment, write_record
from ijepa_eval.tasks.registry import get_task
from ijepa_eval.tasks.spec import DataSpec, MetricSpec, TaskSpec, blocks_of


@dataclass
class SplitPlan:
    """Which split trains, which selects (a split or a held-out part of train), which reports."""

    train: str
    test: str
    select: str | None = None
    holdout: float | None = None


@dataclass
class RunResult:
    record: dict[str, Any]
    path: Path | None = None  # None when the record was not written


def plan_splits(data: DataSpec, available: list[str]) -> SplitPlan:
    """Turn the spec's selection rule into concrete splits (see `DataSpec`)."""
    if data.select == "auto":
        if "test" in available:
            return SplitPlan(
                data.train,
                data.test or "test",
                select="val" if "val" in available else None,
                holdout=None if "val" in available else data.holdout,
            )
        return SplitPlan(data.train, data.test or "val", holdout=data.holdout)
    test = data.test or ("test" if "test" in available else "val")
    if data.select == "none":
        return SplitPlan(data.train, test)
    if data.select == "holdout":
        return SplitPlan(data.train, test, holdout=data.holdout)
    return SplitPlan(data.train, test, select=data.select)


def resolve_data(spec: TaskSpec, data: str | None) -> tuple[str, str]:
    """``(adapter, root)`` from ``--data`` (``NAME:ROOT`` or a path) or the configured location."""
    fixed = spec.dataset.adapter
    if data is None:
        key = spec.dataset.root_key
        if key is None:
            raise UserError(f"task {spec.name} needs --data (it names no default location)")
        root = require_data_root(key, f"task {spec.name}'s dataset")
    else:
        name, sep, rest = data.partition(":")
        if sep and name in DATASETS:
            if fixed and name != fixed:
                raise UserError(f"task {spec.name} reads {fixed} data, not {name}: pass the folder")
            return name, rest
        root = data
    return (fixed or detect_format(root)), root


def representations(
    pooled: torch.Tensor, layers: tuple[int, ...], names: Iterable[str], depth: int
) -> dict[str, torch.Tensor]:
    """Each named representation from per-block pooled features ``(N, L, D)`` (see `blocks_of`)."""
    x = pooled.float()
    return {
        name: torch.cat([x[:, layers.index(i)] for i in blocks_of(name, depth)], dim=1)
        for name in names
    }


def needed_layers(names: Iterable[str], depth: int) -> tuple[int, ...]:
    return tuple(sorted({i for name in names for i in blocks_of(name, depth)}))


class _Features:
    """Loads the datasets of one run and their features, keeping track of what it cost."""

    def __init__(
        self,
        encoder: Encoder,
        spec: TaskSpec,
        adapter: str,
        root: str,
        options: dict[str, Any],
        extract_options: dict[str, Any],
    ) -> None:
        self.encoder, self.spec, self.adapter, self.root = encoder, spec, adapter, root
        self.options = options  # for load_dataset
        self.extract_options = extract_options
        self.layers = needed_layers(spec.probe.representations, len(encoder.blocks))
        self.extract_s = 0.0
        self.entries: list[dict[str, Any]] = []
        self.datasets: dict[str, dict[str, Any]] = {}

    def get(
        self, split: str, label: str | None = None, **subset: Any
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, Any]:
        """Pooled representations and class labels of one split."""
        ds = load_dataset(self.adapter, self.root, split, **subset, **self.options)
        if ds.targets is None:
            raise UserError(f"task {self.spec.name} needs class labels; {self.adapter} has none")
        feats = self._extract(ds, label or split, tokens="none")
        reps = representations(
            feats.pooled(), self.layers, self.spec.probe.representations, len(self.encoder.blocks)
        )
        return reps, torch.as_tensor(feats.labels), ds

    def tokens(self, split: str, label: str | None = None) -> tuple[TokenArray, Any]:
        """Patch tokens ``(N, L, T, D)`` of the needed blocks, memory-mapped, and the dataset."""
        ds = load_dataset(self.adapter, self.root, split, **self.options)
        return self._extract(ds, label or split, tokens="all").tokens(), ds

    def _extract(self, ds: Any, label: str, tokens: str) -> FeatureSet:
        started = time.perf_counter()
        feats = extract(
            self.encoder, ds, layers=list(self.layers), tokens=tokens, **self.extract_options
        )
        self.extract_s += time.perf_counter() - started
        self.entries.append({"split": label, "key": feats.key, "cache_hit": feats.hit})
        self.datasets[label] = {
            "split": ds.split,
            "items": len(ds),
            # the images' fingerprint is the one extraction just computed (memoised): no second
            # pass over the files; the labels are hashed on their own
            "fingerprint": ds.fingerprint(images_only=True),
            "labels_sha256": _labels_digest(ds),
            "selection": ds.selection,
            "skipped": len(ds.skipped),
        }
        return feats


def evaluate(
    task: str | TaskSpec,
    *,
    ckpt: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    which: str | None = None,
    data: str | None = None,
    results_dir: str | os.PathLike[str] | None = "results",
    cache_dir: str | os.PathLike[str] | None = None,
    include_paths: Iterable[str | os.PathLike[str]] = (),
    subset_file: str | os.PathLike[str] | None = None,
    shots: Iterable[int] | None = None,
    probe_params: dict[str, Any] | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    skip_bad_images: bool = False,
    device: str | None = None,
    store_dtype: str = "float16",
    progress: bool = True,
    record_extra: dict[str, Any] | None = None,
) -> RunResult:
    """Run ``task`` on a checkpoint (``ckpt``) or a loaded ``encoder``; write and return its record.

    ``results_dir=None`` returns the record without writing it. ``record_extra`` adds fields to
    the record (the layer sweep's ``{"sweep": {"block": N, "of": depth}}``).
    """
    started = time.perf_counter()
    spec = task if isinstance(task, TaskSpec) else get_task(task, include_paths)
    if shots is not None:  # the metrics follow the shots asked for
        shots = tuple(shots)
        metrics = tuple(MetricSpec(f"top1_{k}shot") for k in shots)
        spec = replace(spec, dataset=replace(spec.dataset, shots=shots), metrics=metrics)
    if probe_params:
        spec = replace(
            spec, probe=replace(spec.probe, params={**spec.probe.params, **probe_params})
        )
    caught: list[str] = []
    if encoder is None:
        if ckpt is None:
            raise UserError("evaluate needs ckpt= or encoder=")
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            encoder = load_encoder(ckpt, which)
        caught = [str(w.message) for w in seen]
    adapter, root = resolve_data(spec, data)
    plan = plan_splits(spec.dataset, available_splits(adapter, root))
    options = dict(spec.dataset.options)
    if skip_bad_images:
        options["skip_bad_images"] = True
    extract_options = {
        "cache_dir": cache_dir,
        "batch_size": batch_size,
        "workers": workers,
        "progress": progress,
        "store_dtype": store_dtype,
    }
    feats = _Features(encoder, spec, adapter, root, options, extract_options)
    probe_started = time.perf_counter()
    probe = {
        "linear": _run_linear,
        "logreg": _run_logreg,
        "knn": _run_knn,
        "depth": _run_depth,
        "attentive": _run_attentive,
    }[spec.probe.type]
    with warnings.catch_warnings(record=True) as probe_warnings:
        warnings.simplefilter("always")
        outcome = probe(spec, plan, feats, subset_file=subset_file, device=device)
    caught += [str(w.message) for w in probe_warnings]
    probe_s = time.perf_counter() - probe_started - feats.extract_s  # it extracts inside
    missing = [m.name for m in spec.metrics if m.name not in outcome["metrics"]]
    if missing:
        raise UserError(
            f"task {spec.name} declares metrics {missing} that its probe does not produce"
        )
    metrics = {m.name: outcome["metrics"][m.name] for m in spec.metrics}
    record = {
        "schema": SCHEMA,
        "task": spec.name,
        "task_version": spec.version,
        "metrics": metrics,
        "metrics_std": outcome.get("metrics_std", {}),
        "higher_is_better": {m.name: m.higher_is_better for m in spec.metrics},
        "baselines": outcome.get("baselines", {}),
        "chosen": outcome.get("chosen"),
        "grid": outcome.get("grid", []),
        "seeds": outcome.get("seeds", {"selection_split": spec.dataset.seed}),
        "splits": outcome.get("splits") or {k: d["items"] for k, d in feats.datasets.items()},
        "timings": {
            "extract_s": round(feats.extract_s, 3),
            "probe_s": round(probe_s, 3),
            "total_s": round(time.perf_counter() - started, 3),
        },
        "model": encoder.info.to_dict() if encoder.info else None,
        "data": {
            "adapter": adapter,
            "root": str(Path(root).expanduser().resolve()),
            "plan": plan.__dict__,
            "datasets": feats.datasets,
        },
        "features": {
            "layers": list(feats.layers),
            "representations": list(spec.probe.representations),
            "entries": feats.entries,
        },
        "task_spec": spec.to_dict(),
        "notes": caught + outcome.get("notes", []),
        "environment": environment(str(resolve_device(device))),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **(record_extra or {}),
    }
    if results_dir is None:
        return RunResult(record)
    model = (encoder.info.sha256 if encoder.info else "model")[:8]
    run_id = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{model}-{uuid.uuid4().hex[:6]}"
    head = outcome.get("head_state")
    if head is not None:
        head_path = Path(results_dir) / "runs" / spec.name / f"{run_id}.head.safetensors"
        head_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(head_path) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in head.items()}, str(tmp))
        record["head_weights"] = head_path.name
    record["run_id"] = run_id
    return RunResult(record, write_record(record, results_dir, run_id))


def _split_train(reps, labels, fraction: float, seed: int):
    fit, val = stratified_split(labels, fraction, seed)
    fit_t, val_t = torch.as_tensor(fit), torch.as_tensor(val)
    return (
        {k: v[fit_t] for k, v in reps.items()},
        labels[fit_t],
        {k: v[val_t] for k, v in reps.items()},
        labels[val_t],
    )


def _train_and_select(spec: TaskSpec, plan: SplitPlan, feats: _Features, **subset: Any):
    reps, labels, ds = feats.get(plan.train, "train", **subset)
    if plan.select is not None:
        val_reps, val_labels, _ = feats.get(plan.select, "select")
        return reps, labels, val_reps, val_labels, ds
    fit, fit_y, val, val_y = _split_train(
        reps, labels, plan.holdout or spec.dataset.holdout, spec.dataset.seed
    )
    return fit, fit_y, val, val_y, ds


def _run_linear(
    spec: TaskSpec, plan: SplitPlan, feats: _Features, *, device: str | None, **_: Any
) -> dict[str, Any]:
    train, train_y, val, val_y, ds = _train_and_select(spec, plan, feats)
    test, test_y, _ = feats.get(plan.test, "test")
    config = LinearGridConfig(**_as_config(spec.probe.params))
    result = linear_probe(
        train,
        train_y,
        val,
        val_y,
        test,
        test_y,
        num_classes=ds.num_classes,
        config=config,
        refit=True,
        device=device,
    )
    return {
        "metrics": result.test,
        "chosen": result.chosen,
        "grid": result.grid.rows,
        "head_state": result.head.state_dict(),
        "splits": {"fit": len(train_y), "select": len(val_y), "test": len(test_y)},
        "seeds": {"selection_split": spec.dataset.seed, "probe": config.seed},
        "notes": _concat_note(spec, feats),
    }


def _run_attentive(
    spec: TaskSpec, plan: SplitPlan, feats: _Features, *, device: str | None, **_: Any
) -> dict[str, Any]:
    """V-JEPA's attentive probe on the memory-mapped patch tokens of one block."""
    if len(feats.layers) != 1:
        raise UserError(
            f"task {spec.name}: the attentive probe reads the tokens of one block, but "
            f"{list(spec.probe.representations)} names blocks {list(feats.layers)}; "
            "use lastPOOL or block<N>"
        )

    def split(name: str, label: str) -> tuple[TokenRows, torch.Tensor, Any]:
        tokens, ds = feats.tokens(name, label)
        if ds.targets is None:
            raise UserError(f"task {spec.name} needs class labels; {feats.adapter} has none")
        return TokenRows(tokens), torch.as_tensor(np.asarray(ds.targets, dtype=np.int64)), ds

    train, train_y, ds = split(plan.train, "train")
    if plan.select is not None:
        val, val_y, _ = split(plan.select, "select")
    else:  # a stratified held-out part of train, as rows of the same memory-mapped tokens
        fraction = plan.holdout or spec.dataset.holdout
        fit, held = stratified_split(train_y, fraction, spec.dataset.seed)
        val, val_y = TokenRows(train, held), train_y[torch.as_tensor(held)]
        train, train_y = TokenRows(train, fit), train_y[torch.as_tensor(fit)]
    test, test_y, _ = split(plan.test, "test")
    config = AttentiveConfig(**_as_config(spec.probe.params))
    heads = feats.encoder.arch.num_heads
    result = attentive_probe(
        train,
        train_y,
        val,
        val_y,
        test,
        test_y,
        num_classes=ds.num_classes,
        num_heads=heads,
        config=config,
        refit=True,
        device=device,
    )
    chosen = {
        **result.chosen,
        "representation": spec.probe.representations[0],
        "block": feats.layers[0],
        "num_tokens": train.shape[1],
        "num_heads": heads,
    }
    return {
        "metrics": result.test,
        "chosen": chosen,
        "grid": result.grid,
        "head_state": result.head.state_dict(),
        "splits": {"fit": len(train_y), "select": len(val_y), "test": len(test_y)},
        "seeds": {"selection_split": spec.dataset.seed, "probe": config.seed},
    }


def _run_logreg(
    spec: TaskSpec, plan: SplitPlan, feats: _Features, *, subset_file, device: str | None
) -> dict[str, Any]:
    params = _as_config(spec.probe.params)
    test, test_y, _ = feats.get(plan.test, "test")
    rep = spec.probe.representations[0]
    if spec.dataset.shots:
        return _run_kshot(spec, plan, feats, test[rep], test_y, params, device)
    subset = {}
    if spec.dataset.subset_file_key:
        chosen = subset_file or data_root(spec.dataset.subset_file_key)
        if chosen is None:
            require_data_root(
                spec.dataset.subset_file_key,
                f"task {spec.name}'s subset file (or pass --subset-file)",
            )
        subset["subset_file"] = chosen
    train, train_y, ds = feats.get(plan.train, "train", **subset)
    result = logreg_grid(
        train[rep],
        train_y,
        num_classes=ds.num_classes,
        val_fraction=plan.holdout or spec.dataset.holdout,
        seed=spec.dataset.seed,
        device=device,
        **params,
    )
    metrics = classification_metrics(result.model.scores(test[rep]), test_y, ds.num_classes)
    return {
        "metrics": metrics,
        "chosen": {"C": result.best_C, "selection": result.selection, "representation": rep},
        "grid": result.rows,
        "head_state": result.model.state_dict(),
        "seeds": {"selection_split": spec.dataset.seed},
    }


def _run_kshot(spec, plan, feats, test_x, test_y, params, device) -> dict[str, Any]:
    rep = spec.probe.representations[0]
    per_seed: dict[str, dict[str, float]] = {}
    metrics, stds = {}, {}
    for k in spec.dataset.shots:
        tops = []
        for seed in spec.dataset.seeds:
            train, train_y, ds = feats.get(
                plan.train, f"train_{k}shot_seed{seed}", shots=k, seed=seed
            )
            result = logreg_grid(
                train[rep],
                train_y,
                num_classes=ds.num_classes,
                val_fraction=plan.holdout or spec.dataset.holdout,
                seed=seed,
                device=device,
                **params,
            )
            m = classification_metrics(result.model.scores(test_x), test_y, ds.num_classes)
            per_seed[f"{k}shot_seed{seed}"] = {
                **m,
                "C": result.best_C,
                "selection": result.selection,
            }
            tops.append(m["top1"])
        metrics[f"top1_{k}shot"] = float(np.mean(tops))
        stds[f"top1_{k}shot"] = float(np.std(tops))
    return {
        "metrics": metrics,
        "metrics_std": stds,
        "grid": [],
        "chosen": per_seed,
        "seeds": {"draws": list(spec.dataset.seeds)},
    }


def _run_knn(
    spec: TaskSpec, plan: SplitPlan, feats: _Features, *, device: str | None, **_: Any
) -> dict[str, Any]:
    params = _as_config(spec.probe.params)
    rep = spec.probe.representations[0]
    train, train_y, ds = feats.get(plan.train, "train")
    test, test_y, _ = feats.get(plan.test, "test")
    per_k = knn_eval(
        train[rep], train_y, test[rep], test_y, num_classes=ds.num_classes, device=device, **params
    )
    metrics = {f"top1_k{k}": m["top1"] for k, m in per_k.items()}
    metrics.update({f"top5_k{k}": m["top5"] for k, m in per_k.items()})
    return {"metrics": metrics, "grid": [{"k": k, **m} for k, m in per_k.items()], "chosen": None}


def _as_config(params: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def _concat_note(spec: TaskSpec, feats: _Features) -> list[str]:
    depth = len(feats.encoder.blocks)
    if "concatPOOL4" in spec.probe.representations and depth < 4:
        return [f"concatPOOL4 uses the last {depth} blocks: the encoder has only {depth}"]
    return []


def _run_depth(spec: TaskSpec, plan: SplitPlan, feats: _Features, *, device, **_: Any) -> dict:
    params = dict(spec.probe.params)
    eigen_crop = bool(params.pop("eigen_crop", False))
    config = DepthConfig(**_as_config(params))
    to_target = feats.encoder.preprocess.depth_transform()

    def split(name: str, label: str) -> tuple[TokenArray, torch.Tensor]:
        tokens, ds = feats.tokens(name, label)
        size = feats.encoder.preprocess.img_size
        maps = torch.empty((len(ds), size, size))  # filled in place: no second copy
        for i, item in enumerate(ds.items):
            depth = ds.load_target(item)
            maps[i] = to_target(eigen_cropped(depth) if eigen_crop else depth)
        return tokens, maps

    train_tokens, train_depth = split(plan.train, "train")
    if plan.select is not None:
        fit, fit_depth = train_tokens, train_depth
        val, val_depth = split(plan.select, "select")
    else:  # a seeded held-out part of train, as rows of the same memory-mapped tokens
        order = np.random.default_rng(spec.dataset.seed).permutation(len(train_depth))
        cut = max(1, round(len(order) * (plan.holdout or spec.dataset.holdout)))
        val_rows, fit_rows = np.sort(order[:cut]), np.sort(order[cut:])
        fit, fit_depth = (TokenRows(x, fit_rows, block=None) for x in (train_tokens, train_depth))
        val, val_depth = (TokenRows(x, val_rows, block=None) for x in (train_tokens, train_depth))
    test, test_depth = split(plan.test, "test")
    result = depth_probe(
        fit,
        fit_depth,
        val,
        val_depth,
        test,
        test_depth,
        grid=feats.encoder.grid,
        config=config,
        device=device,
    )
    return {
        "metrics": result.test,
        "baselines": {"train_mean_depth_map": result.baseline},
        "chosen": {**result.chosen, "representation": spec.probe.representations[0]},
        "grid": result.rows,
        "head_state": result.head.state_dict(),
        "splits": {"fit": len(fit_depth), "select": len(val_depth), "test": len(test_depth)},
        "seeds": {"selection_split": spec.dataset.seed, "probe": config.seed},
    }


def _labels_digest(ds: Any) -> str | None:
    targets = getattr(ds, "targets", None)
    if targets is None:
        return None
    return hashlib.sha256(np.asarray(targets, dtype=np.int64).tobytes()).hexdigest()


def eigen_cropped(depth: np.ndarray) -> np.ndarray:
    """NYU's Eigen crop: only rows 45:471, columns 41:601 of the 480×640 frame are scored."""
    if depth.shape != (480, 640):
        raise UserError(f"the Eigen crop is defined on 480x640 NYU frames, not {depth.shape}")
    cropped = np.zeros_like(depth)
    cropped[45:471, 41:601] = depth[45:471, 41:601]
    return cropped
