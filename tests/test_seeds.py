"""``--seeds N``: each probe trained from N seeds, reported as mean ± std with every seed's value;
deterministic probes refuse it; the statistics read the seeds' predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import one_error_line
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.errors import UserError
from ijepa_eval.results import stats
from ijepa_eval.tasks import ExtractOptions, evaluate
from ijepa_eval.tasks.record import RunRecord

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
FAST = {"lrs": [0.05, 0.5], "weight_decays": [0.0], "epochs": 2, "min_steps": 30, "batch_size": 8}
QUIET = ExtractOptions(progress=False)


@pytest.fixture(scope="module")
def encoder(official_ckpt):
    return ie.load_encoder(official_ckpt)


def _linprobe(encoder, classes, results=None, **kw):
    return evaluate(
        "linprobe",
        encoder=encoder,
        data=str(classes),
        extraction=QUIET,
        results_dir=results,
        **{"params": FAST, **kw},
    )


def test_seeds_give_mean_std_and_each_seeds_value(encoder, classes, tmp_path):
    """Seed s of a --seeds run is the plain run with seed s; the record keeps each, their mean
    and std, and per-item predictions of every seed, which the interval and compare average."""
    seeded = _linprobe(encoder, classes, tmp_path, seeds=3)
    plain = [_linprobe(encoder, classes, params={**FAST, "seed": s}).record for s in (0, 1, 2)]
    record = RunRecord.read(seeded.path)
    assert record.seeds["probe"] == [0, 1, 2]
    for name in ("top1", "top5", "mean_per_class_acc"):
        each = [run.metrics[name] for run in plain]
        assert record.metrics_per_seed[name] == pytest.approx(each)
        assert record.metrics[name] == pytest.approx(np.mean(each))
        assert record.metrics_std[name] == pytest.approx(np.std(each))
    by_seed = {
        s: [row["val_top1"] for row in record.grid if row["probe_seed"] == s] for s in (0, 1, 2)
    }
    assert len({tuple(v) for v in by_seed.values()}) > 1, "the seeds trained the same probes"
    assert [r.chosen for r in plain] == [
        {k: v for k, v in record.chosen[f"probe_seed{s}"].items() if k not in record.metrics}
        for s in (0, 1, 2)
    ]
    predictions = dict(np.load(record.sibling(".preds.npz")))
    assert sorted(predictions) == ["probe_seed0/top5", "probe_seed1/top5", "probe_seed2/top5",
                                   "target"]  # fmt: skip
    scores = stats.item_scores(predictions, "top1")
    assert not scores.binary and scores.estimate == pytest.approx(record.metrics["top1"])
    low, high = record.metrics_ci["top1"]
    assert low <= record.metrics["top1"] <= high


def test_seeds_count_up_from_the_probes_own_seed(encoder, classes):
    record = _linprobe(encoder, classes, params={**FAST, "seed": 5}, seeds=2).record
    assert record.seeds["probe"] == [5, 6] and len(record.metrics_per_seed["top1"]) == 2
    one = _linprobe(encoder, classes, seeds=1).record  # one seed is the plain run
    assert not one.metrics_per_seed and one.seeds["probe"] == 0


def test_attentive_probe_takes_seeds(encoder, classes):
    params = {"lrs": [1e-3], "weight_decays": [0.01], "epochs": 1, "min_steps": 3, "batch_size": 8}
    record = evaluate(
        "linprobe_attentive",
        encoder=encoder,
        data=str(classes),
        extraction=QUIET,
        results_dir=None,
        params=params,
        seeds=2,
    ).record
    assert record.seeds["probe"] == [0, 1]
    assert record.metrics["top1"] == pytest.approx(np.mean(record.metrics_per_seed["top1"]))


def test_a_deterministic_probe_refuses_seeds(encoder, classes, official_ckpt, tmp_path):
    with pytest.raises(UserError, match="knn probe is deterministic"):
        evaluate("knn", encoder=encoder, data=str(classes), seeds=2, results_dir=None)
    base = ["run", "--ckpt", str(official_ckpt), "--data", str(classes), "--seeds", "2"]
    base += ["--results", str(tmp_path), "--workers", "0"]
    line = one_error_line(runner.invoke(app, [*base, "--tasks", "knn"]))
    assert "deterministic" in line and "--seeds" in line
    assert not (tmp_path / "runs").exists()
    fast = [arg for k, v in FAST.items() for arg in ("-p", f"linprobe.{k}={json.dumps(v)}")]
    result = runner.invoke(app, [*base, "--tasks", "linprobe,knn", *fast], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    (lin,) = (tmp_path / "runs" / "linprobe").glob("*.json")
    (knn,) = (tmp_path / "runs" / "knn").glob("*.json")
    assert len(RunRecord.read(lin).metrics_per_seed["top1"]) == 2
    assert not RunRecord.read(knn).metrics_per_seed  # several tasks: seeds go where they apply
    assert "top1 by probe seed [0, 1]:" in result.output


def test_a_malformed_metrics_per_seed_is_refused(encoder, classes, tmp_path):
    path = _linprobe(encoder, classes, tmp_path, seeds=2).path
    raw = json.loads(path.read_text())
    raw["metrics_per_seed"]["top1"] = ["high", 1]
    with pytest.raises(ValueError, match="metrics_per_seed.top1"):
        RunRecord.from_json(raw)
