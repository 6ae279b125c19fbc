"""Tasks see their images as their protocol does: the whole CLEVR frame (VISSL's resize), and
task-level preprocessing that reaches the cache key and the record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as tv

import ijepa_eval as ie
from ijepa_eval.preprocess import Preprocess
from ijepa_eval.tasks import all_tasks
from ijepa_eval.tasks.pipeline import (
    ExtractOptions,
    extract_features,
    needed_blocks,
    prepare,
    run_job,
    task_encoder,
)

CLEVR_TASKS = [s.name for s in all_tasks() if s.dataset.adapter in ("clevr_count", "clevr_dist")]
EDGE = (255, 40, 40)  # the colour of the objects at the left and right edges


def _scene_image(index: int) -> Image.Image:
    """A 480×320 CLEVR-sized frame: grey floor, one object at each side edge, one in the middle."""
    pixels = np.full((320, 480, 3), 110 + index % 7, np.uint8)
    pixels[140:180, 4:40] = EDGE  # left edge: a centre crop cuts this out
    pixels[140:180, 440:476] = EDGE  # right edge
    pixels[150:170, 230 + index % 5 : 250 + index % 5] = (40, 40, 255)
    return Image.fromarray(pixels)


def _write_clevr(root: Path, split: str, count: int) -> None:
    (root / "images" / split).mkdir(parents=True)
    (root / "scenes").mkdir(exist_ok=True)
    scenes = []
    for i in range(count):
        name = f"CLEVR_{split}_{i:06d}.png"
        _scene_image(i).save(root / "images" / split / name)
        objects = [  # x of each object: both edges and the middle; 3 to 5 objects
            {"pixel_coords": [x, 160, 8.0 + 0.5 * ((i + k) % 5)], "shape": "cube"}
            for k, x in enumerate([20, 458, 240, 240, 240][: 3 + i % 3])
        ]
        scenes.append(
            {"image_index": i, "image_filename": name, "split": split, "objects": objects}
        )
    doc = {"info": {"split": split}, "scenes": scenes}
    (root / "scenes" / f"CLEVR_{split}_scenes.json").write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def clevr(tmp_path_factory) -> Path:
    """CLEVR_v1.0 layout with 1,000 train scenes (VTAB-1k draws from them) and 12 val."""
    root = tmp_path_factory.mktemp("clevr") / "CLEVR_v1.0"
    _write_clevr(root, "train", 1000)
    _write_clevr(root, "val", 12)
    return root


def test_a_centre_crop_cuts_the_edge_objects_the_whole_frame_keeps():
    image = _scene_image(0)
    red = lambda x: ((x[0] > 1.5) & (x[1] < -0.5)).any(dim=0)  # noqa: E731 - normalised red
    cropped = Preprocess(img_size=32).transform()(image)
    whole = Preprocess(img_size=32, resize="resize").transform()(image)
    assert not red(cropped).any()  # both edge objects are gone: the label no longer matches
    columns = red(whole).nonzero()[:, 0]
    assert columns.min() <= 2 and columns.max() >= 29  # at the left and the right edge


@pytest.mark.slow
@pytest.mark.parametrize("task", CLEVR_TASKS)
def test_clevr_features_are_the_whole_frame_resized(task, clevr, official_ckpt, tmp_path):
    """What the cache holds = the target encoder on torchvision ``Resize((S, S))`` of the whole
    frame (the official code's encoder: tests/test_models_parity.py shows ours equals it)."""
    assert len(CLEVR_TASKS) == 6
    encoder = ie.load_encoder(official_ckpt)
    job = prepare(task, data=str(clevr))
    assert job.preprocess == {"resize": "resize"}
    seen = task_encoder(encoder, job.preprocess)
    assert seen.info.preprocess["resize"] == "resize" and encoder.preprocess.resize == "crop"
    size = encoder.preprocess.img_size
    reference = tv.Compose(
        [
            tv.Resize((size, size)),
            tv.ToTensor(),
            tv.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    blocks = needed_blocks(job, seen)
    options = ExtractOptions(cache_dir=tmp_path, workers=0, progress=False, store_dtype="float32")
    mirror = Image.Transpose.FLIP_LEFT_RIGHT
    for label, ds, features, views, _ in extract_features(job, seen, options, blocks):
        rows = np.arange(0, len(ds), max(1, len(ds) // 8))  # a few images of each split
        images = torch.stack([reference(ds[int(i)][0]) for i in rows])
        with torch.no_grad():
            direct = torch.stack(encoder.forward_blocks(images, list(blocks)), dim=1)
        if job.probe.inputs == "tokens":
            cached = features.tokens()[rows]
            assert torch.allclose(cached.float(), direct, atol=2e-3, rtol=1e-3)
        else:
            cached = features.pooled()[torch.as_tensor(rows)]
            assert torch.allclose(cached.float(), direct.mean(dim=2), atol=2e-3, rtol=1e-3)
        if job.probe.inputs == "pooled" and label != "test":  # the flip view: the mirrored frame
            assert list(views) == [None, "hflip"]
            flipped = torch.stack([reference(ds[int(i)][0].transpose(mirror)) for i in rows])
            with torch.no_grad():
                direct = torch.stack(encoder.forward_blocks(flipped, list(blocks)), dim=1)
            cached = views["hflip"].pooled()[torch.as_tensor(rows)]
            assert torch.allclose(cached.float(), direct.mean(dim=2), atol=2e-3, rtol=1e-3)


def test_the_command_line_wins_over_the_task(clevr):
    assert prepare("clevr_count", data=str(clevr), preprocess={"resize": "crop"}).preprocess == {
        "resize": "crop"
    }
    with pytest.raises(ie.UserError, match="interpolation"):
        prepare("clevr_count", data=str(clevr), preprocess={"interpolation": "cubic"})


@pytest.mark.slow
def test_task_preprocessing_keys_the_cache_and_is_recorded(clevr, official_ckpt, tmp_path):
    encoder = ie.load_encoder(official_ckpt)
    options = ExtractOptions(cache_dir=tmp_path / "c", workers=0, progress=False)
    fast = {"lrs": [0.1], "weight_decays": [0.0], "heads": ["linear"], "min_steps": 5}
    keys = []
    for geometry, expected in (({}, "resize"), ({"resize": "crop"}, "crop")):
        job = prepare("clevr_count", data=str(clevr), params=fast, preprocess=geometry)
        run = run_job(job, encoder, extraction=options, results_dir=tmp_path / "r")
        keys.append({e["key"] for e in run.record.features["entries"]})
        assert run.record.model_info["preprocess"]["resize"] == expected
        assert run.record.task_version == 4
    assert not keys[0] & keys[1]  # another geometry, other cache entries


def test_linprobe_resizes_bicubically_as_vissls_vit_h_configs(tmp_path):
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / split / c / "0.png")
    for task, version in (("linprobe", 4), ("linprobe_attentive", 2)):
        job = prepare(task, data=str(tmp_path))
        assert job.preprocess == {"interpolation": "bicubic"} and job.spec.version == version
