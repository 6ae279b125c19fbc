"""Monocular depth from frozen patch tokens: DINOv2's linear depth head (``BNHead``).

Tokens ``(B, L, T, D)`` (L blocks on a ``gh × gw`` grid) become a ``(B, L·D, gh, gw)`` map,
upsampled ×4 (bilinear) → 1×1 convolution to N depth bins (uniform or log-spaced centres) →
scores made non-negative and normalised (ReLU + 0.1, divided by their sum: DINOv2's "linear"
normalisation) → depth = Σ p_k · bin_k → bilinear resize to the ground truth's own size, where
it is scored (and, for NYU, only inside the Eigen crop). That is DINOv2's head as its
``dinov2/hub/depthers.py`` builds it, but for its class token (I-JEPA has none, so the input is
L·D channels, not 2·L·D); its BatchNorm is commented out there, and off here by default.
Trained with the scale-invariant log loss (SigLoss). Several configurations train in one pass
over memory-mapped tokens; the one with the lowest validation RMSE is chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ijepa_eval.probes.base import EXAMPLE_SIDE, Probe, ProbeInputs, ProbeResult
from ijepa_eval.probes.common import (
    ProbeError,
    is_finite,
    leave_out_diverged,
    resolve_device,
    select_on_val,
)

DEPTH_METRICS = {  # name → higher is better
    "rmse": False,
    "abs_rel": False,
    "log10": False,
    "delta1": True,
    "delta2": True,
    "delta3": True,
}


@dataclass(frozen=True)
class DepthConfig:
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2)
    weight_decay: float = 1e-4
    batchnorm: bool = False  # DINOv2's BNHead has it commented out
    upsample: int = 4  # the token grid ×4 before the bins, as DINOv2's linear head
    eigen_crop: bool = False  # score NYU's 480×640 frames only on rows 45:471, columns 41:601
    n_bins: int = 256
    bins: str = "uniform"  # or "log"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    epochs: int = 10
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.bins not in ("uniform", "log"):
            raise ProbeError(f"bins must be 'uniform' or 'log', not {self.bins!r}")
        if not 0 < self.min_depth < self.max_depth:
            raise ProbeError(
                f"need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}"
            )
        object.__setattr__(self, "lrs", tuple(self.lrs))
        if not self.lrs or min(self.lrs) <= 0 or self.n_bins < 2 or self.batch_size < 1:
            raise ProbeError("lrs must be positive, n_bins >= 2 and batch_size >= 1")
        if self.epochs < 1:
            raise ProbeError(f"epochs must be >= 1, got {self.epochs}")
        if self.weight_decay < 0:
            raise ProbeError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.upsample < 1:
            raise ProbeError(f"upsample must be >= 1, got {self.upsample}")


class DepthHead(nn.Module):
    def __init__(self, in_dim: int, grid: tuple[int, int], config: DepthConfig) -> None:
        super().__init__()
        self.grid = grid
        self.upsample = config.upsample
        self.norm = nn.BatchNorm2d(in_dim) if config.batchnorm else nn.Identity()
        self.conv = nn.Conv2d(in_dim, config.n_bins, kernel_size=1)
        lo, hi = config.min_depth, config.max_depth
        centres = (
            torch.linspace(lo, hi, config.n_bins)
            if config.bins == "uniform"
            else torch.exp(torch.linspace(math.log(lo), math.log(hi), config.n_bins))
        )
        self.register_buffer("centres", centres)

    def forward(self, tokens: Tensor, size: tuple[int, int]) -> Tensor:
        """``(B, L, T, D)`` tokens → ``(B, H, W)`` depth at ``size``."""
        b, layers, t, d = tokens.shape
        gh, gw = self.grid
        if t != gh * gw:
            raise ProbeError(f"the head expects a {gh}x{gw} token grid, got {t} tokens")
        maps = tokens.permute(0, 1, 3, 2).reshape(b, layers * d, gh, gw)
        # DINOv2 upsamples the features, then applies the 1×1 conv; both are linear (bilinear
        # weights sum to 1, so the bias commutes too): upsampling the N bin logits instead gives
        # the same numbers at a fraction of the memory (N = 256 channels, not L·D = 5,120).
        logits = self.conv(self.norm(maps))
        if self.upsample > 1:
            up = (gh * self.upsample, gw * self.upsample)
            logits = F.interpolate(logits, size=up, mode="bilinear", align_corners=False)
        scores = F.relu(logits) + 0.1
        probs = scores / scores.sum(dim=1, keepdim=True)
        depth = torch.einsum("bkhw,k->bhw", probs, self.centres)
        return F.interpolate(depth[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def sig_loss(pred: Tensor, target: Tensor, valid: Tensor, variance_focus: float = 0.15) -> Tensor:
    """Scale-invariant log loss (Eigen et al.; DINOv2's SigLoss) over valid pixels."""
    g = torch.log(pred[valid].clamp_min(1e-6)) - torch.log(target[valid])
    if g.numel() < 2:
        return pred.sum() * 0.0
    return torch.sqrt(g.var() + variance_focus * g.mean() ** 2 + 1e-12)


def per_image_metrics(pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, list[float]]:
    """Each metric of each image over its valid pixels."""
    per_image: dict[str, list[float]] = {name: [] for name in DEPTH_METRICS}
    for p, g, m in zip(pred, target, valid, strict=True):
        if not m.any():
            raise ProbeError("an image has no valid depth pixels; it cannot be scored")
        p, g = p[m].double().clamp_min(1e-6), g[m].double()
        ratio = torch.maximum(p / g, g / p)
        per_image["rmse"].append(float(torch.sqrt(((p - g) ** 2).mean())))
        per_image["abs_rel"].append(float(((p - g).abs() / g).mean()))
        per_image["log10"].append(float((torch.log10(p) - torch.log10(g)).abs().mean()))
        for k in (1, 2, 3):
            per_image[f"delta{k}"].append(float((ratio < 1.25**k).double().mean()))
    return per_image


def depth_metrics(pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, float]:
    """Each metric per image over its valid pixels, then averaged over images."""
    return {k: float(np.mean(v)) for k, v in per_image_metrics(pred, target, valid).items()}


@dataclass
class DepthProbeResult:
    rows: list[dict[str, Any]]
    chosen: dict[str, Any]
    head: DepthHead = field(repr=False)
    test: dict[str, float]
    baseline: dict[str, float]  # the training set's mean depth map, scored the same way
    test_per_image: dict[str, list[float]] = field(default_factory=dict, repr=False)
    examples: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # `depth_examples`


def valid_mask(depth: Tensor, config: DepthConfig) -> Tensor:
    """Pixels with a measurement in range: what training learns from."""
    return (depth > config.min_depth) & (depth <= config.max_depth)


EIGEN_CROP = (45, 471, 41, 601)  # rows, then columns, of NYU's 480×640 frames (Eigen et al.)


def scored_mask(depth: Tensor, config: DepthConfig) -> Tensor:
    """Pixels that are scored: valid ones, inside the Eigen crop when it is asked for.

    On 480×640 maps the crop is exact; a map of another size (a held-out part of the training
    set, at the encoder's resolution) gets the same region in proportion.
    """
    mask = valid_mask(depth, config)
    if not config.eigen_crop:
        return mask
    h, w = depth.shape[-2:]
    top, bottom, left, right = EIGEN_CROP
    box = torch.zeros((h, w), dtype=torch.bool, device=depth.device)
    box[
        round(top * h / 480) : round(bottom * h / 480),
        round(left * w / 640) : round(right * w / 640),
    ] = True
    return mask & box


def depth_probe(
    train_tokens: Any,
    train_depth: Tensor,
    val_tokens: Any,
    val_depth: Tensor,
    test_tokens: Any,
    test_depth: Tensor,
    *,
    grid: tuple[int, int],
    config: DepthConfig = DepthConfig(),
    device: str | torch.device | None = None,
) -> DepthProbeResult:
    """Train one head per lr on ``train``, choose by validation RMSE, score it once on ``test``.

    Token arguments are indexable by an int64 numpy array of rows, returning ``(B, L, T, D)``
    (a memory-mapped `TokenArray`): only one mini-batch of tokens is in memory at a time.
    """
    for name, depth in (("train", train_depth), ("val", val_depth), ("test", test_depth)):
        mask = valid_mask if name == "train" else scored_mask
        where = "" if name == "train" or not config.eigen_crop else " inside the Eigen crop"
        for rows in _chunks(len(depth)):
            for positions, maps in _same_size(depth[rows]):
                empty = ~mask(maps, config).flatten(1).any(dim=1)
                if empty.any():
                    first = int(rows[positions[int(empty.nonzero()[0])]])
                    raise ProbeError(
                        f"{name} image {first} has no valid depth pixels{where} (0 = missing)"
                    )
    dev = resolve_device(device)
    heads = _train(train_tokens, train_depth, grid=grid, config=config, device=dev)
    rows = []
    for lr, head in zip(config.lrs, heads, strict=True):
        scores = _score(_on(head, dev), val_tokens, val_depth, config)
        rows.append({"lr": lr, **{f"val_{k}": v for k, v in scores.items()}})
    leave_out_diverged(rows, [is_finite(h.parameters()) for h in heads], "depth")
    best = select_on_val(rows, metric="val_rmse", lower_is_better=True)
    head = heads[best]
    mean_map = _mean_depth_map(train_depth, config)
    baseline = _score(
        lambda x, size: _resized(mean_map, size).expand(len(x), *size), None, test_depth, config
    )
    per_image = _score_per_image(_on(head, dev), test_tokens, test_depth, config)
    return DepthProbeResult(
        rows=rows,
        chosen=rows[best],
        head=head.cpu(),
        test={name: float(np.mean(values)) for name, values in per_image.items()},
        baseline=baseline,
        test_per_image=per_image,
        examples=depth_examples(_on(head, dev), test_tokens, test_depth, config),
    )


EXAMPLES = 4  # test images whose maps the record keeps, for the report to show


@torch.no_grad()
def depth_examples(
    predict, tokens: Any, depth: Any, config: DepthConfig, count: int = EXAMPLES
) -> dict[str, np.ndarray]:
    """``count`` test images spread evenly over the split: ``index`` (their rows), and per image
    ``<n>/target`` (unscored pixels NaN) and ``<n>/prediction``, as scored, every s-th pixel so
    that the long side is at most `EXAMPLE_SIDE` (float16: a few hundred KB for NYU's maps)."""
    rows = np.unique(np.linspace(0, len(depth) - 1, min(count, len(depth))).round().astype(int))
    x = _rows(tokens, rows)
    out = {"index": rows.astype(np.int64)}
    for positions, maps in _same_size(depth[rows]):
        pred = predict(x[positions], tuple(maps.shape[-2:]))
        target = torch.where(scored_mask(maps, config), maps, torch.nan)
        step = math.ceil(max(maps.shape[-2:]) / EXAMPLE_SIDE)
        for n, p, t in zip(positions, pred, target, strict=True):
            out[f"{n}/target"] = t[::step, ::step].half().numpy()
            out[f"{n}/prediction"] = p[::step, ::step].half().numpy()
    return out


def _train(
    tokens: Any, depth: Tensor, *, grid: tuple[int, int], config: DepthConfig, device: torch.device
) -> list[DepthHead]:
    first = _rows(tokens, np.arange(1))
    in_dim = first.shape[1] * first.shape[3]
    torch.manual_seed(config.seed)
    heads = [DepthHead(in_dim, grid, config).to(device) for _ in config.lrs]
    params = [{"params": h.parameters(), "lr": lr} for h, lr in zip(heads, config.lrs, strict=True)]
    optimizer = torch.optim.AdamW(params, weight_decay=config.weight_decay)
    n = len(depth)
    batch = min(config.batch_size, n)
    steps = max(1, config.epochs * math.ceil(n / batch))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    rng = np.random.default_rng(config.seed)
    order = np.empty(0, dtype=np.int64)
    for head in heads:
        head.train()
    for _ in range(steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(n)])
        rows, order = np.sort(order[:batch]), order[batch:]
        x = _rows(tokens, rows).to(device)  # read once, used by every head
        target = depth[rows].to(device)
        valid = valid_mask(target, config)
        loss = sum(sig_loss(h(x, target.shape[-2:]), target, valid) for h in heads)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return [h.eval() for h in heads]


