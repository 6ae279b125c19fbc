"""Error bars: bootstrap intervals, paired differences and McNemar's test, from per-item outputs.

Every run record keeps per-item outputs on its reported split (``<run_id>.preds.npz``, see
`ijepa_eval.tasks.record`). From them:

- `item_scores` turns a metric into one number per test item: correctness (0/1) for ``top1`` /
  ``top5`` (``top1`` = the best class is the target, ``top5`` = the target is among the five
  best), the same grouped by class for ``mean_per_class_acc``, the per-image value for a depth
  metric (``rmse``, ``delta1`` ...). A k-NN metric (``top1_k10``) reads its ``k10/`` arrays; a
  k-shot metric (``top1_2shot``) averages each item's correctness over the draws
  (``2shot_seed0/``, ``2shot_seed1/`` ...), so its statistic is the mean over draws; a
  ``--seeds`` run does the same over its probe seeds (``probe_seed0/``, ``probe_seed1/`` ...).
- `interval`: the 95% percentile interval of the metric by bootstrap over the test items
  (1,000 seeded resamples). For a k-shot metric it is the interval of the mean over draws,
  with the draws held fixed: it measures the test set's sampling noise, not the draws' (that
  is ``metrics_std``); the same holds for the mean over probe seeds. For mean per-class
  accuracy each resample recomputes every class's recall on the items drawn (classes absent
  from a resample are left out, as the probe does).
- `paired`: B − A on the same items, one resample applied to both (a paired bootstrap), its
  interval and a two-sided p-value: McNemar's exact test (a binomial test on the discordant
  items) when the per-item scores are 0/1 (``top1``, ``top5``, k-NN), otherwise the bootstrap
  z-test (the difference over the bootstrap standard error, normal tail).

The bootstrap is vectorised: items with equal (class, value) are interchangeable, so a resample
is a multinomial count over those distinct "atoms" (two for a plain accuracy, at most
2 × classes for per-class accuracy), not over the items; per-image depth values are all
distinct and are counted in chunks. 50,000 items × 1,000 resamples costs well under a second
(benchmarks/RESULTS.md, "Bootstrap intervals").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
ALPHA = 0.05  # `compare`'s default significance level; `check --statistical` uses 0.01
CHUNK_CELLS = 20_000_000  # counts held at once (resamples × atoms): 160 MB of int64

_NAME = re.compile(r"^(?P<base>top1|top5|mean_per_class_acc)(?:_(?P<variant>k\d+|\d+shot))?$")


@dataclass(frozen=True)
class ItemScores:
    """One metric as per-item values: the metric is ``scale`` × their mean (per class, then
    averaged over the classes, when ``groups`` is set)."""

    values: np.ndarray  # (N,) float64
    groups: np.ndarray | None = None  # (N,) class of each item, for mean per-class accuracy
    scale: float = 1.0
    binary: bool = False  # every value is 0 or 1 (McNemar applies)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def estimate(self) -> float:
        ones = np.ones((1, len(self.values)))
        return float(_statistic_counts(ones, self.values[:, None], self.groups, self.scale)[0, 0])


@dataclass(frozen=True)
class Paired:
    """B − A for one metric on the same items."""

    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float
    test: str  # "mcnemar" | "bootstrap"
    discordant: tuple[int, int] | None = None  # McNemar: (A right & B wrong, A wrong & B right)

    def verdict(self, alpha: float = ALPHA, higher_is_better: bool = True) -> str:
        if not self.p_value < alpha:
            return "no significant difference"
        better = (self.difference > 0) == higher_is_better
        return f"B is {'better' if better else 'worse'} (significant at {alpha:g})"


def item_scores(predictions: Mapping[str, np.ndarray], metric: str) -> ItemScores | None:
    """``metric`` as per-item values from a predictions file's arrays; None when they cannot
    give it (a metric this module does not know, or arrays missing). Several runs (k-shot
    draws, probe seeds) are averaged per item."""
    per_image = [k for k in _runs(predictions, "", metric) if np.asarray(predictions[k]).ndim == 1]
    if per_image:  # depth: one value per image
        values = np.mean([np.asarray(predictions[k], dtype=np.float64) for k in per_image], axis=0)
        return ItemScores(values)
    match = _NAME.match(metric)
    keys = class_arrays(predictions, metric)
    if match is None or not keys:
        return None
    target = np.asarray(predictions["target"]).astype(np.int64)
    base = "top1" if match["base"] == "mean_per_class_acc" else match["base"]
    hits = np.mean([_hits(np.asarray(predictions[k]), target, base) for k in keys], axis=0)
    groups = target if match["base"] == "mean_per_class_acc" else None
    return ItemScores(hits, groups, 100.0, binary=len(keys) == 1)


def class_arrays(predictions: Mapping[str, np.ndarray], metric: str) -> list[str]:
    """The ``top5`` arrays a classification metric reads, one per run (k-shot draw, probe
    seed); none for another metric or without ``target``."""
    match = _NAME.match(metric)
    if match is None or "target" not in predictions:
        return []
    variant = match["variant"] or ""
    if variant.endswith("shot"):
        return _runs(predictions, rf"{variant}_seed\d+/", "top5")
    return _runs(predictions, "", f"{variant}/top5" if variant else "top5")


def _runs(predictions: Mapping[str, np.ndarray], draw: str, array: str) -> list[str]:
    """The names of ``array`` in every run: itself, or under a k-shot draw's prefix (the
    pattern ``draw``) and/or a probe seed's (``probe_seed<N>/``)."""
    pattern = re.compile(rf"{draw}(?:probe_seed\d+/)?{re.escape(array)}")
    return sorted(k for k in predictions if pattern.fullmatch(k))


