"""Tasks end to end: specs, the registry, evaluate, the run record, and the CLI commands."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.data.synth import generate_clevr
from ijepa_eval.tasks import ExtractOptions, evaluate, get_task, load_task_file, task_registry
from ijepa_eval.tasks import registry as task_registry_module
from ijepa_eval.tasks.pipeline import plan_splits
from ijepa_eval.tasks.spec import DataSpec

runner = CliRunner()
FAST = {"lrs": [0.05, 0.5], "weight_decays": [0.0], "epochs": 2, "min_steps": 30, "batch_size": 64}
FAST_ARGS = [arg for k, v in FAST.items() for arg in ("-p", f"{k}={json.dumps(v)}")]


@pytest.fixture(scope="module")
def clevr(tmp_path_factory) -> Path:
    return generate_clevr(
        tmp_path_factory.mktemp("clevr") / "CLEVR_v1.0", train=120, val=40, size=16, progress=False
    )


def _records(results: Path, task: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs" / task).glob("*.json"))]


def test_run_two_clevr_tasks_extracts_once_and_writes_two_records(clevr, tmp_path, official_ckpt):
    args = ["run", "--ckpt", str(official_ckpt), "--tasks", "clevr_count,clevr_dist"]
    args += ["--data", str(clevr), "--results", str(tmp_path / "res"), "--workers", "0", *FAST_ARGS]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    count, dist = (
        _records(tmp_path / "res", "clevr_count"),
        _records(tmp_path / "res", "clevr_dist"),
    )
    assert len(count) == len(dist) == 1
    count, dist = count[0], dist[0]
    assert [e.get("view") for e in count["features"]["entries"]] == [None, "hflip", None]
    assert [e["cache_hit"] for e in count["features"]["entries"]] == [False, False, False]
    assert [e["cache_hit"] for e in dist["features"]["entries"]] == [True, True, True]
    assert [e["key"] for e in count["features"]["entries"]] == [
        e["key"] for e in dist["features"]["entries"]
    ]
    for record in (count, dist):
        assert set(record["metrics"]) == {"top1", "top5", "mean_per_class_acc"}
        assert all(0 <= v <= 100 for v in record["metrics"].values())
        assert record["higher_is_better"]["top1"] is True
        assert (
            record["model"]["network"] == "target_encoder" and len(record["model"]["sha256"]) == 64
        )
        splits = record["splits"]
        assert splits["fit"] + splits["select"] == 120 and 8 <= splits["select"] <= 16
        assert splits["test"] == 40
        assert len(record["grid"]) == 2 * 2 * 2 * 2  # reps × whitening × heads × lrs
        assert record["chosen"]["representation"] in ("lastPOOL", "concatPOOL4")
        assert record["environment"]["torch"] and "git_commit" in record["environment"]
        assert record["data"]["adapter"] in ("clevr_count", "clevr_dist")
        assert record["task_spec"]["protocol"]
        head = tmp_path / "res" / "runs" / record["task"] / record["head_weights"]
        assert head.is_file()
    assert "top1 ↑" in result.output and "record:" in result.output


def test_test_labels_never_influence_the_choice(classes, tmp_path, official_ckpt, monkeypatch):
    """Permuting the reported split's labels leaves the chosen configuration unchanged."""
    enc = ie.load_encoder(official_ckpt)
    first = evaluate(
        "linprobe",
        encoder=enc,
        data=str(classes),
        results_dir=None,
        params=FAST,
        extraction=ExtractOptions(progress=False),
    )
    from ijepa_eval.tasks import pipeline

    def permuted(name, root, split, **kw):
        ds = ie.load_dataset(name, root, split, **kw)
        if split == "val":  # the reported split of this ImageNet-like layout
            ds.targets = [ds.targets[i] for i in np.random.default_rng(0).permutation(len(ds))]
        return ds

    monkeypatch.setattr(pipeline, "load_dataset", permuted)
    second = evaluate(
        "linprobe",
        encoder=enc,
        data=str(classes),
        results_dir=None,
        params=FAST,
        extraction=ExtractOptions(progress=False),
    )
    assert first.record["chosen"] == second.record["chosen"]
    assert first.record["data"]["plan"] == {
        "train": "train",
        "test": "val",
        "select": None,
        "holdout": 0.1,
    }


@pytest.mark.slow
def test_kshot_is_reproducible(classes, tmp_path, official_ckpt):
    enc = ie.load_encoder(official_ckpt)
    runs = [
        evaluate(
            "imagenet_kshot",
            encoder=enc,
            data=str(classes),
            shots=[1, 2],
            results_dir=tmp_path,
            extraction=ExtractOptions(progress=False),
        )
        for _ in range(2)
    ]
    a, b = (r.record for r in runs)
    assert a["metrics"] == b["metrics"] and a["metrics_std"] == b["metrics_std"]
    assert set(a["metrics"]) == {"top1_1shot", "top1_2shot"}
    assert a["chosen"]["1shot_seed0"]["selection"] == "fallback"
    assert a["splits"]["train_2shot_seed1"] == 6
    assert runs[0].path != runs[1].path and runs[0].path.is_file() and runs[1].path.is_file()


def test_plan_splits():
    assert plan_splits(DataSpec(select="auto"), ["train", "val", "test"]).__dict__ == {
        "train": "train",
        "test": "test",
        "select": "val",
        "holdout": None,
    }
    assert plan_splits(DataSpec(select="auto", holdout=0.2), ["train", "val"]).holdout == 0.2
    vtab = plan_splits(DataSpec(train="train800", select="val200", test="val"), ["train", "val"])
    assert (vtab.train, vtab.select, vtab.test) == ("train800", "val200", "val")
    assert plan_splits(DataSpec(select="none"), ["train", "val"]).select is None