def _score(predict, tokens: Any, depth: Any, config: DepthConfig) -> dict[str, float]:
    """Metrics of ``predict(tokens, size)`` against ``depth``, averaged over images."""
    per_image = _score_per_image(predict, tokens, depth, config)
    return {name: float(np.mean(values)) for name, values in per_image.items()}


@torch.no_grad()
def _score_per_image(predict, tokens: Any, depth: Any, config: DepthConfig) -> dict[str, list]:
    """Each metric of each image, at the ground truth's own size, a chunk at a time.

    ``depth[rows]`` is a ``(B, H, W)`` tensor, or a list of maps that may differ in size (the
    test split at its native resolution); each prediction is resized to its map's size.
    """
    per_image: dict[str, list[float]] = {name: [] for name in DEPTH_METRICS}
    for rows in _chunks(len(depth), 32):
        x = _rows(tokens, rows) if tokens is not None else None
        chunk: dict[str, list[float]] = {name: [0.0] * len(rows) for name in DEPTH_METRICS}
        for positions, maps in _same_size(depth[rows]):
            pred = predict(maps if x is None else x[positions], tuple(maps.shape[-2:]))
            scores = per_image_metrics(pred, maps, scored_mask(maps, config))
            for name, values in scores.items():
                for position, value in zip(positions, values, strict=True):
                    chunk[name][position] = value
        for name in DEPTH_METRICS:
            per_image[name] += chunk[name]
    return per_image


