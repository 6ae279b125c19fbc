"""Leaderboard: golden Markdown/CSV/terminal tables from fixed records, its ordering rules, the
headline metric, the paper layout, references, charts.

The fixture records (tests/fixtures/records/runs) hold four models × four tasks: two real
records of the bundled tiny checkpoint, k-shot runs with a spread over seeds, a depth task with a
lower-is-better RMSE, the same weights under two networks, and two runs of one (model, task)
whose file names sort the other way round from their ``created`` times. The golden files beside
them (`GOLDEN`) are what ``ijepa-eval leaderboard`` prints for them; after an intended change,
``make golden`` rewrites them (``REGENERATE_GOLDEN=1`` and these tests): review the diff.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import one_error_line
from PIL import Image
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.results import (
    headline,
    leaderboard,
    load_records,
    load_references,
    plot_leaderboard,
    sections,
    to_csv,
    to_markdown,
)
from ijepa_eval.results.leaderboard import IDENTITY, format_value, render
from ijepa_eval.tasks import all_tasks, get_task

FIXTURES = Path(__file__).parent / "fixtures" / "records"
REFERENCE = FIXTURES / "reference.yaml"
ROOT = Path(__file__).parents[1]
PAPER = ROOT / "results" / "reference"
DEMO_RESULTS = [ROOT / "results" / "baseline", ROOT / "results" / "bundled_vs_random"]
runner = CliRunner()
# golden file → (reference rows, --format, --metrics, --layout); terminal tables at 80 columns
GOLDEN = {
    "expected.md": (REFERENCE, "md", "headline", "flat"),
    "expected.csv": (REFERENCE, "csv", "headline", "flat"),
    "expected_all.md": (REFERENCE, "md", "all", "flat"),
    "expected_paper.md": (PAPER, "md", "headline", "paper"),
    "expected_paper.txt": (PAPER, "table", "headline", "paper"),
}


def _board():
    return leaderboard(FIXTURES, REFERENCE)


def _same_as_golden(text: str, name: str) -> None:
    """``text`` is the golden file ``name``, byte for byte; else fail with a unified diff.
    With ``REGENERATE_GOLDEN=1`` (``make golden``), write it instead."""
    golden = FIXTURES / name
    if os.environ.get("REGENERATE_GOLDEN") == "1":
        golden.write_bytes(text.encode())
        return
    expected = golden.read_bytes().decode()
    if text != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True), text.splitlines(keepends=True), name, "now"
        )
        pytest.fail(
            f"the leaderboard differs from {golden} (after an intended change, `make golden` "
            f"rewrites it; review the diff):\n{''.join(diff)}",
            pytrace=False,
        )


@pytest.mark.parametrize("name", GOLDEN)
def test_cli_writes_the_golden_file(tmp_path, name):
    reference, fmt, metrics, layout = GOLDEN[name]
    out = tmp_path / "board" / name
    args = ["--results", str(FIXTURES), "--reference", str(reference), "--format", fmt]
    args += ["--metrics", metrics, "--layout", layout, "--out", str(out)]
    result = runner.invoke(app, ["leaderboard", *args], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left
    _same_as_golden(out.read_bytes().decode(), name)


@pytest.mark.parametrize("name", GOLDEN)
def test_python_api_renders_the_golden_file(name):
    reference, fmt, metrics, layout = GOLDEN[name]
    board = leaderboard(FIXTURES, reference)
    text = render(board, fmt, metrics=metrics, layout=layout, width=80)
    assert text.encode() == (FIXTURES / name).read_bytes()


def test_markdown_and_csv_defaults_are_the_golden_files():
    assert to_markdown(_board()).encode() == (FIXTURES / "expected.md").read_bytes()
    assert to_csv(_board()).encode() == (FIXTURES / "expected.csv").read_bytes()


def test_cli_prints_markdown_to_stdout_by_default():
    result = runner.invoke(app, ["leaderboard", "--results", str(FIXTURES)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("| model | network | px | sha256 | clevr_count top1 ↑ |")
    assert "depth_synth rmse ↓" in result.stdout
    assert "[ref" not in result.stdout  # references only when asked for


def test_newest_run_of_a_model_and_task_wins_by_created_not_by_file_name():
    board = _board()
    rows = board.rows[(board.rows.model == "ijepa_vith14_in1k") & (board.rows.kind == "measured")]
    target = rows[rows.network == "target_encoder"].index[0]
    # the older run (80.0) has the file name that sorts last
    assert board.values.at[target, "clevr_count/top1"] == 85.5
    encoder = rows[rows.network == "encoder"].index[0]  # same weights, other network: own row
    assert board.values.at[encoder, "clevr_count/top1"] == 83.2


def test_a_newer_layer_sweep_run_does_not_stand_for_the_model(tmp_path):
    shutil.copytree(FIXTURES / "runs", tmp_path / "runs")
    source = next((tmp_path / "runs" / "clevr_count").glob("*.json"))
    record = json.loads(source.read_text())
    record.update(created="2099-01-01T00:00:00+00:00", run_id="swept-block-0")
    record["metrics"] = {k: 1.0 for k in record["metrics"]}
    record["sweep"] = {"block": 0, "layers": [0]}
    (tmp_path / "runs" / "clevr_count" / "swept-block-0.json").write_text(json.dumps(record))
    assert leaderboard(tmp_path).values.equals(leaderboard(FIXTURES).values)


def test_order_does_not_depend_on_file_names_or_locations(tmp_path):
    """The same records under shuffled names and folders give the same table."""
    for i, path in enumerate(sorted(FIXTURES.glob("runs/*/*.json"), reverse=True)):
        dest = tmp_path / "runs" / f"batch{i % 2}" / f"{i:02d}-{path.stem[::-1]}.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
    assert to_markdown(leaderboard(tmp_path, REFERENCE)) == to_markdown(_board())


def test_columns_follow_task_order_then_declared_metric_order():
    columns = [c.key for c in _board().columns]
    tasks = list(dict.fromkeys(k.split("/")[0] for k in columns))
    assert tasks == sorted(tasks)
    assert columns[:3] == ["clevr_count/top1", "clevr_count/top5", "clevr_count/mean_per_class_acc"]
    assert columns[6:8] == ["depth_synth/rmse", "depth_synth/delta1"]  # as the records list them


def test_repository_reference_file_loads_with_a_source_for_every_number():
    rows = load_references(PAPER)
    known = {t.name: {m.name for m in t.metrics} for t in all_tasks()}
    assert {r.label for r in rows} == {
        "ijepa_vith14_in1k",
        "ijepa_vith16_448_in1k",
        "ijepa_vith14_in22k",
        "ijepa_vitg16_in22k",
        "I-JEPA ViT-L/16 (no released checkpoint)",  # Table 2 only
    }
    for row in rows:
        assert "arXiv:2301.08243" in row.citation
        for task, metric in row.values:
            assert metric in known[task], (task, metric)  # names the tasks here use
            assert f"({task} {metric}" in row.citation  # and where each number came from
    vith14 = next(r for r in rows if r.label == "ijepa_vith14_in1k")
    assert vith14.values[("linprobe", "top1")] == 79.3
    assert vith14.values[("clevr_count", "top1")] == 86.7


def test_reference_rows_are_marked_and_cited_in_markdown():
    text = to_markdown(leaderboard(FIXTURES, PAPER))
    assert "| ijepa_vith16_448_in1k [ref 2] | target_encoder | 448 |" in text
    assert "linprobe top1 ↑" in text and "81.10" in text
    assert "not reproduced by ijepa-eval" in text
    assert 'Table 1, row "I-JEPA ViT-H/14, 300 epochs" (linprobe top1, frozen)' in text


def test_a_malformed_reference_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "ref.yaml"
    bad.write_text(
        "source: x\nrows:\n  - model: m\n    results:\n      - {task: t, metrics: {a: 1}}\n"
    )
    result = runner.invoke(
        app, ["leaderboard", "--results", str(FIXTURES), "--reference", str(bad)]
    )
    assert result.exit_code == 1
    assert "missing field 'rows[].results[].adaptation'" in result.output


def test_plot_draws_one_chart_per_task(tmp_path):
    board = _board()
    written = plot_leaderboard(board, tmp_path / "charts")
    assert [p.name for p in written] == [f"{t}.png" for t in board.tasks]
    with Image.open(tmp_path / "charts" / "clevr_count.png") as image:
        pixels = {colour for _, colour in image.convert("RGB").getcolors(1 << 16)}
    assert (76, 114, 176) in pixels and (170, 170, 170) in pixels  # measured and reference bars


def test_cli_plot_to_one_png_stacks_the_charts(tmp_path):
    out = tmp_path / "board.png"
    result = runner.invoke(
        app, ["leaderboard", "--results", str(FIXTURES), "--plot", str(out), "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.format == "PNG"
        one = plot_leaderboard(leaderboard(FIXTURES), tmp_path / "each")
        assert image.height == sum(Image.open(p).height for p in one)
    assert result.stdout.startswith("model,network,px,sha256,kind,source,")


def test_bad_format_is_a_user_error():
    result = runner.invoke(app, ["leaderboard", "--results", str(FIXTURES), "--format", "xlsx"])
    assert result.exit_code == 1
    assert "--format must be md, csv or table, not 'xlsx'" in result.output


def test_model_label_falls_back_to_the_checkpoint_file_name():
    by_sha = {r.model.short_sha: r.label for r in load_records(FIXTURES)}
    assert by_sha == {
        "18e5cbca": "tiny-vit-p8-32px.pth.tar",
        "3f1c0a9b": "ijepa_vith14_in1k",
        "c0ffee11": "ep100.pth.tar",
    }
    record = json.loads(
        (FIXTURES / "runs/depth_synth/20260212T080000Z-c0ffee11-depth0.json").read_text()
    )
    assert record["model"]["registry_name"] is None


def test_the_papers_fine_tuning_numbers_sit_beside_no_frozen_task():
    shown = runner.invoke(
        app, ["leaderboard", "--results", str(FIXTURES), "--reference", str(PAPER)],
        env={"COLUMNS": "300"},
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert "79.3" in shown.output  # Table 1: a frozen linear probe, beside linprobe
    # Table 2 (fine-tuning): its three rows beside imagenet_1pct_finetune, and nowhere else
    board = leaderboard(FIXTURES, PAPER)
    table2 = {73.3, 77.3, 69.4}
    where = {
        key
        for key, values in board.values.items()
        for i, value in values.items()
        if board.rows.loc[i, "kind"] == "reference" and value in table2
    }
    assert where == {"imagenet_1pct_finetune/top1"}
    column = board.values["imagenet_1pct_finetune/top1"]
    assert sorted(column.dropna().tolist()) == sorted(table2)
    assert not any(c.task == "imagenet_1pct" for c in board.columns)


def test_a_fine_tuned_reference_for_a_frozen_task_is_refused(tmp_path):
    text = REFERENCE.read_text().replace("adaptation: frozen", "adaptation: fine-tuned", 1)
    (tmp_path / "ref.yaml").write_text(text)
    refused = runner.invoke(
        app, ["leaderboard", "--results", str(FIXTURES), "--reference", str(tmp_path / "ref.yaml")]
    )
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    (line,) = refused.stderr.strip().splitlines()
    assert "clevr_count evaluates a frozen encoder; a fine-tuned number" in line


def test_plus_minus_is_the_interval_where_a_record_has_one(tmp_path):
    """± half the 95% interval's width where ``metrics_ci`` exists (it wins over a std), else
    ± std over seeds; a note under the table says so; CSV gets the interval's ends."""
    shutil.copytree(FIXTURES / "runs", tmp_path / "runs")
    path = tmp_path / "runs/clevr_count/20261122T155920Z-18e5cbca-302b33.json"
    record = json.loads(path.read_text())
    top1 = record["metrics"]["top1"]
    record["metrics_ci"] = {"top1": [top1 - 4.0, top1 + 6.0]}
    path.write_text(json.dumps(record))
    board = leaderboard(tmp_path)
    text = to_markdown(board)
    assert f"{top1:.2f} ± 5.00" in text
    assert "20.00 ± 2.50" in text  # a k-shot record without an interval keeps its std
    assert "± is half the width of the run's 95% bootstrap interval" in text
    csv = to_csv(board)
    assert "clevr_count/top1/ci95_low,clevr_count/top1/ci95_high" in csv.splitlines()[0]