def test_yaml_errors_name_the_field(tmp_path):
    good = get_task("clevr_count")
    assert good.dataset.adapter == "clevr_count" and good.probe.type == "linear"
    (tmp_path / "typo.yaml").write_text(
        "include: " + str(Path(good.source)) + "\nname: typo\ndataset: {trian: train}\n"
    )
    with pytest.raises(
        ie.UserError, match=r"unknown field 'dataset\.trian' \(did you mean 'dataset\.train'\?\)"
    ):
        load_task_file(tmp_path / "typo.yaml")
    (tmp_path / "nometrics.yaml").write_text(
        "name: nometrics\nversion: 1\ndescription: x\nprotocol: y\n"
        "dataset: {}\nprobe: {type: knn}\n"
    )
    with pytest.raises(ie.UserError, match="missing field 'metrics'"):
        load_task_file(tmp_path / "nometrics.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ie.UserError, match="not valid YAML"):
        load_task_file(tmp_path / "bad.yaml")


def test_unknown_task_suggests_and_writes_nothing(tmp_path, official_ckpt):
    result = runner.invoke(
        app,
        [
            "run",
            "--ckpt",
            str(official_ckpt),
            "--tasks",
            "clevr_count,clevr_cuont",
            "--results",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1 and "did you mean 'clevr_count'" in result.stderr
    assert not any(tmp_path.rglob("*.json"))


def test_include_path_and_entry_point_plugins(tmp_path, monkeypatch, classes, official_ckpt):
    base = get_task("knn")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "my_knn.yaml").write_text(
        f"include: {base.source}\nname: my_knn\n"
        "probe: {params: {ks: [3]}}\nmetrics: [top1_k3]\n"
    )
    assert "my_knn" in task_registry([extra]).names()
    record = evaluate(
        "my_knn",
        include_paths=[extra],
        ckpt=official_ckpt,
        data=str(classes),
        results_dir=None,
        extraction=ExtractOptions(progress=False),
    ).record
    assert set(record["metrics"]) == {"top1_k3"}
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "plugin_knn.yaml").write_text(
        (extra / "my_knn.yaml").read_text().replace("my_knn", "plugin_knn")
    )
    import sys
    import types

    module = types.ModuleType("fake_ijepa_plugin")
    module.TASK_DIR = str(plugin)
    monkeypatch.setitem(sys.modules, "fake_ijepa_plugin", module)
    point = EntryPoint(name="fake", value="fake_ijepa_plugin:TASK_DIR", group="ijepa_eval.tasks")
    monkeypatch.setattr(task_registry_module, "entry_points", lambda group: [point])
    assert "plugin_knn" in task_registry().names()
    with pytest.raises(ie.UserError, match="already registered"):
        task_registry([plugin])  # the same name twice


def test_bad_data_inputs(tmp_path, official_ckpt, classes, monkeypatch):
    enc = ie.load_encoder(official_ckpt)
    (tmp_path / "weird").mkdir()
    (tmp_path / "weird" / "notes.txt").write_text("hi")
    with pytest.raises(
        ie.UserError, match=r"cannot tell the format of .*weird \(found: notes.txt\)"
    ):
        evaluate("linprobe", encoder=enc, data=str(tmp_path / "weird"), results_dir=tmp_path)
    with pytest.raises(ie.UserError, match="needs at least|larger than|has 12|k="):
        evaluate(
            "imagenet_kshot",
            encoder=enc,
            data=str(classes),
            shots=[50],
            results_dir=tmp_path,
            extraction=ExtractOptions(progress=False),
        )
    one = tmp_path / "one" / "train" / "only"
    one.mkdir(parents=True)
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(one / f"{i}.png")
    (tmp_path / "one" / "val" / "only").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(tmp_path / "one" / "val" / "only" / "x.png")
    with pytest.raises(ie.UserError, match="two|single class|at least 2"):
        evaluate(
            "linprobe",
            encoder=enc,
            data=str(tmp_path / "one"),
            results_dir=tmp_path,
            params=FAST,
            extraction=ExtractOptions(progress=False),
        )
    monkeypatch.delenv("IJEPA_EVAL_DATA_IMAGENET", raising=False)
    monkeypatch.setenv("IJEPA_EVAL_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(ie.UserError, match="IJEPA_EVAL_DATA_IMAGENET=/path"):
        evaluate("linprobe", encoder=enc, results_dir=tmp_path)
    assert not any(tmp_path.rglob("runs/*/*.json"))


def test_configured_data_root_is_used(tmp_path, official_ckpt, classes, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(f"data:\n  imagenet: {classes}\n")
    monkeypatch.setenv("IJEPA_EVAL_CONFIG", str(config))
    args = [
        "knn",
        "--ckpt",
        str(official_ckpt),
        "--results",
        str(tmp_path / "res"),
        "-p",
        "ks=[1,3]",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "top1_k10" in result.stderr  # the task declares k=10..200
    result = runner.invoke(
        app,
        ["linprobe", "--ckpt", str(official_ckpt), "--results", str(tmp_path / "res"), *FAST_ARGS],
    )
    assert result.exit_code == 0, result.output
    (record,) = _records(tmp_path / "res", "linprobe")
    assert record["data"]["root"] == str(classes.resolve())


def test_tasks_command_lists_builtins():
    result = runner.invoke(app, ["tasks"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in (
        "linprobe",
        "imagenet_1pct",
        "imagenet_kshot",
        "clevr_count",
        "clevr_dist",
        "clevr_count_vtab1k",
        "clevr_dist_vtab1k",
        "knn",
    ):
        assert name in result.output
