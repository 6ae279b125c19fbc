"""``compare``: the same checkpoint twice is no difference, a copy perturbed to chance is, runs on
different test items are refused in one line; ``check --statistical`` on the synthetic suite's
baseline lets a planted 1-point drop through and fails a 15-point one, naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_error_line
from PIL import Image
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.results import check, stats
from ijepa_eval.tasks.record import RunRecord

ROOT = Path(__file__).parents[1]
BASELINE = ROOT / "results" / "baseline"
TINY = ROOT / "checkpoints" / "ijepa_tiny_synth.pth.tar"
OLD = ROOT / "tests" / "fixtures" / "records" / "runs" / "clevr_count"
runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _record(task: str) -> Path:
    return next((BASELINE / "runs" / task).glob("*.json"))


def _colours(root: Path) -> Path:
    """An ImageFolder any encoder separates: three classes of noisy solid colours (10 train and
    40 test images each), so only weights destroyed to chance fail it."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("val", 40)):
        for c, name in enumerate(("red", "green", "blue")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (64, 64, 3))
                pixels[..., c] += 180
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


# --- compare --------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_thread")
def test_same_checkpoint_twice_and_a_copy_at_chance(tmp_path):
    """Three checkpoints through the cache: the original twice → p ≥ 0.9, no significant
    difference; the original against its weights zeroed (constant features: chance) → p < 0.001."""
    data = _colours(tmp_path / "data")
    ckpt = torch.load(TINY, map_location="cpu", weights_only=False)
    ckpt["target_encoder"] = {k: torch.zeros_like(v) for k, v in ckpt["target_encoder"].items()}
    chance = tmp_path / "chance.pth.tar"
    torch.save(ckpt, chance)
    args = ["compare", str(TINY), str(TINY), str(chance), "--tasks", "nearest_mean"]
    args += ["--data", str(data), "--results", str(tmp_path / "results"), "--workers", "0"]
    result = runner.invoke(app, [*args, "--json"], env=WIDE)
    assert result.exit_code == 0, result.output
    pairs = json.loads(result.stdout)["pairs"]
    same = {r["metric"]: r for r in pairs[0]["comparisons"]}
    assert same["top1"]["p_value"] >= 0.9 and same["top1"]["test"] == "mcnemar"
    assert all(r["verdict"] == "no significant difference" for r in same.values())
    for pair in pairs[1:]:
        top1 = {r["metric"]: r for r in pair["comparisons"]}["top1"]
        assert top1["a"] > 90 and top1["b"] == pytest.approx(100 / 3, abs=0.01)
        assert top1["p_value"] < 0.001 and top1["ci95"][1] < 0
        assert top1["verdict"] == "B is worse (significant at 0.05)"
    records = [RunRecord.read(p) for p in (tmp_path / "results").glob("runs/*/*.json")]
    assert len(records) == 3
    for record in records:  # every run carries its intervals
        assert set(record.metrics_ci) == set(record.metrics)
        for metric, (low, high) in record.metrics_ci.items():
            assert low - 1e-9 <= record.metrics[metric] <= high + 1e-9
        assert record.seeds["bootstrap"] == {"seed": 0, "resamples": 1000}
    # the same two runs, from their record files, as a table
    files = sorted((tmp_path / "results").glob("runs/*/*.json"))
    table = runner.invoke(app, ["compare", str(files[0]), str(files[1])], env=WIDE)
    assert table.exit_code == 0, table.output
    assert "B − A on the same test items" in table.stdout and "mcnemar" in table.stdout


def test_different_test_items_are_refused_in_one_line():
    result = runner.invoke(app, ["compare", str(_record("linprobe")), str(_record("clevr_count"))])
    line = one_error_line(result)
    assert "different test items" in line and "item ids sha256" in line


def test_a_record_without_predictions_is_refused_in_one_line():
    old = next(OLD.glob("20261122*.json"))
    result = runner.invoke(app, ["compare", str(old), str(_record("clevr_count"))])
    assert "no per-item predictions" in one_error_line(result)


