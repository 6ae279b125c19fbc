"""synth-clevr writes CLEVR_v1.0 (+ depth maps) that the real adapters read, deterministically."""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data import load_dataset
from ijepa_eval.data.synth import generate_clevr
from ijepa_eval.data.synth.clevr import COLORS, SIZES, sample_scene
from ijepa_eval.errors import DataError

REACH = SIZES  # footprint radius by size name; cubes are shrunk by √2 so their corners fit too


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def scenes(root: Path, split: str) -> list[dict]:
    return json.loads((root / "scenes" / f"CLEVR_{split}_scenes.json").read_text())["scenes"]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 scenes, small pixels: enough for every label to show up (~18 s: its tests are slow)."""
    root = tmp_path_factory.mktemp("synth") / "CLEVR_v1.0"
    generate_clevr(root, train=1600, val=400, size=32, seed=0, workers=2, progress=False)
    return root


def test_layout_is_clevr_v1(tmp_path: Path) -> None:
    root = generate_clevr(tmp_path / "c", train=3, val=2, size=32, seed=5, progress=False)
    names = set(files(root))
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            name = f"CLEVR_{split}_{i:06d}.png"
            assert {f"images/{split}/{name}", f"depth/{split}/rgb/{name}"} <= names
            assert f"depth/{split}/depth/{name}" in names
        doc = json.loads((root / "scenes" / f"CLEVR_{split}_scenes.json").read_text())
        assert doc["info"]["seed"] == 5 and doc["info"]["size"] == 32
        assert [s["image_index"] for s in doc["scenes"]] == list(range(n))
        for s in doc["scenes"]:
            assert s["split"] == split
            assert s["image_filename"] == f"CLEVR_{split}_{s['image_index']:06d}.png"
            for o in s["objects"]:
                assert o["shape"] in ("cube", "sphere", "cylinder") and o["color"] in COLORS
                assert o["size"] in SIZES and o["material"] in ("rubber", "metal")
                x, y, z = o["3d_coords"]
                assert -3 <= x <= 3 and -3 <= y <= 3 and z > 0
                assert 0 <= o["rotation"] < 360
                px, py, depth = o["pixel_coords"]
                assert isinstance(px, int) and isinstance(py, int) and depth > 0
    image = Image.open(root / "images" / "train" / "CLEVR_train_000000.png")
    depth = Image.open(root / "depth" / "train" / "depth" / "CLEVR_train_000000.png")
    assert (image.mode, image.size, depth.mode, depth.size) == ("RGB", (32, 32), "I;16", (32, 32))


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    a = files(generate_clevr(tmp_path / "a", train=6, val=2, size=32, seed=1, progress=False))
    b = files(
        generate_clevr(tmp_path / "b", train=6, val=2, size=32, seed=1, workers=2, progress=False)
    )
    c = files(generate_clevr(tmp_path / "c", train=6, val=2, size=32, seed=2, progress=False))
    assert a == b
    assert a.keys() == c.keys()
    differ = [k for k in a if k.startswith("images/") and a[k] != c[k]]
    assert len(differ) == 8


def test_rerun_resumes_and_extends(tmp_path: Path) -> None:
    """Scenes depend on (seed, split, index) only: a rerun keeps files, a bigger run extends."""
    whole = files(generate_clevr(tmp_path / "whole", train=8, val=0, size=32, progress=False))
    root = tmp_path / "parts"
    generate_clevr(root, train=5, val=0, size=32, progress=False)
    kept = root / "images" / "train" / "CLEVR_train_000001.png"
    before = kept.stat().st_mtime_ns
    (root / "images" / "train" / "CLEVR_train_000003.png").unlink()  # an interrupted run
    generate_clevr(root, train=8, val=0, size=32, progress=False)
    assert kept.stat().st_mtime_ns == before
    assert files(root) == whole
    with pytest.raises(DataError, match="different generation"):
        generate_clevr(root, train=8, val=0, size=32, seed=9, progress=False)
    with pytest.raises(DataError, match="holds 2 image.* beyond what --train 6 asks for"):
        generate_clevr(root, train=6, val=0, size=32, progress=False)


@pytest.mark.slow
def test_adapters_see_every_count_and_distance_class(big: Path) -> None:
    counts = load_dataset("clevr_count", big, "train")
    dists = load_dataset("clevr_dist", big, "train")
    assert len(counts) == len(dists) == 1600
    assert len(load_dataset("clevr_count", big, "val")) == 400
    assert set(counts.targets) == set(range(8))
    assert set(dists.targets) == set(range(6))
    assert min(Counter(dists.targets).values()) >= 50  # every bin well populated
    assert len(load_dataset("clevr_dist", big, "train800")) == 800
    image, label = counts[0]
    assert image.size == (32, 32) and label == len(scenes(big, "train")[0]["objects"]) - 3
    depth_set = load_dataset("depth_folder", big / "depth", "val")
    assert len(depth_set) == 400 and depth_set[0][1].shape == (32, 32)


@pytest.mark.slow
def test_nearest_depths_span_clevr_range_and_objects_do_not_touch(big: Path) -> None:
    nearest = []
    for scene in scenes(big, "train") + scenes(big, "val"):
        objs = scene["objects"]
        nearest.append(min(o["pixel_coords"][2] for o in objs))
        for a, b in combinations(objs, 2):
            gap = np.hypot(*np.subtract(a["3d_coords"][:2], b["3d_coords"][:2]))
            assert gap >= REACH[a["size"]] + REACH[b["size"]] + 0.25 - 1e-5
    assert 6.5 < min(nearest) < 7.6 and 11.0 < max(nearest) < 13.5


def test_depth_maps_agree_with_pixel_coords(tmp_path: Path) -> None:
    """At each object's centre pixel, when the object is what that pixel sees, the depth map holds
    its front surface: nearer than the centre by at most the object's bounding radius."""
    size = 96
    root = generate_clevr(tmp_path / "c", train=30, val=0, size=size, seed=4, progress=False)
    depth_set = load_dataset("depth_folder", root / "depth", "train")
    checked = hidden = 0
    for index, scene in enumerate(scenes(root, "train")):
        _, depth_m = depth_set[index]
        ids = sample_scene(4, "train", index, size).hits.ids.reshape(size, size)
        assert (depth_m > 0).mean() > 0.8  # ground and objects carry depth
        for k, o in enumerate(scene["objects"]):
            px, py, centre = o["pixel_coords"]
            px, py = min(px, size - 1), min(py, size - 1)
            if ids[py, px] != k:
                hidden += 1
                continue
            bound = o["3d_coords"][2] * (np.sqrt(3) if o["shape"] == "cube" else np.sqrt(2))
            assert -0.01 <= centre - depth_m[py, px] <= bound + 0.01
            checked += 1
    assert checked > 150 and hidden < checked / 5


def test_cli_writes_and_reports_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["data", "synth-clevr", "--out", str(out), "--train", "3", "--val", "1"]
    result = runner.invoke(app, [*args, "--size", "32", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert len(scenes(out, "train")) == 3 and len(scenes(out, "val")) == 1
    api = generate_clevr(tmp_path / "api", train=3, val=1, size=32, seed=7, progress=False)
    assert files(out) == files(api)
    (tmp_path / "file").write_text("x")
    for bad, message in (
        (["--out", str(tmp_path / "new"), "--size", "8"], "--size 8 is too small"),
        (["--out", str(tmp_path / "new"), "--train", "-1"], "--train -1 is negative"),
        (["--out", str(tmp_path / "new"), "--seed", "-1"], "--seed -1 is negative"),
        (["--out", str(tmp_path / "new"), "--train", "0", "--val", "0"], "both 0"),
        (["--out", str(tmp_path / "file")], "is a file"),
        (["--out", str(out), "--size", "32", "--seed", "8"], "different generation"),
    ):
        result = runner.invoke(app, ["data", "synth-clevr", *bad])
        assert result.exit_code == 1 and message in result.output, result.output
