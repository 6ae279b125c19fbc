"""Inputs that used to give a silent wrong number: non-finite weights, 16-bit images decoded as
white, folder walks that loop through symbolic links."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval.cli import app
from ijepa_eval.data.base import as_rgb
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.errors import DataWarning

runner = CliRunner()


def _with_nan(official_ckpt: Path, dest: Path, count: int = 5) -> Path:
    checkpoint = torch.load(official_ckpt, map_location="cpu", weights_only=True)
    weight = checkpoint["target_encoder"]["module.blocks.0.mlp.fc1.weight"]
    weight.view(-1)[:count] = float("nan")
    torch.save(checkpoint, dest)
    return dest


def test_nan_weights_are_refused_at_load_naming_the_tensor(official_ckpt, tmp_path):
    bad = _with_nan(official_ckpt, tmp_path / "nan.pth.tar")
    with pytest.raises(ie.CheckpointError, match=r"blocks\.0\.mlp\.fc1\.weight: 5 NaN values"):
        ie.load_encoder(bad)
    ie.load_encoder(bad, which="encoder")  # the context encoder in the same file is intact
    data = generate_classes(tmp_path / "data", classes=2, per_class=3, size=16, progress=False)
    run = ["run", "--tasks", "knn", "--data", str(data), "--results", str(tmp_path)]
    for command in (["info"], run):
        result = runner.invoke(app, [*command, "--ckpt", str(bad)])
        assert result.exit_code == 1 and "Traceback" not in result.output
        (line,) = result.stderr.strip().splitlines()
        assert "non-finite weights" in line and "5 NaN values" in line
    assert not any((tmp_path / "runs").rglob("*.json"))  # no record


def test_infinite_weights_are_counted_apart(official_ckpt, tmp_path):
    checkpoint = torch.load(official_ckpt, map_location="cpu", weights_only=True)
    checkpoint["target_encoder"]["module.norm.bias"][:3] = torch.tensor(
        [float("nan"), float("inf"), float("-inf")]
    )
    torch.save(checkpoint, tmp_path / "inf.pth.tar")
    with pytest.raises(ie.CheckpointError, match=r"norm\.bias: 1 NaN and 2 infinite values"):
        ie.inspect_checkpoint(tmp_path / "inf.pth.tar")


def test_16_bit_grayscale_decodes_as_its_8_bit_version(tmp_path):
    gray8 = np.random.default_rng(0).integers(0, 256, (24, 24), dtype=np.uint8)
    Image.fromarray(gray8, "L").save(tmp_path / "g8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit PNG
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode in ("I;16", "I")  # what Pillow makes of a 16-bit grayscale PNG
        assert np.asarray(img.convert("RGB")).max() == 255  # Pillow alone: clipped, near white
    decoded = np.asarray(ie.data.base.open_image(tmp_path / "g16.png"))
    assert decoded.shape == (24, 24, 3)
    assert np.array_equal(decoded, np.asarray(ie.data.base.open_image(tmp_path / "g8.png")))
    floats = Image.fromarray(gray8.astype(np.float32) / 255.0, "F")
    assert np.array_equal(np.asarray(as_rgb(floats))[..., 0], gray8)


def test_16_bit_images_give_the_features_of_their_8_bit_versions(tmp_path, official_ckpt):
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        for i in range(3):
            gray = rng.integers(0, 256, (32, 32), dtype=np.uint8)
            for bits, pixels in ((8, gray), (16, gray.astype(np.uint16) * 257)):
                folder = tmp_path / f"d{bits}" / "train" / cls
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    enc = ie.load_encoder(official_ckpt)
    feats = [
        ie.extract(enc, ie.load_dataset("imagefolder", tmp_path / f"d{d}"), progress=False)
        for d in (8, 16)
    ]
    assert torch.equal(feats[0].pooled(), feats[1].pooled())


def test_symlink_loops_neither_hang_nor_pull_in_other_classes(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 90, 0, 0)).save(tmp_path / "train" / cls / f"{i}.png")
        os.symlink("..", tmp_path / "train" / cls / "loop")  # two loops, as the audit made
    os.symlink("self", tmp_path / "train" / "self")  # a link that loops onto itself (ELOOP)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ie.load_dataset("imagefolder", tmp_path, "train")
    assert sorted(ds.ids()) == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert ds.targets == [0, 0, 1, 1]
    assert sum(issubclass(w.category, DataWarning) for w in caught) == 2
    result = runner.invoke(app, ["data", "info", str(tmp_path)])
    assert result.exit_code == 0 and "Traceback" not in result.output
