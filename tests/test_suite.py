"""Suites: ``run --suite`` lists missing datasets before any work, runs the rest, and a rerun
skips what is finished."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import one_error_line
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data.synth import generate_classes, generate_clevr
from ijepa_eval.errors import UserError
from ijepa_eval.tasks.suite import load_suite

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
FAST = ["-p", "min_steps=30", "-p", "lrs=[0.05]", "-p", "weight_decays=[0.0]"]


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("suite-data")
    classes = generate_classes(base / "classes", classes=3, per_class=8, size=32, progress=False)
    clevr = generate_clevr(base / "CLEVR_v1.0", train=40, val=20, size=32, progress=False)
    return {"IJEPA_EVAL_DATA_IMAGENET": classes, "IJEPA_EVAL_DATA_CLEVR": clevr}


def _run(args: list[str], env: dict[str, Path]):
    return runner.invoke(app, args, env={"COLUMNS": "200", **{k: str(v) for k, v in env.items()}})


def _records(results: Path) -> list[Path]:
    return sorted(results.glob("runs/*/*.json"))


def test_the_paper_suite_lists_what_is_missing_runs_the_rest_and_skips_it_the_second_time(
    roots, tmp_path
):
    args = ["run", "--suite", "ijepa_paper", "--results", str(tmp_path), "--workers", "0", *FAST]
    first = _run(args, roots)
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    missing = [i for i, line in enumerate(lines) if line.startswith("  missing: ")]
    assert [lines[i].split()[1] for i in missing] == [
        "imagenet_1pct_finetune", "cifar100", "places205", "inat18"
    ]  # fmt: skip
    assert "IJEPA_EVAL_DATA_PLACES205" in first.output
    started = lines.index(next(line for line in lines if line.startswith("linprobe — ")))
    assert max(missing) < started  # listed before any work
    made = _records(tmp_path)
    assert sorted(p.parent.name for p in made) == ["clevr_count", "clevr_dist", "linprobe"]
    assert "suite ijepa_paper: 3 ran, 0 skipped (finished), 4 missing" in first.output

    second = _run(args, roots)
    assert second.exit_code == 0, second.output
    assert _records(tmp_path) == made
    assert "suite ijepa_paper: 0 ran, 3 skipped (finished), 4 missing" in second.output
    assert second.output.count("skipped: a finished record exists") == 3

    changed = _run([*args, "-p", "linprobe.min_steps=31"], roots)  # other settings: it reruns
    assert "1 ran, 2 skipped" in changed.output
    assert len(_records(tmp_path)) == 4


def test_strict_runs_nothing_when_a_dataset_is_missing(roots, tmp_path):
    args = ["run", "--suite", "ijepa_paper", "--strict", "--results", str(tmp_path)]
    line = one_error_line(_run(args, roots))
    assert "(--strict)" in line and "cifar100: no location configured" in line
    assert not _records(tmp_path)


def test_a_users_suite_from_the_include_path_and_skip_existing_for_tasks(roots, tmp_path):
    (tmp_path / "mine" / "suites").mkdir(parents=True)
    (tmp_path / "mine" / "suites" / "quick.yaml").write_text("name: quick\ntasks: [linprobe]\n")
    assert load_suite("quick", [tmp_path / "mine"]).tasks == ("linprobe",)
    results = ["--results", str(tmp_path / "r"), "--workers", "0", *FAST]
    suite = ["run", "--suite", "quick", "--include-path", str(tmp_path / "mine"), *results]
    assert _run(suite, roots).exit_code == 0
    tasks = ["run", "--tasks", "linprobe", "--data", str(roots["IJEPA_EVAL_DATA_IMAGENET"])]
    again = _run([*tasks, "--skip-existing", *results], roots)  # the same run by --tasks
    assert again.exit_code == 0 and "skipped: a finished record exists" in again.output
    assert len(_records(tmp_path / "r")) == 1
    assert _run([*tasks, *results], roots).exit_code == 0  # --tasks reruns by default
    assert len(_records(tmp_path / "r")) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "ijepa_papr"], "no suite or suite file named 'ijepa_papr'; did you mean"),
        (["--suite", "ijepa_paper", "--data", "x"], "--data applies to --tasks"),
        (["--suite", "ijepa_paper", "--tasks", "knn"], "give --tasks a,b,c or --suite NAME"),
        ([], "give --tasks a,b,c or --suite NAME"),
        (["--tasks", "knn", "--strict"], "--strict applies to --suite"),
    ],
)
def test_suite_mistakes_are_one_line(args, message, tmp_path):
    line = one_error_line(runner.invoke(app, ["run", *args, "--results", str(tmp_path)]))
    assert message in line


def test_a_suite_lays_out_its_results_in_tables_that_place_every_task(tmp_path):
    paper = load_suite("ijepa_paper")
    placed = {task for table in paper.tables for task in table.tasks}
    assert set(paper.tasks) <= placed and "imagenet_1pct" in placed  # beside the fine-tuning
    table3, table5 = paper.tables[2], paper.tables[4]
    assert table3.shows("ImageNet-1k") and table3.shows(None) and not table3.shows("ImageNet-22k")
    assert table5.shows("ImageNet-22k") and table5.shows("ImageNet-1k") and not table5.shows(None)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "odd.yaml").write_text(
        "name: odd\ntasks: [linprobe, knn]\ntables: [{title: T, tasks: [linprobe]}]\n"
    )
    with pytest.raises(UserError, match="suite odd: task knn is in none of its tables"):
        load_suite("odd", [tmp_path])
