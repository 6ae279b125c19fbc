"""``check``: planted regressions fail and are named, noise passes, directions are respected,
and a baseline task with no current record is MISSING, never passed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.errors import UserError
from ijepa_eval.results import check

TEMPLATE = (
    Path(__file__).parent
    / "fixtures/records/runs/clevr_count/20261122T155920Z-18e5cbca-302b33.json"
)
runner = CliRunner()

BASE = {
    "clevr_count": {"top1": 27.0, "top5": 91.0},
    "depth_synth": {"rmse": 0.412, "delta1": 88.1},
}


def write(root: Path, task: str, metrics: dict[str, float], created: str = "2026-03-01T00:00:00Z"):
    """A real run record (the tiny checkpoint's) with ``task`` and ``metrics`` swapped in."""
    record = json.loads(TEMPLATE.read_text())
    record.update(
        task=task,
        metrics=metrics,
        higher_is_better={m: m != "rmse" for m in metrics},
        created=created,
        run_id=f"{task}-{created}",
    )
    path = root / "runs" / task / f"{task}-{created.replace(':', '')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def dirs(tmp_path: Path, now: dict[str, dict[str, float]]) -> tuple[Path, Path]:
    baseline, results = tmp_path / "baseline", tmp_path / "results"
    for task, metrics in BASE.items():
        write(baseline, task, metrics)
    for task, metrics in now.items():
        write(results, task, metrics)
    return baseline, results


def statuses(report) -> dict[tuple[str, str], str]:
    return {(c.task, c.metric): c.status for c in report.comparisons}


def test_noise_within_tolerance_passes(tmp_path):
    baseline, results = dirs(
        tmp_path,
        {
            "clevr_count": {"top1": 26.8, "top5": 91.4},  # within the default 1%
            "depth_synth": {"rmse": 0.415, "delta1": 87.5},
        },
    )
    report = check(baseline, results)
    assert report.passed
    assert set(statuses(report).values()) == {"ok"}
    result = runner.invoke(app, ["check", "--baseline", str(baseline), "--results", str(results)])
    assert result.exit_code == 0, result.output
    assert "passed" in result.stdout


def test_a_planted_regression_fails_and_is_named(tmp_path):
    baseline, results = dirs(
        tmp_path, {"clevr_count": {"top1": 24.0, "top5": 91.0}, "depth_synth": BASE["depth_synth"]}
    )
    report = check(baseline, results)
    assert not report.passed
    assert [(c.task, c.metric) for c in report.failures] == [("clevr_count", "top1")]
    result = runner.invoke(app, ["check", "--baseline", str(baseline), "--results", str(results)])
    assert result.exit_code == 1
    assert (
        "REGRESSED clevr_count top1 ↑: baseline 27.00, now 24.00, delta -3.00 (tolerance 0.27 = 1%)"
        in result.stdout
    )
    assert "check failed: 1 regressed, 0 missing" in result.stdout


def test_lower_is_better_metrics_the_right_way_round(tmp_path):
    worse, better = tmp_path / "worse", tmp_path / "better"
    baseline, results = dirs(worse, {**BASE, "depth_synth": {"rmse": 1.5, "delta1": 88.1}})
    report = check(baseline, results)
    assert statuses(report)[("depth_synth", "rmse")] == "regressed"  # RMSE up: worse
    assert not report.passed
    baseline, results = dirs(better, {**BASE, "depth_synth": {"rmse": 0.1, "delta1": 88.1}})
    report = check(baseline, results)
    assert statuses(report)[("depth_synth", "rmse")] == "improved"  # RMSE down: better
    assert report.passed


def test_accuracy_going_up_is_an_improvement_not_a_failure(tmp_path):
    baseline, results = dirs(tmp_path, {**BASE, "clevr_count": {"top1": 40.0, "top5": 91.0}})
    report = check(baseline, results)
    assert report.passed
    assert statuses(report)[("clevr_count", "top1")] == "improved"


def test_a_baseline_task_that_was_not_run_is_missing_not_passed(tmp_path):
    baseline, results = dirs(tmp_path, {"clevr_count": BASE["clevr_count"]})
    report = check(baseline, results)
    assert not report.passed
    assert statuses(report)[("depth_synth", "rmse")] == "missing"
    result = runner.invoke(app, ["check", "--baseline", str(baseline), "--results", str(results)])
    assert result.exit_code == 1
    assert "MISSING depth_synth rmse ↓: baseline 0.412, now missing" in result.stdout
    assert "check failed: 0 regressed, 2 missing" in result.stdout


def test_a_metric_missing_from_the_current_record_is_missing(tmp_path):
    baseline, results = dirs(tmp_path, {**BASE, "clevr_count": {"top1": 27.0}})
    assert statuses(check(baseline, results))[("clevr_count", "top5")] == "missing"


def test_a_non_finite_current_value_is_a_regression(tmp_path):
    baseline, results = dirs(tmp_path, {**BASE, "clevr_count": {"top1": float("nan"), "top5": 91}})
    assert statuses(check(baseline, results))[("clevr_count", "top1")] == "regressed"


def test_the_newest_current_record_is_compared(tmp_path):
    baseline, results = dirs(tmp_path, BASE)
    write(results, "clevr_count", {"top1": 10.0, "top5": 91.0}, created="2026-04-01T00:00:00Z")
    write(results, "clevr_count", {"top1": 27.0, "top5": 91.0}, created="2026-03-15T00:00:00Z")
    assert statuses(check(baseline, results))[("clevr_count", "top1")] == "regressed"


def test_tolerance_option_and_file_most_specific_first(tmp_path):
    baseline, results = dirs(
        tmp_path,
        {
            "clevr_count": {"top1": 25.0, "top5": 89.0},  # -2 and -2 points
            "depth_synth": {"rmse": 0.912, "delta1": 86.1},  # +0.5 m (worse) and -2 points
        },
    )
    assert not check(baseline, results, tolerance=1.0).passed
    assert check(baseline, results, tolerance=2.0).passed
    assert not check(baseline, results, tolerance="2%").passed  # 2% of 88.1 < 2 points
    (baseline / "tolerances.yaml").write_text(
        "default: 3\ntasks:\n  clevr_count: 2.5\n  depth_synth: {rmse: 5%, default: 2.0}\n"
    )
    report = check(baseline, results, tolerance=0.1)  # for metrics the file leaves open: none
    tolerances = {(c.task, c.metric): c.tolerance_text for c in report.comparisons}
    assert tolerances == {
        ("clevr_count", "top1"): "2.5",
        ("clevr_count", "top5"): "2.5",
        ("depth_synth", "delta1"): "2",
        ("depth_synth", "rmse"): "0.0206 = 5%",
    }
    assert [(c.task, c.metric) for c in report.failures] == [("depth_synth", "rmse")]


def test_relative_tolerance_scales_with_the_baseline():
    from ijepa_eval.results.check import Tolerance, compare

    one_percent = Tolerance.parse("1%", "test")
    assert compare("t", "top1", True, 80.0, 79.3, one_percent).status == "ok"  # -0.7 < 0.8
    assert compare("t", "top1", True, 80.0, 79.1, one_percent).status == "regressed"
    assert compare("t", "rmse", False, 0.4, 0.403, one_percent).status == "ok"  # +3 mm < 4 mm
    assert compare("t", "rmse", False, 0.4, 0.405, one_percent).status == "regressed"
    assert compare("t", "rmse", False, 0.4, 0.395, one_percent).status == "improved"


def test_a_change_of_exactly_the_tolerance_passes():
    from ijepa_eval.results.check import Tolerance, compare

    assert compare("t", "top1", True, 27.0, 26.73, Tolerance.parse("1%", "t")).status == "ok"
    assert compare("t", "top1", True, 27.0, 26.5, Tolerance.parse(0.5, "t")).status == "ok"
    assert compare("t", "rmse", False, 0.3, 0.4, Tolerance.parse("0.1", "t")).status == "ok"


def test_tolerance_file_default_applies_without_the_option(tmp_path):
    baseline, results = dirs(tmp_path, {**BASE, "clevr_count": {"top1": 25.0, "top5": 91.0}})
    (baseline / "tolerances.yaml").write_text("default: 2.5\n")
    assert check(baseline, results).passed
    result = runner.invoke(
        app,
        ["check", "--baseline", str(baseline), "--results", str(results), "--tolerance", "1"],
    )
    assert result.exit_code == 1  # the option overrides the file's default


@pytest.mark.parametrize(
    "text",
    ["default: -1\n", "tasks:\n  clevr_count: lots\n", "tolerance: 1\n", "[1, 2", "default: x%\n"],
)
def test_a_bad_tolerance_file_is_a_clear_error(tmp_path, text):
    baseline, results = dirs(tmp_path, BASE)
    (baseline / "tolerances.yaml").write_text(text)
    with pytest.raises(UserError, match="tolerances.yaml"):
        check(baseline, results)


def test_negative_tolerance_option_is_refused(tmp_path):
    baseline, results = dirs(tmp_path, BASE)
    result = runner.invoke(
        app,
        ["check", "--baseline", str(baseline), "--results", str(results), "--tolerance", "-1"],
    )
    assert result.exit_code == 1
    assert "--tolerance must be a number ≥ 0 (0.5) or a percentage (2%)" in result.stderr


def test_a_usage_error_exits_2():
    result = runner.invoke(app, ["check", "--results", "results"])  # no --baseline
    assert result.exit_code == 2


def test_empty_results_are_an_error_not_a_pass(tmp_path):
    baseline, _ = dirs(tmp_path, {})
    (tmp_path / "results").mkdir()
    result = runner.invoke(
        app, ["check", "--baseline", str(baseline), "--results", str(tmp_path / "results")]
    )
    assert result.exit_code == 1
    assert "no run records" in result.stderr


def test_a_baseline_inside_the_results_folder_is_not_taken_for_current_results(tmp_path):
    for task, metrics in BASE.items():
        write(tmp_path / "results" / "baseline", task, metrics)
    result = runner.invoke(
        app,
        [
            "check",
            "--baseline",
            str(tmp_path / "results/baseline"),
            "--results",
            str(tmp_path / "results"),
        ],
    )
    assert result.exit_code == 1
    assert "no run records" in result.stderr


def test_notes_say_what_was_not_checked_and_version_changes(tmp_path):
    baseline, results = dirs(tmp_path, {**BASE, "knn": {"top1_k20": 50.0}})
    path = write(results, "clevr_count", BASE["clevr_count"], created="2026-03-02T00:00:00Z")
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "task_version": 2}))
    report = check(baseline, results)
    assert report.passed
    assert any("not in the baseline (not checked): knn" in n for n in report.notes)
    assert any("clevr_count: task version 1 in the baseline, 2 now" in n for n in report.notes)


EXAMPLES = Path(__file__).parents[1] / "examples" / "ci"


def test_the_example_tolerances_file_is_valid():
    from ijepa_eval.results.check import Tolerances

    tolerances = Tolerances.read(EXAMPLES / "tolerances.yaml")
    assert str(tolerances.get("clevr_count", "top5")) == "1.5"
    assert str(tolerances.get("clevr_dist", "top5")) == "2"
    assert str(tolerances.get("knn", "top1_k20")) == "1%"


def test_the_example_workflow_uses_real_commands():
    import re

    import yaml

    steps = yaml.safe_load((EXAMPLES / "ijepa-regression.yml").read_text())["jobs"]["regression"]
    runs = " ".join(step.get("run", "") for step in steps["steps"])
    used = set(re.findall(r"ijepa-eval ([a-z-]+)", runs))
    known = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    known |= {g.name for g in app.registered_groups}
    assert used <= known, used - known
    assert {"data", "run", "check", "leaderboard"} <= used
    assert 'ijepa-eval check --baseline "$BASELINE"' in runs