# --- one metric per task, the paper's tables, 80 columns -----------------------------------


def test_headline_is_the_first_metric_each_task_declares():
    board = _board()
    top = headline(board)
    assert [c.key for c in top.columns] == [
        "clevr_count/top1", "clevr_dist/top1", "depth_synth/rmse", "imagenet_kshot/top1_1shot"
    ]  # fmt: skip
    assert all(c.metric == get_task(c.task).metrics[0].name for c in top.columns)
    assert top.rows.equals(board.rows)  # every row stays, with its values and spreads
    assert top.values["depth_synth/rmse"].equals(board.values["depth_synth/rmse"])
    assert top.stds["imagenet_kshot/top1_1shot"].equals(board.stds["imagenet_kshot/top1_1shot"])


@pytest.mark.parametrize("results", DEMO_RESULTS, ids=lambda p: p.name)
def test_the_demos_markdown_has_one_column_per_task(results):
    board = leaderboard(results)
    header = to_markdown(board).splitlines()[0].strip("| ").split(" | ")
    assert header[:4] == list(IDENTITY)
    assert [h.split()[0] for h in header[4:]] == board.tasks
    every = to_markdown(board, metrics="all")  # then a table per task, every metric in it
    for task in board.tasks:
        assert f"### {task}: every metric" in every
    depth = [c.header for c in board.columns if c.task == "depth_synth"]
    assert len(depth) == 6 and "| " + " | ".join([*IDENTITY, *depth]) + " |" in every


