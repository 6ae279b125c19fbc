"""V-JEPA's attentive probe on frozen patch tokens, a small lr x weight-decay grid in one pass.

The head is V-JEPA's `AttentiveClassifier` (evals/image_classification_frozen): one learned
query token cross-attends over the patch tokens (heads = the encoder's heads), a residual MLP
block refines it (LayerNorm + MLP, as in its `AttentivePooler` with depth 1), and a linear layer
classifies it. Unlike mean pooling it can pick out the few tokens that matter (one object among
many), which is why JEPA encoders are evaluated with it today.

It trains on cached tokens, which for a real dataset do not fit in memory: the token sources are
anything indexable by an int64 numpy array that returns an (n, T, D) tensor — a `TokenRows` view
of a memory-mapped `TokenArray`, or a plain tensor — and are read one mini-batch of rows at a
time. As in the linear grid, every (lr, weight decay) configuration trains side by side: each
batch is read once and fed to all G probes, which start from the same seeded initialisation, so
`fit_attentive` on the same data reproduces a grid member.

Initialisation and optimiser follow V-JEPA (`src/models/attentive_pooler.py`,
`evals/image_classification_frozen/eval.py`): truncated-normal(0.02) linear weights, zero biases,
then `_rescale_blocks` divides the block's two residual output projections (cross-attention `proj`
and MLP `fc2`) by sqrt(2); the classifier keeps PyTorch's default init. AdamW with V-JEPA's
parameter groups — weight decay on every parameter that is neither a bias nor 1-D, so the
weight matrices *and the query token* decay, biases and LayerNorm weights do not — a cosine
learning-rate schedule to 0 and a cosine weight-decay schedule from the configured value to
1e-6 (V-JEPA's `CosineWDSchedule` with `init_opt`'s default `final_wd`).
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ijepa_eval.probes.base import (
    CLASSIFICATION_METRICS,
    Probe,
    ProbeInputs,
    ProbeResult,
    classification_predictions,
)
from ijepa_eval.probes.common import (
    ProbeError,
    as_labels,
    is_finite,
    leave_out_diverged,
    require_sound,
    resolve_device,
    select_on_val,
)
from ijepa_eval.probes.linear import batch_order
from ijepa_eval.probes.metrics import ClassificationMeter


class Tokens(Protocol):
    """Patch tokens (N, T, D) read by rows: ``tokens[int64 array]`` -> (n, T, D) tensor."""

    shape: Sequence[int]

    def __getitem__(self, rows: np.ndarray) -> Tensor: ...


@dataclass(frozen=True)
class AttentiveConfig:
    """The lr x weight-decay grid and its schedule.

    Training runs max(epochs x N / batch, min_steps) steps (as `LinearGridConfig`). V-JEPA's
    frozen image configs (`configs/evals/vith16_{in1k,inat,places}.yaml`) train one setting:
    lr 1e-3, weight decay 0.001 (0.01 in its video configs), 20 epochs, 16 images x 64 GPUs per
    batch. We keep its lr and epochs inside a small grid, with weight decays 0.01 and 0.1, and
    batch 256; learning rates are absolute (AdamW), not scaled by the batch size.
    `final_weight_decay` is where V-JEPA's cosine weight-decay schedule ends (capped at each
    configuration's own decay, so 0 stays 0).
    """

    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3)
    weight_decays: tuple[float, ...] = (0.01, 0.1)
    epochs: int = 20
    min_steps: int = 300
    batch_size: int = 256
    mlp_ratio: float = 4.0
    final_weight_decay: float = 1e-6
    seed: int = 0
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        for name in ("lrs", "weight_decays"):  # lists from YAML become tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.lrs or min(self.lrs) <= 0:
            raise ProbeError(f"lrs must be positive and non-empty, got {self.lrs}")
        if not self.weight_decays or min(self.weight_decays) < 0:
            raise ProbeError(f"weight_decays must be >= 0 and non-empty, got {self.weight_decays}")
        if self.epochs < 0 or self.min_steps < 0 or self.epochs + self.min_steps == 0:
            raise ProbeError("epochs and min_steps must be >= 0, and not both 0")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ProbeError("batch sizes must be >= 1")
        if self.mlp_ratio <= 0:
            raise ProbeError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if self.final_weight_decay < 0:
            raise ProbeError(f"final_weight_decay must be >= 0, got {self.final_weight_decay}")

    @property
    def combos(self) -> list[tuple[float, float]]:
        return [(lr, wd) for lr in self.lrs for wd in self.weight_decays]

    def batch(self, n: int) -> int:
        return min(self.batch_size, n)

    def steps(self, n: int) -> int:
        return max(math.ceil(self.epochs * n / self.batch(n)), self.min_steps)


class AttentivePooler(nn.Module):
    """One learned query cross-attends over the tokens, then a residual MLP (V-JEPA, depth 1)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ProbeError(f"{num_heads} attention heads do not divide the token width {dim}")
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.query, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # V-JEPA's _rescale_blocks for its one cross-attention block (layer_id 1): both residual
        # branches' output projections, xattn.proj and mlp.fc2, divided by sqrt(2 * 1).
        with torch.no_grad():
            self.proj.weight.div_(math.sqrt(2.0))
            self.mlp[2].weight.div_(math.sqrt(2.0))

    def forward(self, x: Tensor) -> Tensor:
        """Tokens (B, T, D) -> one pooled vector per image (B, D)."""
        b, t, d = x.shape
        h = self.num_heads
        q = self.q(self.query.expand(b, -1, -1)).view(b, 1, h, d // h).transpose(1, 2)
        k, v = self.kv(self.norm1(x)).view(b, t, 2, h, d // h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, d)
        z = self.query + self.proj(y)
        z = z + self.mlp(self.norm2(z))
        return z[:, 0]


class AttentiveClassifier(nn.Module):
    """The attentive pooler and a linear classifier; remembers the token grid it was fit on."""

    def __init__(
        self, dim: int, num_heads: int, num_classes: int, num_tokens: int, mlp_ratio: float = 4.0
    ):
        super().__init__()
        self.pooler = AttentivePooler(dim, num_heads, mlp_ratio)
        self.linear = nn.Linear(dim, num_classes)
        # A buffer so it travels with the saved weights: the head is tied to one token grid.
        self.register_buffer("num_tokens", torch.tensor(num_tokens))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.pooler(x))

    def check(self, tokens: Tokens, name: str = "tokens") -> None:
        """Refuse tokens of another grid or width (e.g. cached as grid:2x2, fit on all)."""
        t, d = tuple(tokens.shape[-2:])
        want = (int(self.num_tokens), self.linear.in_features)
        if (t, d) != want:
            raise ProbeError(
                f"{name} hold {t} tokens of width {d}; this attentive head was fit on {want[0]} "
                f"tokens of width {want[1]}: extract the same blocks with --tokens all"
            )

    @torch.no_grad()
    def scores(self, tokens: Tokens, *, batch_size: int = 256) -> Tensor:
        """Logits (N, C) on the CPU, in eval mode, reading `batch_size` rows at a time."""
        self.check(tokens)
        self.eval()
        dev = self.linear.weight.device
        return torch.cat(
            [self(tokens[rows].to(dev).float()).cpu() for rows in _chunks(len(tokens), batch_size)]
        )

    def predict(self, tokens: Tokens) -> Tensor:
        return self.scores(tokens).argmax(dim=1)


class TokenRows:
    """Some rows of an array (and one block of a TokenArray), read lazily: no copy.

    ``TokenRows(feats.tokens())`` turns the (N, L, T, D) array of a one-block FeatureSet into
    (N, T, D); ``TokenRows(source, rows)`` is the held-out part of train, for instance;
    ``block=None`` keeps every dimension (the depth probe's (N, L, T, D) tokens and maps).
    """

    def __init__(self, source, rows: np.ndarray | None = None, *, block: int | None = 0):
        self.source = source
        self.block = block if len(source.shape) == 4 else None
        full = np.arange(source.shape[0])
        self.rows = full if rows is None else full[np.asarray(rows, dtype=np.int64)]
        kept = tuple(source.shape)[-2:] if self.block is not None else tuple(source.shape)[1:]
        self.shape = (len(self.rows), *kept)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: np.ndarray) -> Tensor:
        x = self.source[self.rows[np.asarray(index, dtype=np.int64)]]
        return x if self.block is None else x[:, self.block]


