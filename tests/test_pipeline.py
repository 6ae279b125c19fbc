"""The evaluation pipeline: parameters checked before any work, scoping of -p across tasks,
one --data parser, per-item predictions, the probe contract (a probe is one module + one YAML)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import one_error_line
from sklearn.neighbors import NearestCentroid
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.data.spec import parse_spec
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.features.store import FeatureStore
from ijepa_eval.probes.base import Probe, ProbeResult, find_probe, probe_registry
from ijepa_eval.tasks import ExtractOptions, evaluate, get_task, prepare
from ijepa_eval.tasks.pipeline import prepare_tasks, scope_params
from ijepa_eval.tasks.record import RunRecord

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
QUIET = ExtractOptions(progress=False, workers=0)
FAST = {"lrs": [0.05, 0.5], "weight_decays": [0.0], "epochs": 2, "min_steps": 30}


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> Path:
    return generate_classes(
        tmp_path_factory.mktemp("classes"),
        classes=3,
        per_class=10,
        size=16,
        val_per_class=4,
        progress=False,
    )


def _nothing_cached() -> bool:
    return FeatureStore().entries() == []


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        (
            "epoch=1",
            "unknown probe parameter 'epoch' for linprobe (linear); did you mean 'epochs'?",
        ),
        ("lrs=hello", "linear probe: lrs must be a list of numbers, not 'hello'"),
        ("lrs=[0.1, -1]", "linear probe: lrs must be positive"),
        ("batch_size=abc", "linear probe: batch_size must be int, not 'abc'"),
        ("min_steps=-3", "linear probe: epochs and min_steps must be >= 0"),
        ("linprobe.min_step=5", "linear probe: unknown parameter 'min_step'; did you mean"),
    ],
)
def test_a_bad_probe_parameter_is_one_line_before_any_work(
    param, expected, classes, tmp_path, official_ckpt, monkeypatch
):
    import ijepa_eval.models as models

    def no_loading(*args, **kwargs):  # the parameter is checked before the encoder loads
        raise AssertionError("the encoder was loaded before the parameters were checked")

    monkeypatch.setattr(models, "load_encoder", no_loading)
    args = ["linprobe", "--ckpt", str(official_ckpt), "--data", str(classes)]
    result = runner.invoke(app, [*args, "--results", str(tmp_path), "-p", param])
    assert expected in one_error_line(result)
    assert _nothing_cached() and not any(tmp_path.rglob("*.json"))


def test_out_of_range_values_of_every_probe_are_refused_at_parse_time():
    cases = {
        "depth": ({"epochs": 0}, "epochs must be >= 1"),
        "attentive": ({"lrs": [-1e-3]}, "lrs must be positive"),
        "knn": ({"ks": [0, 10]}, "ks must be positive"),
        "logreg": ({"Cs": []}, "Cs must be positive and non-empty"),
        "nearest_mean": ({"metric": "manhattan"}, "metric must be 'cosine' or 'euclidean'"),
    }
    for name, (params, message) in cases.items():
        with pytest.raises(ie.UserError, match=f"{name} probe: {message}"):
            find_probe(name).parse(params)
    # epochs=0 is a valid schedule where a step budget governs (min_steps), as documented
    assert find_probe("linear").parse({"epochs": 0, "min_steps": 50}).steps(10) == 50


def test_parameters_go_to_the_tasks_whose_probe_takes_them():
    specs = [get_task("knn"), get_task("linprobe"), get_task("clevr_count")]
    scoped = scope_params(specs, {"min_steps": 50, "ks": [1], "linprobe": {"epochs": 3}})
    assert scoped == {
        "knn": {"ks": [1]},
        "linprobe": {"min_steps": 50, "epochs": 3},
        "clevr_count": {"min_steps": 50},
    }
    by_probe = scope_params(specs, {"linear": {"momentum": 0.99}})
    assert by_probe["linprobe"] == by_probe["clevr_count"] == {"momentum": 0.99}
    assert by_probe["knn"] == {}
    with pytest.raises(ie.UserError, match="unknown probe parameter 'temprature'.*'temperature'"):
        scope_params(specs, {"temprature": 0.1})


def test_run_with_several_tasks_checks_every_one_first(classes, tmp_path, official_ckpt):
    args = ["run", "--ckpt", str(official_ckpt), "--tasks", "knn,linprobe"]
    args += ["--data", str(classes), "--results", str(tmp_path), "--workers", "0"]
    line = one_error_line(runner.invoke(app, [*args, "-p", "knn.min_steps=5"]))
    assert "knn probe: unknown parameter 'min_steps'" in line
    assert _nothing_cached()
    fast = [a for k, v in FAST.items() for a in ("-p", f"linprobe.{k}={json.dumps(v)}")]
    result = runner.invoke(app, [*args, "-p", "ks=[1,3]", *fast], env={"COLUMNS": "200"})
    assert "declares metrics ['top1_k10'" in one_error_line(result)  # knn.yaml: k = 10..200
    assert _nothing_cached()  # known from the parameters: refused before any work
    result = runner.invoke(app, [*args, *fast], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    (linear,) = (tmp_path / "runs" / "linprobe").glob("*.json")
    assert json.loads(linear.read_text())["task_spec"]["probe"]["params"]["min_steps"] == 30


def test_data_specs_resolve_the_same_for_every_command(tmp_path, official_ckpt):
    cifar = tmp_path / "cifar"
    (cifar / "cifar-10-batches-py").mkdir(parents=True)
    assert parse_spec(str(cifar)) == ("cifar10", str(cifar))  # was imagefolder for `extract`
    assert prepare("linprobe", data=str(cifar)).adapter == "cifar10"  # the task path agrees

    for spec, message in (
        (f"clevr_cuont:{tmp_path}", "did you mean 'clevr_count'"),
        ("imagefolder:", "has no root after 'imagefolder:'"),
    ):
        info = runner.invoke(app, ["data", "info", spec])
        assert message in one_error_line(info)
        run = runner.invoke(app, ["linprobe", "--ckpt", str(official_ckpt), "--data", spec])
        assert message in one_error_line(run)
    with pytest.raises(ie.UserError, match="task clevr_count reads clevr_count data, not cifar10"):
        prepare("clevr_count", data=f"cifar10:{cifar}")


def test_per_item_predictions_beside_the_record(classes, tmp_path, official_ckpt):
    result = evaluate(
        "linprobe",
        ckpt=official_ckpt,
        data=str(classes),
        params=FAST,
        extraction=QUIET,
        results_dir=tmp_path,
    )
    record = result.record
    preds = np.load(result.path.with_name(record.predictions["file"]))
    assert set(preds.files) == {"top5", "target"} == set(record.predictions["arrays"])
    assert preds["top5"].shape == (12, 3) and record.predictions["items"] == 12
    top1 = 100 * float(np.mean(preds["top5"][:, 0] == preds["target"]))
    assert top1 == pytest.approx(record.metrics["top1"])
    test = ie.load_dataset("imagefolder", classes, "val")
    assert preds["target"].tolist() == test.targets
    digest = hashlib.sha256("\n".join(test.ids()).encode()).hexdigest()
    assert record.predictions["item_ids_sha256"] == digest
    assert record.predictions["classes"] == test.classes  # what the target indices name
    assert record.examples is None and not list(tmp_path.rglob("*.examples.npz"))  # depth only
    again = RunRecord.read(result.path)
    assert again.predictions == record.predictions and again.run_id == record.run_id


def test_kshot_draws_keep_predictions_per_draw(classes, tmp_path, official_ckpt):
    result = evaluate(
        "imagenet_kshot",
        ckpt=official_ckpt,
        data=str(classes),
        shots=[2],
        extraction=QUIET,
        results_dir=tmp_path,
    )
    preds = np.load(result.path.with_name(result.record.predictions["file"]))
    assert set(preds.files) == {"target", *(f"2shot_seed{s}/top5" for s in (0, 1, 2))}
    for seed in (0, 1, 2):
        top1 = 100 * float(np.mean(preds[f"2shot_seed{seed}/top5"][:, 0] == preds["target"]))
        assert top1 == pytest.approx(result.record.chosen[f"2shot_seed{seed}"]["top1"])


def test_the_example_probe_is_one_module_and_one_yaml(classes, official_ckpt):
    assert "nearest_mean" in probe_registry().names()
    listing = runner.invoke(app, ["tasks"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0 and "nearest_mean" in listing.output
    enc = ie.load_encoder(official_ckpt)
    record = evaluate(
        "nearest_mean",
        encoder=enc,
        data=str(classes),
        params={"metric": "euclidean"},
        extraction=QUIET,
        results_dir=None,
    ).record
    train = ie.extract(enc, ie.load_dataset("imagefolder", classes, "train"), progress=False)
    test = ie.extract(enc, ie.load_dataset("imagefolder", classes, "val"), progress=False)
    reference = NearestCentroid().fit(train.pooled()[:, 0].float().numpy(), train.labels)
    predicted = reference.predict(test.pooled()[:, 0].float().numpy())
    assert record.metrics["top1"] == pytest.approx(100 * np.mean(predicted == test.labels))
    assert record.splits == {"fit": 30, "test": 12}


@dataclass(frozen=True)
class ConstantConfig:
    answer: int = 0


class ConstantProbe(Probe):
    """A probe from outside the package (``type: test_pipeline:ConstantProbe``)."""

    name = "constant"
    Config = ConstantConfig

    def run(self, inputs, config, device):
        hits = (inputs.test.y == config.answer).double().mean().item()
        return ProbeResult(metrics={"top1": 100 * hits})


def test_a_probe_named_by_module_path_runs_through_the_same_pipeline(
    classes, tmp_path, official_ckpt
):
    (tmp_path / "constant.yaml").write_text(
        "name: constant\nversion: 1\ndescription: always one class\nprotocol: a test\n"
        "dataset: {train: train, test: val}\nprobe: {type: 'test_pipeline:ConstantProbe'}\n"
        "metrics: [top1]\n"
    )
    (job,) = prepare_tasks(
        ["constant"], params={"answer": 1}, include_paths=[tmp_path], data=str(classes)
    )
    assert job.config.answer == 1
    result = ie.evaluate(
        "constant",
        include_paths=[tmp_path],
        ckpt=official_ckpt,
        data=str(classes),
        params={"answer": 1},
        extraction=QUIET,
        results_dir=tmp_path / "res",
    )
    assert result.record.metrics == {"top1": pytest.approx(100 / 3)}
    assert result.record.predictions is None and result.record.head_weights is None
    with pytest.raises(ie.UserError, match="probe 'no_such_module:X' cannot be imported"):
        find_probe("no_such_module:X")


def test_an_old_record_reads_back_as_it_was_written():
    old = Path(__file__).parent / "fixtures/records/runs/clevr_count"
    for path in old.glob("*.json"):
        raw = json.loads(path.read_text())
        assert raw["schema"] == "ijepa-eval/run/1"
        record = RunRecord.read(path)
        written = record.to_json()
        assert {k: written[k] for k in raw} == raw and record.predictions is None
        assert all(written[k] in ({}, [], None) for k in set(written) - set(raw))  # defaults
        assert (
            record["metrics"] == raw["metrics"] and record.model.short_sha == record.run_id[17:25]
        )


def test_a_record_never_holds_nan(tmp_path):
    path = next((Path(__file__).parent / "fixtures/records/runs/clevr_count").glob("*.json"))
    record = RunRecord.read(path)
    record.metrics = {**record.metrics, "top1": float("nan")}
    record.run_id = "nan-run"
    with pytest.raises(ie.UserError, match=r"not a finite number in the record \(metrics top1\)"):
        record.write(tmp_path)
    assert not any(tmp_path.rglob("*.json")) and not any(tmp_path.rglob("*.tmp"))


def test_every_evaluation_command_takes_the_same_option_groups():
    shared = ["--ckpt", "--img-size", "--data", "--option", "--cache-dir", "--probe-param"]
    for command in ("run", "linprobe", "lowshot", "clevr", "knn", "sweep"):
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        for option in shared:
            assert option in shown.output, (command, option)
        for panel in ("Checkpoint", "Preprocessing", "Data", "Features", "Evaluation", "Output"):
            assert f"─ {panel} ─" in shown.output, (command, panel)
    info = runner.invoke(app, ["info", "--help"], env={"COLUMNS": "200"}).output
    assert "─ Checkpoint ─" in info and "--img-size" in info and "--probe-param" not in info
