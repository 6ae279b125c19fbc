"""``ijepa-eval data info``, dataset specs and the adapter registry."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data import EvalDataset, load, load_dataset, parse_spec, register_dataset
from ijepa_eval.errors import DataError
from ijepa_eval.registry import Registry

runner = CliRunner()


def make_folder(root: Path, classes: dict[str, int], split: str = "train") -> None:
    for name, n in classes.items():
        (root / split / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (4, 4), (i, 0, 0)).save(root / split / name / f"{i}.png")


def invoke(*args: str):
    return runner.invoke(app, ["data", "info", *args], env={"COLUMNS": "200"})


def test_info_table_for_an_image_folder(tmp_path: Path) -> None:
    make_folder(tmp_path, {"cat": 3, "dog": 1})
    make_folder(tmp_path, {"cat": 2, "dog": 2}, split="val")
    result = invoke(str(tmp_path))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "imagefolder" in out and "image folder (root/<split>/<class>/<image>)" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert [c.strip() for c in rows["train"].split("│")[1:4]] == ["train", "4", "2"]
    assert [c.strip() for c in rows["cat"].split("│")[1:4]] == ["cat", "3", "2"]
    assert [c.strip() for c in rows["dog"].split("│")[1:4]] == ["dog", "1", "2"]


def test_info_json_for_one_split_with_a_bad_image(tmp_path: Path) -> None:
    make_folder(tmp_path, {"a": 2, "b": 1})
    (tmp_path / "train" / "b" / "0.png").write_bytes(b"junk")
    spec = f"imagefolder:{tmp_path}"
    result = invoke(spec, "--split", "train", "--json", "--skip-bad-images")
    assert result.exit_code == 0, result.output
    (info,) = json.loads(result.output)
    assert info["size"] == 2 and info["label_histogram"] == {"a": 2, "b": 0}
    assert [s["id"] for s in info["skipped"]] == ["b/0.png"]
    assert (
        info["fingerprint"]
        == load_dataset("imagefolder", tmp_path, skip_bad_images=True).fingerprint()
    )


def test_info_summarises_many_classes_and_depth_sets(tmp_path: Path) -> None:
    make_folder(tmp_path / "many", {f"c{i:02d}": 1 + i % 3 for i in range(31)})
    out = invoke(str(tmp_path / "many")).output
    assert "min per class" in out and "c05" not in out
    for name in ("rgb", "depth"):
        (tmp_path / "d" / "val" / name).mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "d" / "val" / "rgb" / "x.png")
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "d" / "val" / "depth" / "x.png")
    out = invoke(f"depth_folder:{tmp_path / 'd'}").output
    assert "depth map (float32 metres)" in out and "label histogram" not in out


def test_info_errors_are_one_red_line(tmp_path: Path) -> None:
    def error_of(*args: str) -> str:
        result = invoke(*args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ")
        return line

    assert "did you mean 'clevr_count'" in error_of(f"clevr_cuont:{tmp_path}")
    assert "found no imagefolder splits" in error_of(str(tmp_path / "nowhere"))
    make_folder(tmp_path / "f", {"a": 1})
    assert "takes no option image_column" in error_of(str(tmp_path / "f"), "-o", "image_column=x")


def test_spec_syntax() -> None:
    assert parse_spec("clevr_dist:/data/CLEVR_v1.0") == ("clevr_dist", "/data/CLEVR_v1.0")
    assert parse_spec("hf:owner/name") == ("hf", "owner/name")
    assert parse_spec("/data/imagenet") == ("imagefolder", "/data/imagenet")
    assert parse_spec("C:\\data\\imagenet") == ("imagefolder", "C:\\data\\imagenet")
    with pytest.raises(DataError, match="did you mean 'cifar10'"):
        parse_spec("cifar1O:/data")


def test_registry_collisions_and_suggestions() -> None:
    reg = Registry("widget", DataError)
    reg.register("alpha", "json:dumps")
    with pytest.raises(DataError, match="widget 'alpha' is already registered"):
        reg.register("alpha", len)
    with pytest.raises(DataError, match="unknown widget 'alpah'; did you mean 'alpha'"):
        reg.get("alpah")
    with pytest.raises(DataError, match="unknown widget 'zzz'; known widgets: alpha"):
        reg.get("zzz")
    assert reg.get("alpha") is json.dumps  # lazy entry resolved on first use
    with pytest.raises(DataError, match="'imagefolder' is already registered"):
        register_dataset("imagefolder", len)


class _Squares(EvalDataset):
    adapter = "squares"
    format = "n solid squares"

    def __init__(self, root: str, split: str = "train", n: int = 3, **kw) -> None:
        super().__init__(
            root=root, split=split, items=range(n), targets=[i % 2 for i in range(n)],
            classes=["even", "odd"], **kw,
        )  # fmt: skip

    def load_image(self, item: int) -> Image.Image:
        return Image.new("RGB", (2, 2), (item, item, item))


def test_custom_adapter_gets_the_common_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "DATASETS", copy.deepcopy(load.DATASETS))  # "squares" stays here
    register_dataset("squares", _Squares)
    ds = load_dataset("squares", "nowhere", n=5, shots=1, seed=3)
    assert len(ds) == 2 and ds.label_histogram() == {"even": 1, "odd": 1}
    assert ds[0][0].getpixel((0, 0))[0] == ds.items[0]
    with pytest.raises(DataError, match="takes no option m"):
        load_dataset("squares", "nowhere", m=5)