class ConcatTokens:
    """Token sources one after the other (train then val, for the final refit), read lazily."""

    def __init__(self, *parts: Tokens):
        if len({tuple(p.shape[1:]) for p in parts}) != 1:
            raise ProbeError(f"cannot join tokens of shapes {[tuple(p.shape) for p in parts]}")
        self.parts = parts
        self.starts = np.cumsum([0] + [p.shape[0] for p in parts])
        self.shape = (int(self.starts[-1]), *tuple(parts[0].shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: np.ndarray) -> Tensor:
        index = np.asarray(index, dtype=np.int64)
        part_of = np.searchsorted(self.starts, index, side="right") - 1
        out = None
        for p in np.unique(part_of):
            mask = part_of == p
            x = self.parts[p][index[mask] - self.starts[p]]
            out = x.new_empty((len(index), *x.shape[1:])) if out is None else out
            out[torch.from_numpy(mask)] = x
        return out


def _chunks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def _check(tokens: Tokens, labels, *, num_classes: int, name: str, train: bool) -> Tensor:
    shape = tuple(tokens.shape)
    if len(shape) != 3:
        raise ProbeError(f"{name} tokens must be (N, T, D), got shape {shape}")
    y = as_labels(labels)
    if shape[0] == 0:
        raise ProbeError(f"{name} set is empty: no tokens to fit or evaluate on")
    if shape[0] != y.shape[0]:
        raise ProbeError(f"{name} has {shape[0]} token rows but {y.shape[0]} labels")
    if num_classes < 2:
        raise ProbeError(f"num_classes is {num_classes}; a classification probe needs >= 2")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ProbeError(f"{name} labels fall outside [0, {num_classes - 1}]")
    if train and y.unique().numel() < 2:
        raise ProbeError(f"{name} labels hold a single class; a classifier needs at least two")
    return y


def _same_grid(reference: Tokens, other: Tokens, name: str) -> None:
    if tuple(other.shape[1:]) != tuple(reference.shape[1:]):
        t, d = tuple(reference.shape[1:])
        raise ProbeError(
            f"{name} tokens are {tuple(other.shape[1:])} (tokens, width) but train tokens are "
            f"({t}, {d}): every split must be cached with the same blocks and --tokens"
        )


def _initial(config: AttentiveConfig, shape: tuple[int, int], heads: int, classes: int):
    """The seeded starting head shared by every grid member (independent of the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        t, d = shape
        return AttentiveClassifier(d, heads, classes, t, config.mlp_ratio)


def decays(name: str, param: Tensor) -> bool:
    """V-JEPA's `init_opt` rule: decay unless the name holds 'bias' or the tensor is 1-D.

    So the weight matrices and the (1, 1, D) query token decay; biases and LayerNorm weights
    do not.
    """
    return "bias" not in name and param.ndim != 1


def _param_groups(probe: nn.Module, lr: float, wd: float) -> list[dict]:
    """V-JEPA's two groups; `base_wd` is where the decayed group's cosine schedule starts."""
    named = list(probe.named_parameters())
    decay = [p for n, p in named if decays(n, p)]
    rest = [p for n, p in named if not decays(n, p)]
    return [
        {"params": decay, "lr": lr, "base_lr": lr, "weight_decay": wd, "base_wd": wd},
        {"params": rest, "lr": lr, "base_lr": lr, "weight_decay": 0.0, "base_wd": 0.0},
    ]


def cosine(start: float, end: float, t: int, steps: int) -> float:
    """The value at step t of a cosine from `start` (t = 0) towards `end` (t = steps)."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * t / steps))


def _train(
    tokens: Tokens,
    y: Tensor,
    *,
    num_classes: int,
    num_heads: int,
    config: AttentiveConfig,
    device: torch.device,
    progress: bool,
) -> list[AttentiveClassifier]:
    """Train one probe per (lr, wd); each step reads one batch of rows and feeds all of them."""
    n = len(y)
    start = _initial(config, tuple(tokens.shape[1:]), num_heads, num_classes)
    probes = [copy.deepcopy(start).to(device).train() for _ in config.combos]
    pairs = zip(probes, config.combos, strict=True)
    optimizer = torch.optim.AdamW([g for p, (lr, wd) in pairs for g in _param_groups(p, lr, wd)])
    steps = config.steps(n)
    batches = batch_order(n, config.batch(n), steps, config.seed, torch.device("cpu"))
    for t, idx in enumerate(batches):
        rows = np.sort(idx.numpy())  # ascending rows: sequential reads of the memory map
        xb = tokens[rows].to(device).float()
        yb = y[rows].to(device)
        for group in optimizer.param_groups:
            group["lr"] = cosine(group["base_lr"], 0.0, t, steps)
            end = min(config.final_weight_decay, group["base_wd"])
            group["weight_decay"] = cosine(group["base_wd"], end, t, steps)
        losses = torch.stack([F.cross_entropy(p(xb), yb) for p in probes])
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # independent probes: each gets exactly its own gradient
        optimizer.step()
        if progress and (t + 1) % max(steps // 10, 1) == 0:
            loss = losses.mean().item()
            print(f"attentive grid: step {t + 1}/{steps}, mean loss {loss:.4f}", file=sys.stderr)
    return [p.eval() for p in probes]


@torch.no_grad()
def _evaluate(
    probes: list[AttentiveClassifier],
    tokens: Tokens,
    y: Tensor,
    num_classes: int,
    config: AttentiveConfig,
    device: torch.device,
) -> list[dict[str, float]]:
    """Metrics of every probe; each batch of rows is read once for all of them."""
    meter = ClassificationMeter(num_classes, heads=len(probes))
    for rows in _chunks(len(y), config.eval_batch_size):
        xb = tokens[rows].to(device).float()
        meter.update(torch.stack([p(xb) for p in probes], dim=1), y[rows])
    return meter.compute()


def fit_attentive(
    tokens: Tokens,
    labels,
    *,
    num_classes: int,
    num_heads: int,
    lr: float,
    weight_decay: float,
    config: AttentiveConfig = AttentiveConfig(),
    device: str | torch.device | None = None,
) -> AttentiveClassifier:
    """Train one attentive probe (the grid's choice on train + val) with the grid's schedule."""
    y = _check(tokens, labels, num_classes=num_classes, name="train", train=True)
    one = replace(config, lrs=(lr,), weight_decays=(weight_decay,))
    (probe,) = _train(
        tokens,
        y,
        num_classes=num_classes,
        num_heads=num_heads,
        config=one,
        device=resolve_device(device),
        progress=False,
    )
    require_sound(probe.parameters(), "attentive", f"the final fit at lr {lr:g}")
    return probe


@dataclass
class AttentiveProbeResult:
    """Grid rows (validation metrics per lr x wd), the chosen row, the final head, test metrics."""

    grid: list[dict]
    chosen: dict
    head: AttentiveClassifier = field(repr=False)
    test: dict[str, float]
    refit: bool


def attentive_probe(
    train_tokens: Tokens,
    train_y,
    val_tokens: Tokens,
    val_y,
    test_tokens: Tokens,
    test_y,
    *,
    num_classes: int,
    num_heads: int,
    config: AttentiveConfig = AttentiveConfig(),
    refit: bool = True,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> AttentiveProbeResult:
    """Grid on train, choose on val, (by default) retrain the choice on train + val, test once.

    The test tokens are read only after the choice and the final head are fixed.
    """
    train_y = _check(train_tokens, train_y, num_classes=num_classes, name="train", train=True)
    val_y = _check(val_tokens, val_y, num_classes=num_classes, name="val", train=False)
    test_y = _check(test_tokens, test_y, num_classes=num_classes, name="test", train=False)
    _same_grid(train_tokens, val_tokens, "val")
    _same_grid(train_tokens, test_tokens, "test")
    dev = resolve_device(device)
    probes = _train(
        train_tokens,
        train_y,
        num_classes=num_classes,
        num_heads=num_heads,
        config=config,
        device=dev,
        progress=progress,
    )
    metrics = _evaluate(probes, val_tokens, val_y, num_classes, config, dev)
    rows = [
        {"lr": lr, "weight_decay": wd, **{f"val_{k}": v for k, v in m.items()}}
        for (lr, wd), m in zip(config.combos, metrics, strict=True)
    ]
    leave_out_diverged(rows, [is_finite(p.parameters()) for p in probes], "attentive")
    i = select_on_val(rows)
    if refit:
        head = fit_attentive(
            ConcatTokens(train_tokens, val_tokens),
            torch.cat([train_y, val_y]),
            num_classes=num_classes,
            num_heads=num_heads,
            lr=rows[i]["lr"],
            weight_decay=rows[i]["weight_decay"],
            config=config,
            device=dev,
        )
    else:
        head = probes[i]
    (test,) = _evaluate([head], test_tokens, test_y, num_classes, config, dev)
    return AttentiveProbeResult(grid=rows, chosen=rows[i], head=head, test=test, refit=refit)


class AttentiveProbe(Probe):
    """V-JEPA's attentive probe on the patch tokens of one block."""

    name = "attentive"
    reports = CLASSIFICATION_METRICS
    Config = AttentiveConfig
    inputs = "tokens"

    @classmethod
    def check(cls, representations: tuple[str, ...], blocks: tuple[int, ...]) -> None:
        if len(blocks) != 1:
            raise ProbeError(
                f"the attentive probe reads the tokens of one block, but {list(representations)} "
                f"names blocks {list(blocks)}; use lastPOOL or block<N>"
            )

    def run(self, inputs: ProbeInputs, config: AttentiveConfig, device: str | None) -> ProbeResult:
        if inputs.select is None:
            raise ProbeError("the attentive probe needs a selection split; none could be held out")
        fit, select, test = (
            (TokenRows(part.x), part.y) for part in (inputs.fit, inputs.select, inputs.test)
        )
        result = attentive_probe(
            *fit,
            *select,
            *test,
            num_classes=inputs.num_classes,
            num_heads=inputs.num_heads,
            config=config,
            refit=True,
            device=device,
        )
        scores = result.head.scores(test[0], batch_size=config.eval_batch_size)
        chosen = {
            **result.chosen,
            "representation": inputs.representations[0],
            "block": inputs.blocks[0],
            "num_tokens": fit[0].shape[1],
            "num_heads": inputs.num_heads,
        }
        return ProbeResult(
            metrics=result.test,
            chosen=chosen,
            grid=result.grid,
            predictions=classification_predictions(scores, inputs.test.y),
            artifacts=result.head.state_dict(),
            splits={"fit": len(inputs.fit), "select": len(inputs.select), "test": len(test[1])},
            seeds={"probe": config.seed},
        )
