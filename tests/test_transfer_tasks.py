"""The transfer tasks of I-JEPA Table 3 (cifar100, places205, inat18) end to end on tiny trees
in the releases' layouts, and their reference rows."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.data import load_dataset
from ijepa_eval.data.synth import as_inat18, as_places205, generate_classes
from ijepa_eval.results.reference import load_references
from ijepa_eval.tasks import ExtractOptions, prepare

REPO = Path(__file__).resolve().parents[1]
FAST = {"lrs": [0.05], "weight_decays": [0.0], "min_steps": 30}
TEST_SPLIT = {"cifar100": "test", "places205": "val", "inat18": "val"}


def as_cifar100(src: Path, out: Path, seed: int = 0) -> Path:
    """``src`` (a 32 px image folder) as ``cifar-100-python``: train from train/, test from
    val/, rows shuffled; plain pickles of arrays and lists, as the release holds."""
    base = out / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    classes = []
    for split, name in (("train", "train"), ("val", "test")):
        ds = load_dataset("imagefolder", src, split)
        classes = ds.classes
        order = rng.permutation(len(ds))
        data = np.stack([np.asarray(ds[i][0]).transpose(2, 0, 1).reshape(-1) for i in order])
        batch = {"data": data, "fine_labels": [ds.targets[i] for i in order], "coarse_labels": []}
        (base / name).write_bytes(pickle.dumps(batch, protocol=3))
    meta = {"fine_label_names": classes, "coarse_label_names": ["all"]}
    (base / "meta").write_bytes(pickle.dumps(meta, protocol=3))
    return out


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("transfer")
    folder = generate_classes(
        base / "classes", classes=3, per_class=8, val_per_class=4, size=32, progress=False
    )
    as_places205(folder, base / "places205", seed=1)
    as_inat18(folder, base / "inat18", seed=2)
    return {
        "cifar100": as_cifar100(folder, base / "cifar100"),
        "places205": base / "places205",
        "inat18": base / "inat18",
    }


@pytest.fixture(scope="module")
def encoder():
    return ie.load_encoder("ijepa_tiny_synth")


def labels_on_file(task: str, root: Path) -> list[int]:
    """The reported split's labels as the dataset's own files state them, in their order."""
    if task == "places205":
        lines = (root / "trainvalsplit_places205" / "val_places205.csv").read_text().split("\n")
        return [int(line.split()[1]) for line in lines if line]
    if task == "inat18":
        doc = json.loads((root / "val2018.json").read_text())
        category = {a["image_id"]: a["category_id"] for a in doc["annotations"]}
        return [category[image["id"]] for image in doc["images"]]
    batch = pickle.loads((root / "cifar-100-python" / "test").read_bytes())  # our own file
    return list(batch["fine_labels"])


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("task", ["cifar100", "places205", "inat18"])
def test_task_end_to_end(task: str, trees, encoder, tmp_path: Path) -> None:
    result = ie.evaluate(
        task,
        encoder=encoder,
        data=str(trees[task]),
        params=FAST,
        results_dir=tmp_path,
        extraction=ExtractOptions(progress=False, workers=0),
    )
    record = result.record
    assert record["task"] == task and record["data"]["adapter"] == task
    plan = {"train": "train", "test": TEST_SPLIT[task], "select": None, "holdout": 0.1}
    assert record["data"]["plan"] == plan  # selection on held-out train, never on the report
    assert record["splits"] == {"fit": 21, "select": 3, "test": 12}
    assert set(record["metrics"]) == {"top1", "top5", "mean_per_class_acc"}
    assert all(0 <= v <= 100 for v in record["metrics"].values())
    assert "VISSL" in record["task_spec"]["protocol"] and record["task_version"] == 1
    assert record["chosen"]["representation"] in ("lastPOOL", "concatPOOL4")
    preds = np.load(result.path.with_name(record["predictions"]["file"]))
    assert preds["target"].tolist() == labels_on_file(task, trees[task])  # the file's labels
    assert preds["top5"].shape == (12, 3) and set(preds["top5"].ravel()) == {0, 1, 2}
    geometry = record["model"]["preprocess"]
    assert geometry["interpolation"] == ("bicubic" if task == "cifar100" else "bilinear")


def test_locations_come_from_the_settings(trees, monkeypatch) -> None:
    for task in TEST_SPLIT:
        monkeypatch.setenv(f"IJEPA_EVAL_DATA_{task.upper()}", str(trees[task]))
        job = prepare(task)
        assert (job.adapter, job.root) == (task, str(trees[task]))


def test_tasks_are_listed() -> None:
    result = CliRunner().invoke(app, ["tasks"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for task in TEST_SPLIT:
        assert f"│ {task} " in result.output


def test_reference_rows_of_tables_3_and_5() -> None:
    rows = {row.label: row for row in load_references(REPO / "results" / "reference")}
    expected = {
        "ijepa_vith14_in1k": (87.5, 58.4, 47.6),
        "ijepa_vith14_in22k": (89.5, 57.8, 50.5),
        "ijepa_vitg16_in22k": (89.5, 59.1, 55.3),
    }
    for model, values in expected.items():
        found = tuple(rows[model].values[(task, "top1")] for task in TEST_SPLIT)
        assert found == values
        assert "Table 5" in rows[model].citation
    assert 'Table 3, row "I-JEPA ViT-H/14"' in rows["ijepa_vith14_in1k"].citation
