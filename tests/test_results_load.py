"""Reading records back: bad files are skipped with a warning naming each; none is an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.errors import UserError
from ijepa_eval.results import RecordWarning, load_records, to_markdown
from ijepa_eval.results.leaderboard import leaderboard

FIXTURES = Path(__file__).parent / "fixtures" / "records"
runner = CliRunner()


@pytest.fixture
def results(tmp_path) -> Path:
    shutil.copytree(FIXTURES / "runs", tmp_path / "runs")
    return tmp_path


BAD = {
    "broken.json": '{"schema": "ijepa-eval/run/1", "task": ',
    "foreign.json": '{"model": "resnet50", "results": {"acc": 0.7}}',
    "list.json": "[1, 2, 3]",
    "future.json": '{"schema": "ijepa-eval/run/9", "task": "clevr_count"}',
    "no_metrics.json": '{"schema": "ijepa-eval/run/1", "task": "clevr_count", "metrics": {}}',
}


def test_malformed_and_foreign_json_are_skipped_with_a_warning_naming_each(results):
    for name, text in BAD.items():
        (results / "runs" / "clevr_count" / name).write_text(text)
    with pytest.warns(RecordWarning) as caught:
        records = load_records(results)
    messages = [str(w.message) for w in caught]
    assert len(messages) == len(BAD)
    for name in BAD:
        assert any(str(results / "runs" / "clevr_count" / name) in m for m in messages), name
    assert any("not valid JSON" in m for m in messages)
    assert any("not an ijepa-eval run record" in m for m in messages)
    assert len(records) == 9  # every good record is still read
    with pytest.warns(RecordWarning):
        assert to_markdown(leaderboard(results)) == to_markdown(leaderboard(FIXTURES))


def test_a_record_with_a_wrong_field_type_is_skipped(results):
    path = results / "runs" / "depth_synth" / "20260211T100000Z-3f1c0a9b-depth0.json"
    path.write_text(path.read_text().replace('"rmse": 0.412', '"rmse": "low"'))
    with pytest.warns(RecordWarning, match=r"depth0\.json: 'metrics\.rmse' is not a number"):
        records = load_records(results)
    assert len(records) == 8


def test_cli_prints_skipped_files_on_stderr_and_still_tabulates(results):
    (results / "runs" / "clevr_count" / "broken.json").write_text("{not json")
    result = runner.invoke(app, ["leaderboard", "--results", str(results)])
    assert result.exit_code == 0, result.output
    assert "warning: skipped" in result.stderr and "broken.json" in result.stderr
    assert result.stdout.startswith("| model |")


def test_no_records_at_all_is_a_clear_error(tmp_path):
    (tmp_path / "runs" / "clevr_count").mkdir(parents=True)
    with pytest.raises(UserError, match="no run records under"):
        load_records(tmp_path)
    result = runner.invoke(app, ["leaderboard", "--results", str(tmp_path)])
    assert result.exit_code == 1
    assert "error: no run records under" in result.stderr


def test_only_bad_files_is_the_same_clear_error_after_the_warnings(tmp_path):
    (tmp_path / "runs" / "knn").mkdir(parents=True)
    (tmp_path / "runs" / "knn" / "x.json").write_text("{}")
    result = runner.invoke(app, ["leaderboard", "--results", str(tmp_path)])
    assert result.exit_code == 1
    assert "x.json" in result.stderr and "no run records" in result.stderr


def test_missing_results_directory_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["leaderboard", "--results", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_the_runs_folder_itself_can_be_given(results):
    assert len(load_records(results / "runs")) == len(load_records(results)) == 9
