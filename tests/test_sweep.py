"""The layer sweep: one extraction, a run record per block, a PNG of the metric against depth."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data.synth import generate_clevr
from ijepa_eval.errors import UserError
from ijepa_eval.features.store import FeatureStore
from ijepa_eval.plots import sweep_plot
from ijepa_eval.tasks import ExtractOptions, get_task
from ijepa_eval.tasks.sweep import sweep

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add contention

RUNNER = CliRunner()
LINEAR = {"lrs": [0.05, 0.5], "weight_decays": [0.0], "epochs": 2, "min_steps": 30}
ATTENTIVE = {"lrs": [1e-3], "weight_decays": [0.01], "epochs": 0, "min_steps": 15}


@pytest.fixture(scope="module")
def clevr(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clevr") / "CLEVR_v1.0"
    return generate_clevr(root, train=100, val=40, size=16, progress=False)


def _records(results: Path, task: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs" / task).glob("*.json"))]


def _assert_png(path: Path) -> None:
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > img.height > 200
        colours = {c for _, c in img.convert("RGB").getcolors(1 << 20)}
    assert len(colours) > 3  # something drawn, not blank
    assert (214, 39, 40) in colours  # the best block, ringed and labelled in red


def test_sweep_extracts_once_and_writes_a_record_per_block(clevr, tmp_path, official_ckpt):
    result = sweep(
        "clevr_count",
        ckpt=str(official_ckpt),
        layers="all",
        data=str(clevr),
        results_dir=tmp_path,
        params=LINEAR,
        extraction=ExtractOptions(progress=False, workers=0),
    )
    assert result.blocks == [0, 1] and result.metric == "top1"
    # One entry per split and view (train, its mirror: clevr_count trains on hflip views, and
    # val as the reported split), each holding both blocks.
    entries = FeatureStore().entries()
    assert len(entries) == 3 and all(e.spec.layers == (0, 1) for e in entries)
    records = _records(tmp_path, "clevr_count")
    assert sorted(r["sweep"]["block"] for r in records) == [0, 1]
    for record in records:
        block = record["sweep"]["block"]
        assert record["sweep"]["of"] == 2
        assert record["features"]["representations"] == [f"block{block}"]
        assert record["features"]["layers"] == [block]
        assert all(e["cache_hit"] for e in record["features"]["entries"])  # no second forward
        assert record["chosen"]["representation"] == f"block{block}"
        assert (tmp_path / "runs" / "clevr_count" / record["head_weights"]).is_file()
    assert result.values == [r.record["metrics"]["top1"] for r in result.runs]
    assert result.plot.parent == tmp_path / "sweeps" and result.plot.suffix == ".png"
    _assert_png(result.plot)


def test_sweep_cli_attentive_on_chosen_layers(clevr, tmp_path, official_ckpt):
    plot = tmp_path / "figs" / "sweep.png"
    args = ["sweep", "--ckpt", str(official_ckpt), "--task", "clevr_count_attentive"]
    args += ["--layers", "0,1", "--data", str(clevr), "--results", str(tmp_path / "res")]
    args += ["--plot", str(plot), "--workers", "0"]
    args += [a for k, v in ATTENTIVE.items() for a in ("-p", f"{k}={json.dumps(v)}")]
    result = RUNNER.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "block   0" in result.output and "block   1" in result.output
    records = _records(tmp_path / "res", "clevr_count_attentive")
    assert sorted(r["chosen"]["block"] for r in records) == [0, 1]
    assert all(e["cache_hit"] for r in records for e in r["features"]["entries"])
    assert [e.spec.tokens for e in FeatureStore().entries()] == ["all", "all"]
    _assert_png(plot)
    assert not list(plot.parent.glob(".*.tmp"))  # written atomically: no leftovers


def test_sweep_refuses_bad_layers_and_unsweepable_probes(clevr, tmp_path, official_ckpt):
    args = ["sweep", "--ckpt", str(official_ckpt), "--task", "clevr_count", "--layers", "0,5"]
    args += ["--data", str(clevr), "--results", str(tmp_path)]
    result = RUNNER.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code != 0
    assert "out of range" in result.output and "0..1" in result.output
    assert not (tmp_path / "runs").exists()  # refused before any work
    depth = replace(get_task("clevr_count"), probe=replace(get_task("clevr_count").probe))
    depth = replace(depth, probe=replace(depth.probe, type="depth"))
    with pytest.raises(UserError, match="cannot be swept"):
        sweep(depth, ckpt=str(official_ckpt), data=str(clevr), results_dir=tmp_path)


def test_sweep_plot_rings_the_best_block_and_handles_one_point(tmp_path):
    kw = {"metric": "top1", "higher_is_better": True, "title": "t"}
    one = sweep_plot(tmp_path / "one.png", [3], [42.0], depth=4, **kw)
    many = sweep_plot(
        tmp_path / "many.png",
        list(range(32)),
        [50 + i**0.5 for i in range(32)],
        depth=32,
        intervals=[(49 + i**0.5, 51 + i**0.5) for i in range(32)],
        **kw,
    )
    for path in (one, many):
        _assert_png(path)
    with pytest.raises(ValueError, match="as many blocks as values"):
        sweep_plot(tmp_path / "bad.png", [1, 2], [1.0], depth=4, **kw)
    assert not (tmp_path / "bad.png").exists()
