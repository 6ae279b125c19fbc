"""The depth probe: metrics on hand-computed cases, the head, the task end to end, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ijepa_eval as ie
from ijepa_eval.data.synth import generate_clevr
from ijepa_eval.probes.common import ProbeError
from ijepa_eval.probes.depth import (
    EIGEN_CROP,
    DepthConfig,
    DepthHead,
    _score_per_image,
    depth_metrics,
    depth_probe,
    sig_loss,
)
from ijepa_eval.tasks import ExtractOptions, evaluate


def test_perfect_prediction():
    target = torch.rand(2, 5, 7) * 9 + 1
    m = depth_metrics(target.clone(), target, torch.ones_like(target, dtype=torch.bool))
    assert m["rmse"] == 0 and m["abs_rel"] == 0 and m["log10"] == 0
    assert m["delta1"] == m["delta2"] == m["delta3"] == 1


def test_known_scaling_and_masking():
    target = torch.full((1, 4, 4), 2.0)
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[0, 0, 0] = False  # an invalid pixel is ignored, whatever is predicted there
    pred = target * 1.1
    pred[0, 0, 0] = 1000.0
    m = depth_metrics(pred, target, valid)
    assert m["abs_rel"] == pytest.approx(0.1)
    assert m["rmse"] == pytest.approx(0.2)
    assert m["log10"] == pytest.approx(math.log10(1.1))
    assert m["delta1"] == 1.0  # 1.1 < 1.25
    m = depth_metrics(target * 1.3, target, valid)
    assert (m["delta1"], m["delta2"]) == (0.0, 1.0)  # 1.25 < 1.3 < 1.5625


def test_metrics_average_per_image():
    target = torch.ones(2, 2, 2)
    pred = torch.stack([torch.ones(2, 2), torch.full((2, 2), 3.0)])
    m = depth_metrics(pred, target, torch.ones_like(target, dtype=torch.bool))
    assert m["rmse"] == pytest.approx(1.0)  # (0 + 2) / 2, not sqrt of the pooled mean (1.414)


def test_sig_loss_is_scale_invariant_up_to_its_mean_term():
    target = torch.rand(3, 8, 8) + 1
    valid = torch.ones_like(target, dtype=torch.bool)
    assert sig_loss(target, target, valid) < 1e-5
    scaled = sig_loss(target * 2, target, valid)
    assert scaled == pytest.approx(math.sqrt(0.15) * math.log(2), rel=1e-3)


def test_head_shapes_and_bins():
    config = DepthConfig(n_bins=8, min_depth=1.0, max_depth=8.0, bins="log")
    head = DepthHead(in_dim=2 * 16, grid=(2, 3), config=config)
    assert torch.allclose(head.centres[[0, -1]], torch.tensor([1.0, 8.0]))
    out = head(torch.randn(4, 2, 6, 16), (10, 15))
    assert out.shape == (4, 10, 15)
    assert (out >= 1.0).all() and (out <= 8.0).all()  # a convex combination of bin centres
    with pytest.raises(ProbeError, match="expects a 2x3 token grid, got 4 tokens"):
        head(torch.randn(1, 2, 4, 16), (4, 4))


def test_probe_learns_depth_carried_by_tokens():
    """One token feature encodes the depth of its patch: the head must recover it."""
    g = torch.Generator().manual_seed(0)
    n, grid = 96, (4, 4)
    depth_patches = torch.rand(n, 16, generator=g) * 8 + 1  # metres per patch
    tokens = torch.randn(n, 1, 16, 8, generator=g) * 0.1
    tokens[:, 0, :, 0] = depth_patches  # the signal
    target = depth_patches.reshape(n, 1, 4, 4)
    target = torch.nn.functional.interpolate(target, size=(8, 8), mode="nearest")[:, 0]
    config = DepthConfig(
        lrs=(3e-2,), epochs=40, batch_size=32, min_depth=0.5, max_depth=10, n_bins=32
    )
    result = depth_probe(
        tokens[:64],
        target[:64],
        tokens[64:80],
        target[64:80],
        tokens[80:],
        target[80:],
        grid=grid,
        config=config,
    )
    assert result.test["abs_rel"] < 0.6 * result.baseline["abs_rel"]
    assert result.chosen["lr"] == 3e-2


def test_image_without_valid_depth_is_an_error():
    tokens = torch.randn(4, 1, 4, 8)
    depth = torch.ones(4, 4, 4)
    depth[2] = 0
    with pytest.raises(ProbeError, match="train image 2 has no valid depth pixels"):
        depth_probe(
            tokens, depth, tokens, torch.ones(4, 4, 4), tokens, torch.ones(4, 4, 4), grid=(2, 2)
        )


def test_every_metric_by_hand():
    pred = torch.tensor([[[1.0, 2.0], [4.0, 4.0]]])
    target = torch.tensor([[[1.0, 1.0], [2.0, 8.0]]])  # errors 0, +1, +2, -4; ratios 1, 2, 2, 2
    m = depth_metrics(pred, target, torch.ones_like(target, dtype=torch.bool))
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 4 + 16) / 4))
    assert m["abs_rel"] == pytest.approx((0 + 1 / 1 + 2 / 2 + 4 / 8) / 4)
    assert m["log10"] == pytest.approx(3 * math.log10(2) / 4)
    assert m["delta1"] == m["delta2"] == m["delta3"] == pytest.approx(0.25)  # 2 > 1.25**3


def test_the_head_is_dinov2s_linear_head():
    """DINOv2's BNHead (dinov2/hub/depthers.py: upsample 4, 'linear' norm, no BatchNorm):
    bilinear ×4 on the features, then the 1×1 conv, ReLU + 0.1, normalise, Σ p·bins, resize."""
    torch.manual_seed(0)
    config = DepthConfig(n_bins=16, min_depth=0.5, max_depth=9.0)
    head = DepthHead(in_dim=2 * 8, grid=(3, 4), config=config).eval()
    tokens = torch.randn(2, 2, 12, 8)
    maps = tokens.permute(0, 1, 3, 2).reshape(2, 16, 3, 4)
    up = F.interpolate(maps, size=(12, 16), mode="bilinear", align_corners=False)
    scores = torch.relu(F.conv2d(up, head.conv.weight, head.conv.bias)) + 0.1
    probs = scores / scores.sum(dim=1, keepdim=True)
    depth = torch.einsum("bkhw,k->bhw", probs, torch.linspace(0.5, 9.0, 16))
    expected = F.interpolate(depth[:, None], size=(30, 40), mode="bilinear", align_corners=False)
    assert torch.allclose(head(tokens, (30, 40)), expected[:, 0], atol=1e-5)
    assert isinstance(head.norm, torch.nn.Identity)  # BatchNorm is commented out in DINOv2's


def _nyu_frames(folder, n_train=4, n_test=2):
    """An NYU-format .mat of 480×640 frames (MATLAB v7.3 layout, as tests/test_data_depth.py)."""
    import h5py

    rng = np.random.default_rng(0)
    n = n_train + n_test
    images = rng.integers(0, 256, (n, 480, 640, 3), dtype=np.uint8)
    depths = rng.uniform(0.5, 9.0, (n, 480, 640)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)
        f["depths"] = depths.transpose(0, 2, 1)
    with h5py.File(folder / "splits.mat", "w") as f:
        f["trainNdxs"] = np.arange(1, n_train + 1, dtype=np.float64)[None]
        f["testNdxs"] = np.arange(n_train + 1, n + 1, dtype=np.float64)[None]
    return depths


def test_nyu_is_scored_on_the_eigen_crop_at_480x640(tmp_path):
    from ijepa_eval.tasks.pipeline import NativeMaps

    depths = _nyu_frames(tmp_path)
    test = NativeMaps(ie.load_dataset("nyu_depth_v2", tmp_path, "test"))
    top, bottom, left, right = EIGEN_CROP
    inside = torch.zeros(480, 640, dtype=torch.bool)
    inside[top:bottom, left:right] = True

    def truth_inside_only(maps, size):  # the ground truth in the crop, nonsense outside it
        assert size == (480, 640)
        return torch.where(inside, maps, maps * 3 + 1)

    eigen = _score_per_image(truth_inside_only, None, test, DepthConfig(eigen_crop=True))
    assert eigen["rmse"] == [0.0, 0.0] and eigen["delta1"] == [1.0, 1.0]
    whole = _score_per_image(truth_inside_only, None, test, DepthConfig())
    assert min(whole["rmse"]) > 1  # the border counts when the crop is not asked for
    train = ie.load_dataset("nyu_depth_v2", tmp_path, "train")
    border = train.load_target(train.items[0])
    assert border.shape == (480, 640) and np.array_equal(border, depths[0])  # never blanked


@pytest.mark.slow
def test_depth_nyu_end_to_end_at_full_resolution(tmp_path, official_ckpt):
    _nyu_frames(tmp_path / "nyu", n_train=10, n_test=2)
    result = evaluate(
        "depth_nyu",
        ckpt=official_ckpt,
        data=str(tmp_path / "nyu"),
        results_dir=tmp_path / "res",
        params={"epochs": 1, "lrs": [1e-2]},
        extraction=ExtractOptions(progress=False, workers=0),
    )
    record = result.record
    assert record["splits"]["test"] == 2 and record["task_version"] == 2
    assert record["model"]["preprocess"]["resize"] == "resize"  # the whole frame
    assert record["task_spec"]["probe"]["params"]["eigen_crop"] is True
    assert all(math.isfinite(v) for v in record["metrics"].values())


def test_depth_synth_task_end_to_end(tmp_path, official_ckpt):
    root = generate_clevr(tmp_path / "CLEVR_v1.0", train=40, val=12, size=32, progress=False)
    result = evaluate(
        "depth_synth",
        ckpt=official_ckpt,
        data=str(root / "depth"),
        results_dir=tmp_path / "res",
        params={"epochs": 2, "lrs": [1e-2]},
        extraction=ExtractOptions(progress=False, workers=0),
    )
    record = result.record
    assert set(record["metrics"]) == {"rmse", "abs_rel", "log10", "delta1", "delta2", "delta3"}
    assert record["higher_is_better"]["rmse"] is False and record["higher_is_better"]["delta1"]
    assert set(record["baselines"]["train_mean_depth_map"]) == set(record["metrics"])
    assert record["splits"] == {"fit": 36, "select": 4, "test": 12}
    assert record["features"]["entries"][0]["cache_hit"] is False
    assert (result.path.parent / record["head_weights"]).is_file()
    # a few test images with their ground truth and prediction, for `ijepa-eval report`
    examples = record["examples"]
    assert examples["split"] == "val" and examples["index"] == [0, 4, 7, 11]
    shown = np.load(result.path.parent / examples["file"])
    scores = np.load(result.path.parent / record["predictions"]["file"])
    assert sorted(shown.files) == examples["arrays"]
    val = ie.load_dataset("depth_folder", root / "depth", "val")
    for n, row in enumerate(examples["index"]):
        truth = val.load_target(val.items[row])
        assert shown[f"{n}/image"].shape == (32, 32, 3) and shown[f"{n}/image"].dtype == np.uint8
        assert np.array_equal(shown[f"{n}/image"], np.asarray(val.load_image(val.items[row])))
        target, pred = shown[f"{n}/target"], shown[f"{n}/prediction"]
        assert target.shape == pred.shape == truth.shape and np.isfinite(pred).all()
        scored = (truth > 1e-3) & (truth <= 60.0)
        assert np.array_equal(np.isnan(target), ~scored)
        assert np.allclose(target[scored], truth[scored], rtol=1e-3)  # float16
        rmse = np.sqrt(np.nanmean((pred.astype(float) - target.astype(float)) ** 2))
        assert rmse == pytest.approx(scores["rmse"][row], rel=1e-2)  # the map that was scored
    again = evaluate(
        "depth_synth",
        ckpt=official_ckpt,
        data=str(root / "depth"),
        results_dir=None,
        params={"epochs": 2, "lrs": [1e-2]},
        extraction=ExtractOptions(progress=False, workers=0),
    ).record
    assert all(e["cache_hit"] for e in again["features"]["entries"])
    assert again["metrics"] == record["metrics"]  # seeded: the same numbers again


def test_an_example_image_that_cannot_be_read_again_is_left_out_with_a_note():
    """Examples are never scored: an image gone since extraction costs the example its image,
    not the run."""
    import warnings

    from PIL import Image

    from ijepa_eval.tasks.pipeline import with_images

    class Gone:
        items = ["a.png", "b.png"]

        def load_image(self, item):
            if item == "b.png":
                raise OSError(f"cannot identify image file {item!r}")
            return Image.new("RGB", (4, 3), (255, 0, 0))

    examples = {"index": np.array([0, 1]), "0/target": np.zeros((3, 4))}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        out = with_images(examples, Gone())
    assert out["0/image"].shape == (3, 4, 3) and "1/image" not in out
    assert any("example 1 is kept without its image" in str(w.message) for w in said)
