"""``ijepa-eval report --model-card``: the runs' results in a Hugging Face model card's
model-index, read back with huggingface_hub's own reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import one_error_line
from huggingface_hub import ModelCard, metadata_load
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.errors import UserError
from ijepa_eval.results.load import load_records
from ijepa_eval.results.model_card import metric_name, select_model, write_model_card

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "results" / "baseline"
TWO_MODELS = ROOT / "results" / "bundled_vs_random"
runner = CliRunner()

CARD = """---
license: mit
tags:
- vision
- i-jepa
model-index:
- name: my-ijepa
  results:
  - task:
      type: image-classification
    dataset:
      name: ImageNet-1k
      type: imagenet-1k
      split: validation
    metrics:
    - type: accuracy
      value: 79.3
      name: linear probe (paper)
---
# My I-JEPA

Pretrained on my data.

| a | b |
|---|---|
"""


def test_card_written_from_the_records_reads_back_equal(tmp_path):
    card = tmp_path / "README.md"
    written = write_model_card(BASELINE, card)
    loaded = ModelCard.load(card)
    assert loaded.data.model_name == "ijepa_tiny_synth"
    got = {(r.task_name, r.metric_name): r for r in loaded.data.eval_results}
    assert len(got) == len(written) == 18  # every metric of the 5 tasks
    for record in load_records(BASELINE):
        data = record.data
        for metric, value in record.metrics.items():
            result = got[(record.task, metric_name(metric))]
            assert result.metric_value == round(value, 4) == pytest.approx(value, abs=5e-5)
            assert result.metric_type == ("accuracy" if metric == "top1" else metric)
            assert result.dataset_type == data["adapter"] and result.dataset_config == record.task
            assert result.dataset_split == record.predictions["split"] == "val"
            assert result.dataset_name == f"{Path(data['root']).name} ({data['adapter']})"
            depth = record.task == "depth_synth"
            assert result.task_type == ("depth-estimation" if depth else "image-classification")
    # the raw YAML follows the Hub's model-index spec: task, dataset, metrics per result
    index = metadata_load(card)["model-index"]
    assert [m["name"] for m in index] == ["ijepa_tiny_synth"]
    first = index[0]["results"][0]
    assert first["task"] == {"type": "image-classification", "name": "clevr_count"}
    assert first["dataset"] == {"name": "CLEVR_v1.0 (clevr_count)", "type": "clevr_count",
                                "config": "clevr_count", "split": "val"}  # fmt: skip
    assert first["metrics"][0] == {"type": "accuracy", "value": 29.6667,
                                   "name": "top-1 accuracy (%)"}  # fmt: skip
    assert loaded.text.startswith("\n# ijepa_tiny_synth\n")


def test_updating_keeps_the_card_and_twice_changes_nothing(tmp_path):
    card = tmp_path / "README.md"
    card.write_text(CARD)
    write_model_card(BASELINE, card)
    once = card.read_text()
    write_model_card(BASELINE, card)
    assert card.read_text() == once  # idempotent
    assert once.endswith("---\n# My I-JEPA\n\nPretrained on my data.\n\n| a | b |\n|---|---|\n")
    meta = metadata_load(card)
    assert meta["license"] == "mit" and meta["tags"] == ["vision", "i-jepa"]
    (index,) = meta["model-index"]
    assert index["name"] == "my-ijepa"  # the card's own name is kept
    paper = index["results"][0]  # a result for another dataset stays, first, untouched
    assert paper["dataset"]["type"] == "imagenet-1k" and paper["metrics"][0]["value"] == 79.3
    assert len(index["results"]) == 1 + 5


def test_newer_results_replace_ours_in_place(tmp_path):
    card = tmp_path / "README.md"
    write_model_card(BASELINE, card)
    newer = tmp_path / "newer"
    shutil.copytree(BASELINE / "runs", newer / "runs")
    record = next((newer / "runs" / "linprobe").glob("*.json"))
    record.write_text(record.read_text().replace('"top1": 38.0', '"top1": 41.0', 1))
    write_model_card(newer, card)
    results = ModelCard.load(card).data.eval_results
    assert len(results) == 18
    linprobe = [r for r in results if r.task_name == "linprobe" and r.metric_type == "accuracy"]
    assert [r.metric_value for r in linprobe] == [41.0]


def test_one_model_of_several(tmp_path):
    records = load_records(TWO_MODELS)
    with pytest.raises(UserError, match=r"the results hold 2 models \(ijepa_tiny_synth"):
        select_model(records)
    chosen = select_model(records, "da46b062")
    assert {r.label for r in chosen} == {"random_init.pth.tar"} and len(chosen) == 5
    (first, *_) = select_model(records, "ijepa_tiny_synth", "target_encoder")
    assert first.label == "ijepa_tiny_synth"
    with pytest.raises(UserError, match="no run of a model matching 'nope'"):
        select_model(records, "nope")
    card = tmp_path / "README.md"
    result = runner.invoke(
        app, ["report", "--results", str(TWO_MODELS), "--model-card", str(card),
              "--model", "random_init.pth.tar", "--model-name", "random-vit-tiny"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote 18 results of 5 tasks to the model-index of" in result.stderr
    assert ModelCard.load(card).data.model_name == "random-vit-tiny"


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("---\nlicense: [mit\n---\nbody\n", "its YAML front matter cannot be read (expected"),
        ("---\nmodel-index: 5\n---\nbody\n", "Invalid `model_index` in metadata"),
        ("---\n- a list\n---\nbody\n", "metadata block should be a dict"),
    ],
)
def test_malformed_front_matter_is_one_line_and_the_card_is_left_alone(tmp_path, front, message):
    card = tmp_path / "README.md"
    card.write_text(front)
    result = runner.invoke(app, ["report", "--results", str(BASELINE), "--model-card", str(card)])
    assert message in one_error_line(result)
    assert card.read_text() == front


def test_unwritable_card_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for card, message in (
        (blocker / "README.md", f"could not write the model card to {blocker / 'README.md'}"),
        (tmp_path, f"model card {tmp_path} is a folder"),
    ):
        result = runner.invoke(
            app, ["report", "--results", str(BASELINE), "--model-card", str(card)]
        )
        assert message in one_error_line(result)