def _same_size(maps: Tensor | list[Tensor]) -> list[tuple[np.ndarray, Tensor]]:
    """``(positions, stacked maps)`` per map size: one group for a tensor."""
    if isinstance(maps, Tensor):
        return [(np.arange(len(maps)), maps)]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, m in enumerate(maps):
        groups.setdefault(tuple(m.shape), []).append(i)
    return [(np.array(ix), torch.stack([maps[i] for i in ix])) for ix in groups.values()]


def _resized(mean_map: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(mean_map.shape) == tuple(size):
        return mean_map
    up = F.interpolate(mean_map[None, None], size=size, mode="bilinear", align_corners=False)
    return up[0, 0]


def _mean_depth_map(depth: Any, config: DepthConfig) -> Tensor:
    """Per pixel, the mean valid training depth (the global mean where a pixel never is)."""
    total = count = None
    for rows in _chunks(len(depth)):
        target = depth[rows]
        valid = valid_mask(target, config)
        part = torch.where(valid, target, 0.0).sum(dim=0)
        total = part if total is None else total + part
        count = valid.sum(dim=0) if count is None else count + valid.sum(dim=0)
    overall = total.sum() / count.sum()
    return torch.where(count > 0, total / count.clamp_min(1), overall)


def _on(head: DepthHead, device: torch.device):
    return lambda x, size: head(x.to(device), size).cpu()


def _chunks(n: int, size: int = 256) -> list[np.ndarray]:
    return [np.arange(start, min(start + size, n)) for start in range(0, n, size)]


def _rows(tokens: Any, rows: np.ndarray) -> Tensor:
    x = tokens[rows]
    x = torch.as_tensor(x) if not isinstance(x, Tensor) else x
    return x.float()


class DepthProbe(Probe):
    """A linear bin head per learning rate on patch tokens, chosen by validation RMSE."""

    name = "depth"
    reports = tuple(DEPTH_METRICS)
    Config = DepthConfig
    inputs = "tokens"
    targets = "depth"
    sweepable = False  # it reads every block its representation names (linear4: four)

    def run(self, inputs: ProbeInputs, config: DepthConfig, device: str | None) -> ProbeResult:
        if inputs.select is None:
            raise ProbeError("the depth probe needs a selection split to choose its lr")
        fit, select, test = inputs.fit, inputs.select, inputs.test
        result = depth_probe(
            fit.x, fit.y, select.x, select.y, test.x, test.y,
            grid=inputs.grid, config=config, device=device,
        )  # fmt: skip
        return ProbeResult(
            metrics=result.test,
            chosen={**result.chosen, "representation": inputs.representations[0]},
            grid=result.rows,
            baselines={"train_mean_depth_map": result.baseline},
            predictions={k: np.asarray(v, np.float32) for k, v in result.test_per_image.items()},
            examples=result.examples,
            artifacts=result.head.state_dict(),
            splits={"fit": len(fit), "select": len(select), "test": len(test)},
            seeds={"probe": config.seed},
        )
