"""Error bars: bootstrap intervals match the binomial where they should, the vectorised bootstrap
is the item bootstrap, McNemar's exact test, per-class and k-shot statistics, ``metrics_ci`` in
records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ijepa_eval.results import stats
from ijepa_eval.tasks.record import RunRecord

BASELINE = Path(__file__).parents[1] / "results" / "baseline" / "runs"


def _hits(n: int, correct: int, seed: int = 0) -> np.ndarray:
    hits = np.zeros(n)
    hits[np.random.default_rng(seed).permutation(n)[:correct]] = 1
    return hits


@pytest.mark.parametrize("p", [0.1, 0.4, 0.75])
def test_top1_interval_on_360_items_matches_the_binomial(p):
    n = 360
    hits = _hits(n, round(p * n))
    low, high = stats.interval(stats.ItemScores(hits, None, 100.0, binary=True))
    normal = 100 * 1.96 * math.sqrt(p * (1 - p) / n)
    assert low < 100 * p < high
    assert (high - low) / 2 == pytest.approx(normal, rel=0.20)


def test_the_atom_bootstrap_is_the_item_bootstrap():
    """Counting resamples over (class, value) atoms gives the same distribution as resampling
    item indices, for mean per-class accuracy too."""
    rng = np.random.default_rng(3)
    n, classes = 240, 6
    groups = rng.integers(0, classes, n)
    hits = (rng.random(n) < 0.3 + 0.1 * groups).astype(float)
    ours = stats.bootstrap(hits, groups, 100.0, resamples=4000, seed=1)[:, 0]
    idx = rng.integers(0, n, size=(4000, n))
    naive = []
    for row in idx:
        g, h = groups[row], hits[row]
        naive.append(100 * np.mean([h[g == c].mean() for c in np.unique(g)]))
    assert np.std(ours) == pytest.approx(np.std(naive), rel=0.08)
    assert np.mean(ours) == pytest.approx(np.mean(naive), abs=0.3)


def test_seeded_and_deterministic():
    hits = _hits(500, 200)
    scores = stats.ItemScores(hits, None, 100.0, binary=True)
    assert stats.interval(scores) == stats.interval(scores)
    assert stats.interval(scores, seed=1) != stats.interval(scores, seed=2)


@pytest.mark.parametrize("path", sorted(BASELINE.glob("*/*.json")), ids=lambda p: p.parent.name)
def test_every_baseline_metric_from_its_predictions(path):
    """The per-item form of each metric gives the record's number, inside its interval; k-shot
    metrics average the draws, depth metrics are per image."""
    record = RunRecord.read(path)
    with np.load(path.with_name(record.predictions["file"])) as npz:
        preds = {k: npz[k] for k in npz.files}
    found = stats.intervals(preds, list(record.metrics))
    assert set(found) == set(record.metrics)
    for metric, value in record.metrics.items():
        assert stats.item_scores(preds, metric).estimate == pytest.approx(value, rel=1e-5)
        low, high = found[metric]
        assert low <= value + 1e-6 and value <= high + 1e-6


def test_kshot_scores_average_the_draws():
    target = np.array([0, 1, 2, 0])
    right = np.stack([target, target + 3, target + 3, target + 3, target + 3], axis=1)
    wrong = np.roll(right, 1, axis=1)
    preds = {"target": target, "2shot_seed0/top5": right, "2shot_seed1/top5": wrong}
    scores = stats.item_scores(preds, "top1_2shot")
    assert scores.values.tolist() == [0.5] * 4 and not scores.binary
    assert scores.estimate == pytest.approx(50.0)
    assert stats.item_scores(preds, "top1_5shot") is None
    assert stats.item_scores({"k10/top5": right, "target": target}, "top1_k10").estimate == 100


def test_mcnemar_exact():
    assert stats.mcnemar(0, 0) == 1.0
    assert stats.mcnemar(10, 0) == pytest.approx(2 * 0.5**10)
    assert stats.mcnemar(3, 5) == pytest.approx(stats.mcnemar(5, 3))


def test_paired_difference():
    a = _hits(300, 120)
    same = stats.paired(*(stats.ItemScores(a, None, 100.0, binary=True),) * 2)
    assert same.p_value == 1.0 and same.difference == 0 and same.low == same.high == 0
    assert same.verdict() == "no significant difference"
    b = a.copy()
    b[np.flatnonzero(a == 1)[:45]] = 0  # 15 points lost
    worse = stats.paired(
        stats.ItemScores(a, None, 100.0, binary=True), stats.ItemScores(b, None, 100.0, binary=True)
    )
    assert worse.test == "mcnemar" and worse.discordant == (45, 0)
    assert worse.difference == pytest.approx(-15.0) and worse.high < 0 and worse.p_value < 1e-9
    assert worse.verdict() == "B is worse (significant at 0.05)"
    depth_a = np.random.default_rng(0).gamma(4.0, 0.3, 300)
    depth = stats.paired(stats.ItemScores(depth_a), stats.ItemScores(depth_a * 1.2))
    assert depth.test == "bootstrap" and depth.p_value < 1e-6
    assert depth.verdict(higher_is_better=False) == "B is worse (significant at 0.05)"


def test_records_read_metrics_ci_and_older_records_have_none():
    path = next(BASELINE.glob("linprobe/*.json"))
    raw = json.loads(path.read_text())
    raw.pop("metrics_ci", None)  # as a record written before intervals existed
    assert RunRecord.from_json(raw).metrics_ci == {}
    assert "metrics_ci" not in RunRecord.from_json(raw).to_json()
    raw["metrics_ci"] = {"top1": [30, 50.0], "not_a_metric": [0, 1]}
    record = RunRecord.from_json(raw)
    assert record.metrics_ci == {"top1": [30.0, 50.0]}
    assert record.to_json()["metrics_ci"] == {"top1": [30.0, 50.0]}
    raw["metrics_ci"] = {"top1": [30]}
    with pytest.raises(ValueError, match="metrics_ci.top1"):
        RunRecord.from_json(raw)
