"""Terminal tables: at 80 columns no line is longer, no name is cut into "…", nothing is lost."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.models.registry import load_registry
from ijepa_eval.tables import Col, Table, fitted, wrap_name
from ijepa_eval.tasks import all_tasks

ROOT = Path(__file__).parents[1]
BASELINE = ROOT / "results" / "baseline"
runner = CliRunner()


def _at_80(args: list[str]) -> str:
    """The command's output in an 80-column terminal, checked: no line longer, no "…"."""
    result = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code in (0, 1), result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    assert "…" not in result.output, result.output
    return result.output


@pytest.mark.parametrize(
    ("name", "width", "lines"),
    [
        ("imagenet_kshot", 9, ["imagenet_", "kshot"]),
        ("imagenet_kshot", 14, ["imagenet_kshot"]),
        ("facebook/ijepa_vith14_1k", 22, ["facebook/", "ijepa_vith14_1k"]),  # at / before _
        ("top1_1shot ↑", 7, ["top1_", "1shot ↑"]),
        ("ViT-L/16 (no released checkpoint)", 22, ["ViT-L/16 (no released", "checkpoint)"]),
        ("8d77ac1f8d77ac1f", 8, ["8d77ac1f8d77ac1f"]),  # cannot break: whole, on its own line
    ],
)  # fmt: skip
def test_wrap_name_breaks_where_a_name_reads_well(name, width, lines):
    assert wrap_name(name, width).split("\n") == lines


def test_a_table_folds_a_long_word_instead_of_cutting_it():
    word = "closest_object_distance_in_a_long_description"
    console = Console(width=30, file=io.StringIO(), color_system=None)
    table = Table(title="t")
    table.add_column("name")
    table.add_column("description")
    table.add_row("clevr_dist", word)
    console.print(table)
    text = console.file.getvalue()
    assert "…" not in text and max(map(len, text.splitlines())) <= 30
    assert word in "".join(re.findall(r"│ *(\S*?) *│\n", text))  # every character, in order
    with pytest.raises(ValueError, match="cropped"):
        table.add_column("x", no_wrap=True)


def test_fitted_keeps_a_line_per_cell_where_that_fits_else_stacks_and_breaks_names():
    columns = [Col("task", wrap=9), Col("metric", wrap=9), Col("value", right=True)]
    rows = [["imagenet_kshot", "top1_1shot ↑", "13.33"]]
    for width, header in ((80, "task"), (30, "task\nmetric")):
        console = Console(width=width, file=io.StringIO(), color_system=None)
        table = fitted(columns, rows, console, under=[1])
        assert str(table.columns[0].header) == header
        console.print(table)
        text = console.file.getvalue()
        assert max(map(len, text.splitlines())) <= width and "…" not in text
    cells = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert cells == ["imagenet_", "kshot", "top1_", "1shot ↑"]  # narrow: broken, stacked


def test_models_fits_80_columns_and_shows_every_name_whole():
    text = _at_80(["models"])
    for name, entry in load_registry().items():
        assert wrap_name(name, 22).split("\n")[-1] in text  # "facebook/" / "ijepa_vith14_1k"
        assert entry.license in text
    assert "│ ViT-H/16 │" in text and "│ 448      │" in text and "IN-22k 900ep" in text
    assert "ctx = encoder (the context encoder)" in " ".join(text.split())  # the legend


def test_tasks_fits_80_columns_with_every_task_name_whole():
    text = _at_80(["tasks"])
    for spec in all_tasks():
        assert f"│ {spec.name} " in text


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["check", "--baseline", str(BASELINE)], "│ kshot "),
        (["check", "--baseline", str(BASELINE), "--statistical"], "│ class_acc ↑ "),
        (["compare", *[str(p) for p in sorted(BASELINE.glob("runs/clevr_count/*.json")) * 2]],
         "│ clevr_count │"),
        (["compare", str(BASELINE), str(BASELINE), str(BASELINE)], "clevr_dist top5: column"),
        (["leaderboard", "--format", "table"], "│ ijepa_tiny_synth "),
    ],
    ids=["check", "check-statistical", "compare", "compare-matrix", "leaderboard"],
)  # fmt: skip
def test_result_tables_fit_80_columns(args, shown):
    text = _at_80([*args, "--results", str(BASELINE)] if args[0] != "compare" else args)
    assert shown in text


def test_cache_ls_fits_80_columns(tmp_path):
    data = generate_classes(tmp_path / "data", classes=2, per_class=3, size=32, progress=False)
    enc = ie.load_encoder("ijepa_tiny_synth")
    options = {"cache_dir": tmp_path / "cache", "workers": 0, "progress": False}
    ie.extract(enc, ie.load_dataset("imagefolder", data, "train"), layers="all", **options)
    ie.extract(enc, ie.load_dataset("imagefolder", data, "val"), tokens="grid:2x2", **options)
    text = _at_80(["cache", "ls", "--cache-dir", str(tmp_path / "cache")])
    assert text.count("│ vit_tiny_ ") == 2 and text.count("│ patch8_64 ") == 2  # stacked
    assert "│ target_encoder │" in text and "│ imagefolder: │" in text
    assert "│ 0,1,2,3,4,5 │" in text and "│ 5 +grid:2x2 │" in text and text.count(" done │") == 2
    for entry in ie.features.FeatureStore(tmp_path / "cache").entries():
        assert entry.short_key in text  # whole: `cache rm` takes it


def test_every_command_line_table_keeps_its_characters():
    """No module draws a plain rich table, whose cells end in "…" when the terminal is narrow."""
    plain = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "ijepa_eval").rglob("*.py"))
        if re.search(r"from rich(\.table)? import .*\b[Tt]able\b", path.read_text())
    ]
    assert plain == ["ijepa_eval/tables.py"]