def _hits(top5: np.ndarray, target: np.ndarray, base: str) -> np.ndarray:
    top5 = top5.reshape(len(target), -1)
    if base == "top1":
        return (top5[:, 0] == target).astype(np.float64)
    return (top5 == target[:, None]).any(axis=1).astype(np.float64)


def bootstrap(
    values: np.ndarray,
    groups: np.ndarray | None = None,
    scale: float = 1.0,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> np.ndarray:
    """The statistic of each column of ``values`` (N, m) on ``resamples`` bootstrap resamples
    of its rows (the same rows for every column: a paired resample) → (resamples, m)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n = len(values)
    if n == 0:
        raise ValueError("no items to resample")
    keys = values if groups is None else np.column_stack([groups, values])
    atoms, weights = np.unique(keys, axis=0, return_counts=True)  # sorted by class first
    atom_groups = None if groups is None else atoms[:, 0].astype(np.int64)
    atom_values = atoms if groups is None else atoms[:, 1:]
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // len(atoms))
    out = []
    for start in range(0, resamples, chunk):
        counts = rng.multinomial(n, weights / n, size=min(chunk, resamples - start))
        out.append(_statistic_counts(counts, atom_values, atom_groups, scale))
    return np.concatenate(out)


def interval(
    scores: ItemScores, *, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> tuple[float, float]:
    """The percentile bootstrap interval of the metric (see the module docstring)."""
    stats = bootstrap(scores.values, scores.groups, scores.scale, resamples=resamples, seed=seed)[
        :, 0
    ]
    return _percentiles(stats, level)


def intervals(
    predictions: Mapping[str, np.ndarray],
    metrics: list[str] | tuple[str, ...],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, list[float]]:
    """``{metric: [low, high]}`` for each metric the predictions can give (a record's
    ``metrics_ci``); metrics they cannot give are left out."""
    out = {}
    for metric in metrics:
        scores = item_scores(predictions, metric)
        if scores is not None and len(scores):
            low, high = interval(scores, resamples=resamples, seed=seed)
            out[metric] = [low, high]
    return out


def paired(
    a: ItemScores,
    b: ItemScores,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Paired:
    """B − A on the same items: paired bootstrap interval, and McNemar's exact test when both
    are 0/1 per item without classes, else the bootstrap z-test."""
    if len(a) != len(b):
        raise ValueError(f"the two sides have {len(a)} and {len(b)} items")
    values = np.column_stack([a.values, b.values])
    stats = bootstrap(values, a.groups, a.scale, resamples=resamples, seed=seed)
    diffs = stats[:, 1] - stats[:, 0]
    est_a, est_b = a.estimate, b.estimate
    difference = est_b - est_a
    low, high = _percentiles(diffs, level)
    if a.binary and b.binary and a.groups is None:
        only_a = int(np.sum((a.values == 1) & (b.values == 0)))
        only_b = int(np.sum((a.values == 0) & (b.values == 1)))
        return Paired(
            est_a, est_b, difference, low, high, mcnemar(only_a, only_b), "mcnemar",
            (only_a, only_b),
        )  # fmt: skip
    se = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
    if se == 0.0:
        p = 1.0 if abs(difference) <= 1e-12 * max(1.0, abs(est_a)) else 0.0
    else:
        p = math.erfc(abs(difference) / se / math.sqrt(2.0))
    return Paired(est_a, est_b, difference, low, high, p, "bootstrap")


def mcnemar(only_a: int, only_b: int) -> float:
    """McNemar's exact test: two-sided binomial test of the discordant pairs against 1/2."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def _statistic_counts(
    counts: np.ndarray, values: np.ndarray, groups: np.ndarray | None, scale: float
) -> np.ndarray:
    """The statistic of each column of ``values`` (K, m) weighted by ``counts`` (B, K)."""
    counts = counts.astype(np.float64)
    if groups is None:
        return scale * (counts @ values) / counts.sum(axis=1, keepdims=True)
    order = np.argsort(groups, kind="stable")
    counts, values, groups = counts[:, order], values[order], groups[order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    per_class_n = np.add.reduceat(counts, starts, axis=1)  # (B, C)
    present = per_class_n > 0
    out = np.empty((len(counts), values.shape[1]))
    for j in range(values.shape[1]):
        sums = np.add.reduceat(counts * values[:, j], starts, axis=1)
        recall = np.divide(sums, per_class_n, out=np.zeros_like(sums), where=present)
        out[:, j] = scale * recall.sum(axis=1) / present.sum(axis=1)
    return out
