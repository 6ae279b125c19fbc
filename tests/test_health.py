"""Label-free health (issue 17, item 6): RankMe, near-constant dimensions, mean feature norm; in
every record that extracts features, and from ``info --health``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.health import health, rankme
from ijepa_eval.tasks import ExtractOptions, evaluate
from ijepa_eval.tasks.record import RunRecord

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = ExtractOptions(progress=False, workers=0)


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    return generate_classes(
        tmp_path_factory.mktemp("classes"),
        classes=3,
        per_class=8,
        size=16,
        val_per_class=4,
        progress=False,
    )


def test_rankme_is_one_for_collapsed_features():
    row = torch.randn(64, generator=torch.Generator().manual_seed(0))
    collapsed = row.expand(500, 64).clone()  # every row the same vector
    assert rankme(collapsed) == pytest.approx(1.0, abs=1e-3)
    got = health(collapsed)
    assert got["rankme"] == pytest.approx(1.0, abs=1e-3)
    assert got["near_constant_dims"] == 1.0  # no coordinate varies
    assert got["mean_norm"] == pytest.approx(float(row.norm()), rel=1e-4)


def test_rankme_is_close_to_d_for_isotropic_gaussian_features():
    x = torch.randn(4096, 64, generator=torch.Generator().manual_seed(0))
    got = health(x)
    assert 0.97 * 64 < got["rankme"] <= 64
    assert got["near_constant_dims"] == 0.0
    assert got["mean_norm"] == pytest.approx(8.0, rel=0.02)  # E|x| ≈ sqrt(D)
    assert (got["rows"], got["of_rows"], got["dim"]) == (4096, 4096, 64)


def test_rankme_counts_the_dimensions_actually_used():
    """Features spanning 8 of 64 coordinates (the rest zero): RankMe ≈ 8, 56/64 near-constant."""
    x = torch.zeros(2048, 64)
    x[:, :8] = torch.randn(2048, 8, generator=torch.Generator().manual_seed(1))
    got = health(x)
    assert 7.7 < got["rankme"] <= 8.0
    assert got["near_constant_dims"] == pytest.approx(56 / 64)


def test_a_large_set_is_sampled_seeded_and_says_so():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(2))
    a, b = health(x, max_rows=100), health(x, max_rows=100)
    assert a == b and (a["rows"], a["of_rows"], a["sample_seed"]) == (100, 300, 0)
    assert "sample_seed" not in health(x)
    with pytest.raises(ValueError, match="non-empty"):
        health(torch.zeros(0, 4))


def test_every_record_that_extracts_features_has_health(classes, tmp_path, official_ckpt):
    result = evaluate(
        "nearest_mean",
        ckpt=official_ckpt,
        data=str(classes),
        extraction=QUIET,
        results_dir=tmp_path,
    )
    got = result.record.health
    assert set(got) >= {"rankme", "near_constant_dims", "mean_norm", "split", "block", "rows"}
    assert got["split"] == "val" and got["rows"] == 12 and got["block"] == 1  # lastPOOL: 2 blocks
    assert 1.0 <= got["rankme"] <= 12 and got["mean_norm"] > 0
    raw = json.loads(result.path.read_text())
    assert raw["health"] == got
    assert RunRecord.read(result.path).health == got
    old = {k: v for k, v in raw.items() if k != "health"}  # records from before: no health
    assert (
        RunRecord.from_json(old).health == {} and "health" not in RunRecord.from_json(old).to_json()
    )
    with pytest.raises(ValueError, match="health.rankme"):
        RunRecord.from_json({**raw, "health": {"rankme": "high"}})


def test_info_health_prints_the_three_numbers(classes, official_ckpt, tmp_path):
    runner = CliRunner()
    args = ["info", "--ckpt", str(official_ckpt), "--health", "--data", str(classes)]
    shown = runner.invoke(app, [*args, "--split", "val", "--workers", "0"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    for word in ("RankMe", "near-constant dims", "mean feature norm", "12 rows of val"):
        assert word in shown.output, shown.output
    as_json = runner.invoke(app, [*args, "--split", "val", "--workers", "0", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["health"]["rows"] == 12 and data["health"]["split"] == "val"
    no_data = runner.invoke(app, ["info", "--ckpt", str(official_ckpt), "--health"])
    assert no_data.exit_code == 1 and "--health needs --data" in no_data.stderr