WIDE_OPTIONS = {
    "default": [],
    "reference": ["--reference", str(PAPER)],
    "paper-all": ["--reference", str(PAPER), "--layout", "paper", "--metrics", "all"],
}


@pytest.mark.parametrize("options", WIDE_OPTIONS.values(), ids=list(WIDE_OPTIONS))
@pytest.mark.parametrize("results", DEMO_RESULTS, ids=lambda p: p.name)
def test_the_demos_leaderboard_fits_an_80_column_terminal(results, options):
    args = ["leaderboard", "--results", str(results), "--format", "table", *options]
    shown = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    if not options:  # the demo's own results: one table, one column per task
        assert text.count("┏") == 1
    board = leaderboard(results, PAPER if options else None)
    for label in board.rows["model"]:
        assert label in text or len(label) > 22, label  # a short name is never broken
    top = headline(board)
    for key in top.values:  # every value is there, whole
        for value in top.values[key].dropna():
            assert f" {format_value(value)} " in text, (key, value)


def test_a_terminal_gets_the_table_drawn_to_its_width():
    """Without --format or --out, a terminal gets the `table` format at its width."""
    import pty
    import subprocess
    import sys

    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "80"}
    code = "from ijepa_eval.cli import main; main()"
    args = [sys.executable, "-c", code, "leaderboard", "--results", str(DEMO_RESULTS[0])]
    done = subprocess.run(args, stdout=child, stderr=child, env=env, timeout=120)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child's side is closed: all of it was read
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    text = out.decode()
    assert done.returncode == 0, text
    assert "┃ model" in text and "| model |" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_paper_layout_sets_our_rows_above_the_papers_and_in22k_models_apart(tmp_path):
    shutil.copytree(FIXTURES / "runs", tmp_path / "runs")
    tiny = tmp_path / "runs/clevr_count/20261122T155920Z-18e5cbca-302b33.json"
    record = json.loads(tiny.read_text())
    record["model"].update(spec="/w/IN22K-vit.h.14-900e.pth.tar", sha256="22" * 32)
    (tiny.parent / "20261123T000000Z-22222222-in22k0.json").write_text(json.dumps(record))
    board = leaderboard(tmp_path, PAPER)
    shown = {s.title: s.board for s in sections(board, layout="paper")}
    assert list(shown) == [
        "Table 1: linear evaluation on ImageNet-1k",
        "Table 2: ImageNet-1k with 1% of the labels",
        "Table 3: linear-probe transfer, image classification",
        "Table 4: linear-probe transfer, low-level tasks (Clevr)",
        "Table 5: pretraining on ImageNet-1k or ImageNet-22k",
        "Other tasks (not in the paper)",
    ]

    def rows(title: str) -> list[str]:
        part = shown[title].rows
        return [f"{m} {n}" + (" [ref]" if k == "reference" else "") for m, n, k in zip(
            part["model"], part["network"], part["kind"], strict=True
        )]  # fmt: skip

    # ours right above the paper's row of the same model (by registry name, or file name)
    assert rows("Table 5: pretraining on ImageNet-1k or ImageNet-22k") == [
        "ijepa_vith14_in1k encoder",
        "ijepa_vith14_in1k target_encoder",
        "ijepa_vith14_in1k target_encoder [ref]",
        "IN22K-vit.h.14-900e.pth.tar target_encoder",
        "ijepa_vith14_in22k target_encoder [ref]",
        "ijepa_vitg16_in22k target_encoder [ref]",
    ]
    assert rows("Table 4: linear-probe transfer, low-level tasks (Clevr)") == [
        "ijepa_vith14_in1k encoder",
        "ijepa_vith14_in1k target_encoder",
        "ijepa_vith14_in1k target_encoder [ref]",
        "tiny-vit-p8-32px.pth.tar target_encoder",  # a model the paper has not: after
    ]  # no IN-22k model in Tables 3 and 4, as in the paper
    assert [c.key for c in shown["Table 2: ImageNet-1k with 1% of the labels"].columns] == [
        "imagenet_1pct_finetune/top1"
    ]  # a table's tasks without results are left out, and tables without any
    other = shown["Other tasks (not in the paper)"]
    assert [c.key for c in other.columns] == ["depth_synth/rmse", "imagenet_kshot/top1_1shot"]
    no_refs = [s.title for s in sections(leaderboard(FIXTURES), layout="paper")]
    assert no_refs == [
        "Table 4: linear-probe transfer, low-level tasks (Clevr)",
        "Table 5: pretraining on ImageNet-1k or ImageNet-22k",
        "Other tasks (not in the paper)",
    ]


def test_csv_holds_every_metric_whatever_metrics_says():
    for metrics in ("headline", "all"):
        assert render(_board(), "csv", metrics=metrics) == to_csv(_board())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layout", "foo"], "--layout must be flat or paper, not 'foo'"),
        (["--metrics", "some"], "--metrics must be headline or all, not 'some'"),
        (["--layout", "paper", "--format", "csv"], "--layout paper arranges the md and table"),
        (["--layout", "paper", "--out", "board.csv"], "csv is one flat table of every metric"),
    ],
)
def test_a_wrong_table_option_is_one_line(tmp_path, args, message):
    args = [a.replace("board.csv", str(tmp_path / "board.csv")) for a in args]
    result = runner.invoke(app, ["leaderboard", "--results", str(FIXTURES), *args])
    assert message in one_error_line(result)
    assert not (tmp_path / "board.csv").exists()
