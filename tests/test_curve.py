"""``curve`` (issue 17, item 7): a short pretraining run's checkpoints through a task, each metric
and RankMe by epoch as CSV and PNG; the second time every feature comes from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from helpers import TINY_PRETRAIN
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.tasks import ExtractOptions
from ijepa_eval.train import load_config, pretrain

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = ExtractOptions(progress=False, workers=0)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "classes"
    generate_classes(root, classes=4, per_class=16, val_per_class=4, size=32, progress=False)
    return root


@pytest.fixture(scope="module")
def run(synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrain") / "run"
    pretrain(
        load_config(
            "vit_tiny_synth",
            [*TINY_PRETRAIN, "logging.keep_every=1", f"data.root={synth}", f"logging.out={out}"],
        )
    )
    assert sorted(p.name for p in out.glob("ep*.pth.tar")) == [f"ep{i}.pth.tar" for i in (1, 2, 3)]
    return out


def test_curve_over_a_run_writes_csv_and_png_and_reruns_from_the_cache(run, synth, tmp_path):
    result = ie.curve(
        ["nearest_mean"],
        [run],
        data=str(synth),
        extraction=QUIET,
        results_dir=tmp_path / "results",
        out=tmp_path / "curve",
    )
    assert result.x == "epoch" and result.png.read_bytes()[:8] == PNG
    table = pd.read_csv(result.csv)
    assert table["epoch"].tolist() == [1, 2, 3] and len(table) == 3
    assert table["checkpoint"].tolist() == [str(run / f"ep{i}.pth.tar") for i in (1, 2, 3)]
    for column in ("nearest_mean.top1", "nearest_mean.rankme", "nearest_mean.mean_norm"):
        assert table[column].notna().all(), column
    assert table["sha256"].nunique() == 3  # three different checkpoints
    first = [e for runs in result.runs for r in runs for e in r.record.features["entries"]]
    assert first and not any(e["cache_hit"] for e in first)
    records = list((tmp_path / "results" / "runs" / "nearest_mean").glob("*.json"))
    assert len(records) == 3

    # the same three checkpoints again, from the command line: everything is a cache hit
    args = ["curve", str(run), "--tasks", "nearest_mean", "--data", str(synth), "--workers", "0"]
    again = CliRunner().invoke(
        app,
        [*args, "--results", str(tmp_path / "results"), "--out", str(tmp_path / "again")],
        env={"COLUMNS": "200"},
    )
    assert again.exit_code == 0, again.output
    assert again.output.count("(features 2/2 from the cache)") == 3, again.output
    records = list((tmp_path / "results" / "runs" / "nearest_mean").glob("*.json"))
    second = [json.loads(p.read_text()) for p in records]
    assert len(second) == 6
    hits = [e["cache_hit"] for r in second for e in r["features"]["entries"]]
    assert hits.count(True) == hits.count(False) == 6  # the second three: hits only
    again_table = pd.read_csv(tmp_path / "again" / "curve.csv")
    assert again_table["nearest_mean.top1"].tolist() == table["nearest_mean.top1"].tolist()
    assert (tmp_path / "again" / "curve.png").read_bytes()[:8] == PNG


def test_plain_checkpoint_lists_use_the_stored_epoch_else_the_position(run, synth, tmp_path):
    listed = [run / "ep3.pth.tar", run / "ep1.pth.tar"]
    result = ie.curve(["nearest_mean"], listed, data=str(synth), extraction=QUIET, results_dir=None)
    assert result.table["epoch"].tolist() == [1, 3] and result.csv is None  # sorted by epoch
    mixed_list = [run / "ep3.pth.tar", tmp_path / "no_epoch.pth.tar"]
    no_epoch = torch.load(run / "ep2.pth.tar", weights_only=True)
    del no_epoch["epoch"]
    torch.save(no_epoch, tmp_path / "no_epoch.pth.tar")
    mixed = ie.curve(
        ["nearest_mean"],
        mixed_list,
        data=str(synth),
        extraction=QUIET,
        results_dir=None,
    )
    assert mixed.x == "position" and mixed.table["position"].tolist() == [1, 2]
    assert "position" in mixed.notes[0]
    assert mixed.table["checkpoint"].tolist() == [str(p) for p in mixed_list]


def test_a_folder_without_epoch_checkpoints_is_one_line(tmp_path, synth):
    result = CliRunner().invoke(
        app, ["curve", str(tmp_path), "--tasks", "nearest_mean", "--data", str(synth)]
    )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "holds no ep*.pth.tar" in line
