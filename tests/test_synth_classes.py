"""synth-classes writes an ImageFolder of K procedural classes, deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data import load_dataset
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.data.synth.classes import MAX_CLASSES, class_names
from ijepa_eval.errors import DataError


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_layout_counts_and_imagefolder_loading(tmp_path: Path) -> None:
    root = generate_classes(
        tmp_path / "c", classes=7, per_class=4, val_per_class=2, size=24, progress=False
    )
    names = sorted(p.name for p in (root / "train").iterdir())
    assert names == class_names(7) and names[0] == "class_00_disc_solid_warm"
    assert sorted(p.name for p in (root / "val").iterdir()) == names
    for name in names:
        assert len(list((root / "train" / name).glob("*.png"))) == 4
        assert len(list((root / "val" / name).glob("*.png"))) == 2
    train = load_dataset("imagefolder", root, "train")
    assert len(train) == 28 and train.num_classes == 7
    assert sorted(set(train.targets)) == list(range(7))
    image, label = train[5]
    assert image.size == (24, 24) and label == 1  # sorted folder name = class index
    assert len(load_dataset("imagefolder", root, "val")) == 14


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    def make(name: str, seed: int, workers: int | None = None) -> dict[str, bytes]:
        out = tmp_path / name
        kw = {"classes": 3, "per_class": 3, "size": 32, "workers": workers, "progress": False}
        return files(generate_classes(out, seed=seed, **kw))

    a, b, c = make("a", 0), make("b", 0, workers=2), make("c", 1)
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".png"))


def test_classes_differ_in_their_statistics(tmp_path: Path) -> None:
    """A class is a shape × texture × palette: e.g. warm-palette classes have redder shapes."""
    root = generate_classes(
        tmp_path / "c", classes=MAX_CLASSES, per_class=3, val_per_class=1, size=24, progress=False
    )
    names = class_names(MAX_CLASSES)
    assert len(set(names)) == MAX_CLASSES and names == sorted(names)

    def mean_rgb(palette: str) -> np.ndarray:
        imgs = [
            np.asarray(Image.open(p), dtype=float)
            for n in names
            if n.endswith(palette)
            for p in (root / "train" / n).glob("*.png")
        ]
        return np.mean(imgs, axis=(0, 1, 2))

    warm, cool = mean_rgb("warm"), mean_rgb("cool")
    assert warm[0] - warm[2] > cool[0] - cool[2] + 10


def test_rerun_resumes(tmp_path: Path) -> None:
    root = generate_classes(tmp_path / "c", classes=2, per_class=3, size=16, progress=False)
    first = files(root)
    victim = root / "train" / class_names(2)[1] / "img_00002.png"
    victim.unlink()
    generate_classes(root, classes=2, per_class=3, size=16, progress=False)
    assert files(root) == first
    with pytest.raises(DataError, match="different generation"):
        generate_classes(root, classes=3, per_class=3, size=16, progress=False)
    with pytest.raises(DataError, match="beyond what --per-class 2 asks for"):
        generate_classes(root, classes=2, per_class=2, val_per_class=1, size=16, progress=False)


def test_cli_and_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        ["data", "synth-classes", "--out", str(out), "--classes", "3", "--per-class", "2"]
        + ["--size", "16", "--seed", "3", "--val-per-class", "1"],
    )
    assert result.exit_code == 0, result.output
    api = generate_classes(
        tmp_path / "api", classes=3, per_class=2, size=16, seed=3, val_per_class=1, progress=False
    )
    assert files(out) == files(api)
    for bad, message in (
        (["--classes", "1"], "--classes 1 is out of range"),
        (["--per-class", "0"], "--per-class 0"),
        (["--size", "15"], "--size 15 is too small"),
        (["--val-per-class", "-2"], "--val-per-class -2 is negative"),
    ):
        result = runner.invoke(app, ["data", "synth-classes", "--out", str(tmp_path / "x"), *bad])
        assert result.exit_code == 1 and message in result.output, result.output