def test_two_folders_compare_task_by_task_as_json():
    result = runner.invoke(app, ["compare", str(BASELINE), str(BASELINE), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    rows = body["comparisons"]
    assert {r["task"] for r in rows} == {
        "clevr_count", "clevr_dist", "depth_synth", "imagenet_kshot", "linprobe",
    }  # fmt: skip
    assert all(r["p_value"] == 1.0 and r["difference"] == 0 for r in rows)
    kinds = {(r["task"], r["metric"]): r["test"] for r in rows}
    assert kinds["linprobe", "top1"] == "mcnemar"
    assert kinds["depth_synth", "rmse"] == kinds["imagenet_kshot", "top1_1shot"] == "bootstrap"


# --- check --statistical ----------------------------------------------------------------------


def _planted(tmp_path: Path, task: str, lost: int, gained: int) -> Path:
    """The baseline's records as current results, with ``task``'s predictions changed: ``lost``
    items it got right now wrong (top-1), ``gained`` it got wrong now right; metrics follow."""
    results = tmp_path / "current"
    shutil.copytree(BASELINE / "runs", results / "runs")
    path = _record(task).relative_to(BASELINE)
    record = json.loads((results / path).read_text())
    preds_path = (results / path).with_name(record["predictions"]["file"])
    with np.load(preds_path) as npz:
        preds = {k: npz[k].copy() for k in npz.files}
    top5, target = preds["top5"], preds["target"]
    right = np.flatnonzero(top5[:, 0] == target)
    wrong = np.flatnonzero(top5[:, 0] != target)
    for i in right[:lost]:  # swap the best two: the set of five is unchanged
        top5[i, [0, 1]] = top5[i, [1, 0]]
    for i in wrong[:gained]:
        hit = np.flatnonzero(top5[i] == target[i])
        j = hit[0] if len(hit) else 1
        top5[i, j] = top5[i, 0]
        top5[i, 0] = target[i]
    np.savez_compressed(preds_path, **preds)
    record["metrics"] = {m: stats.item_scores(preds, m).estimate for m in record["metrics"]}
    (results / path).write_text(json.dumps(record))
    return results


def _baseline_with(tmp_path: Path, tolerance: float) -> Path:
    base = tmp_path / "baseline"
    shutil.copytree(BASELINE, base)
    (base / "tolerances.yaml").write_text(f"default: 1%\ntasks: {{clevr_count: {tolerance}}}\n")
    return base


def test_statistical_check_passes_a_one_point_drop_and_fails_fifteen(tmp_path):
    # 1 point on 300 items: 5 right → wrong, 2 wrong → right. Beyond a 0.5-point tolerance, so
    # the plain rule fails it; McNemar (5 vs 2, p = 0.45) calls it noise.
    small = _planted(tmp_path / "small", "clevr_count", lost=5, gained=2)
    base = _baseline_with(tmp_path, 0.5)
    plain = check(base, small)
    assert not plain.passed and {(c.task, c.metric) for c in plain.failures} == {
        ("clevr_count", "top1"),
        ("clevr_count", "mean_per_class_acc"),
    }
    tested = check(base, small, statistical=True)
    assert tested.passed
    top1 = next(c for c in tested.comparisons if (c.task, c.metric) == ("clevr_count", "top1"))
    assert top1.status == "noise" and top1.delta == pytest.approx(-1.0)
    assert top1.test == "mcnemar" and top1.p_value == pytest.approx(stats.mcnemar(5, 2))
    # with the suite's committed tolerances (1 point for CLEVR) it passes either way
    assert check(BASELINE, small, statistical=True).passed
    # 15 points: 47 right → wrong, 2 wrong → right
    big = _planted(tmp_path / "big", "clevr_count", lost=47, gained=2)
    result = runner.invoke(
        app, ["check", "--baseline", str(BASELINE), "--results", str(big), "--statistical"],
        env=WIDE,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    was = json.loads(_record("clevr_count").read_text())["metrics"]["top1"]
    line = f"REGRESSED clevr_count top1 ↑: baseline {was:.2f}, now {was - 15:.2f}, delta -15.00"
    assert line in result.stdout
    assert "mcnemar p < 0.001" in result.stdout
    passed = runner.invoke(
        app, ["check", "--baseline", str(base), "--results", str(small), "--statistical"],
        env=WIDE,
    )  # fmt: skip
    assert passed.exit_code == 0, passed.output
    assert "NOISE" in passed.stdout and "not significantly (p ≥ 0.01)" in passed.stdout


def test_statistical_check_without_baseline_predictions_says_so(tmp_path):
    base = tmp_path / "baseline"
    (base / "runs" / "clevr_count").mkdir(parents=True)
    old = json.loads(next(OLD.glob("20261122*.json")).read_text())
    old["predictions"] = None
    (base / "runs" / "clevr_count" / "old.json").write_text(json.dumps(old))
    current = tmp_path / "current"
    (current / "runs" / "clevr_count").mkdir(parents=True)
    for f in (BASELINE / "runs" / "clevr_count").glob("*"):
        shutil.copy(f, current / "runs" / "clevr_count")
    report = check(base, current, statistical=True, tolerance=100)
    assert report.passed and all(c.p_value is None for c in report.comparisons)
    assert any(
        "clevr_count: the baseline record" in n
        and "has no per-item predictions; the plain tolerance rule applies" in n
        for n in report.notes
    )
