"""The depth probe: metrics on hand-computed cases, the head, the task end to end, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ijepa_eval as ie
from ijepa_eval.data.depth import eigen_cropped
from ijepa_eval.data.synth import generate_clevr
from ijepa_eval.probes.common import ProbeError
from ijepa_eval.probes.depth import DepthConfig, DepthHead, depth_metrics, depth_probe, sig_loss
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


def test_eigen_crop():
    depth = np.ones((480, 640), np.float32)
    cropped = eigen_cropped(depth)
    assert cropped[45:471, 41:601].all() and cropped.sum() == 426 * 560
    with pytest.raises(ie.UserError, match="480x640"):
        eigen_cropped(np.ones((10, 10), np.float32))


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
