"""A grid of linear probes trained together in one pass over device-resident features.

As in DINOv2's `eval/linear.py`, every configuration (representation x head x lr x weight
decay) trains at once on the same shuffled mini-batches, so the features are read once per step
whatever the grid size. Two things make it cheap without a backbone in the loop:

- all heads that read the same input (one representation, raw or batch-normalised) share one
  weight matrix of shape (D, G*C): one GEMM gives the logits of all G heads, and because the loss
  is a sum of independent per-head losses, one more GEMM gives all their gradients;
- BatchNorm1d(affine=False) has no parameters, so its output is the same for every bn_linear
  head of a representation: it is computed once per step.

The update is plain SGD-momentum (torch semantics) or AdamW with a per-head learning rate and
weight decay and a cosine schedule; weight decay applies to weights, not biases. Every head of a
representation starts from the same seeded initialisation and sees the same batches, so
`fit_linear` on the same data reproduces a grid head: the grid is many independent probes run
side by side, not a different algorithm.

Training features may carry cached augmented views, ``(N, V, D)`` (a task's ``views:``): each
step draws one view per item from a seeded generator of its own, so the batches are the same
with or without views, and every head sees the same views.

Every head trains twice by default: on the features as they are, and in `Whitening`
coordinates (an affine change of coordinates fitted on the training set, so still a linear
probe on the features). Real ViT features are so badly conditioned that SGD on them stalls
points short of the optimum on large sets; whitened, it converges in the same steps. On small
sets the raw heads generalise better. The selection split chooses, as it chooses the lr
(benchmarks/RESULTS.md, "Linear grid convergence").
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

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
    check_pair,
    is_finite,
    leave_out_diverged,
    note,
    require_sound,
    resolve_device,
    select_on_val,
)
from ijepa_eval.probes.metrics import ClassificationMeter

# DINOv2 eval/linear.py's learning rates, scaled by batch size / 256 (the linear scaling rule).
DINOV2_LRS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1)
HEADS = ("linear", "bn_linear")
OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class LinearGridConfig:
    """The sweep and its training schedule.

    Training runs max(epochs x N / batch, min_steps) steps: `epochs` sets the length on large
    sets (10 epochs of ImageNet at batch 1024 is DINOv2's 12,500 iterations), `min_steps` keeps
    small sets from stopping after a few dozen updates. A batch larger than the training set
    becomes full-batch, and lrs scale by the batch actually used.

    `momentum` and `min_steps` left unset (None) follow the set's size, as measured against a
    converged scikit-learn fit on real encoder features (benchmarks/RESULTS.md): a set that fits
    in one batch trains full-batch with momentum 0.9 and ≥ 1,000 steps; a larger one trains on
    mini-batches with momentum 0.99 and ≥ 3,000 steps. `resolved(n)` fixes them for a training
    set of n items; the grid's rows record the values used. `whiten` lists the coordinates the
    heads train in (see the module docstring): both by default, ``(False,)`` is the grid of
    DINOv2 and VISSL alone.
    """

    lrs: tuple[float, ...] = DINOV2_LRS
    weight_decays: tuple[float, ...] = (0.0, 5e-4)
    heads: tuple[str, ...] = HEADS
    optimizer: str = "sgd"
    momentum: float | None = None  # None: 0.9 full-batch, 0.99 on mini-batches
    epochs: int = 10
    min_steps: int | None = None  # None: 1,000 full-batch, 3,000 on mini-batches
    batch_size: int = 1024
    seed: int = 0
    eval_batch_size: int = 4096
    matmul_dtype: str = "float32"  # "bfloat16": the two training GEMMs in bf16 (AMX, tensor cores)
    whiten: tuple[bool, ...] = (False, True)  # heads on the features as they are / on `Whitening`
    whiten_ridge: float = 10.0  # added to the covariance, in units of its median eigenvalue

    def __post_init__(self) -> None:
        for name in ("lrs", "weight_decays", "heads", "whiten"):  # lists from YAML: tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.lrs or min(self.lrs) <= 0:
            raise ProbeError(f"lrs must be positive and non-empty, got {self.lrs}")
        if not self.weight_decays or min(self.weight_decays) < 0:
            raise ProbeError(f"weight_decays must be >= 0 and non-empty, got {self.weight_decays}")
        unknown = set(self.heads) - set(HEADS)
        if not self.heads or unknown:
            raise ProbeError(f"heads must be a non-empty subset of {HEADS}, got {self.heads}")
        if self.optimizer not in OPTIMIZERS:
            raise ProbeError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        min_steps = 1 if self.min_steps is None else self.min_steps
        if self.epochs < 0 or min_steps < 0 or self.epochs + min_steps == 0:
            raise ProbeError("epochs and min_steps must be >= 0, and not both 0")
        if self.momentum is not None and not 0 <= self.momentum < 1:
            raise ProbeError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ProbeError("batch sizes must be >= 1")
        if self.matmul_dtype not in ("float32", "bfloat16"):
            raise ProbeError(f"matmul_dtype must be float32 or bfloat16, not {self.matmul_dtype!r}")
        if not self.whiten or len(set(self.whiten)) != len(self.whiten):
            raise ProbeError(f"whiten must be [false], [true] or [false, true], got {self.whiten}")
        if not self.whiten_ridge > 0:
            raise ProbeError(f"whiten_ridge must be > 0, got {self.whiten_ridge}")

    def resolved(self, n: int) -> LinearGridConfig:
        """The schedule for a training set of ``n`` items: unset momentum and min_steps from
        its size (see the class docstring); set ones as given."""
        full_batch = n <= self.batch_size
        return replace(
            self,
            momentum=(0.9 if full_batch else 0.99) if self.momentum is None else self.momentum,
            min_steps=(1000 if full_batch else 3000) if self.min_steps is None else self.min_steps,
        )

    def batch(self, n: int) -> int:
        return min(self.batch_size, n)

    def steps(self, n: int) -> int:
        min_steps = self.resolved(n).min_steps
        return max(math.ceil(self.epochs * n / self.batch(n)), min_steps)

    def effective_lr(self, lr: float, n: int) -> float:
        return lr * self.batch(n) / 256


class Whitening(nn.Module):
    """A fixed change of coordinates, ``x -> (x - mean) @ matrix``, that tames the directions of
    outsized variance in the training features: ``matrix = c * (cov + ridge * m * I) ** -1/2``
    with ``m`` the median eigenvalue of the covariance (the mean would be dominated by the very
    directions to tame), and ``c`` chosen so the output's mean variance is 1 (as after BatchNorm,
    so one lr grid suits every feature scale).

    Why: real ViT features are badly conditioned (for the bundled model's concatPOOL4 the
    covariance's largest eigenvalue is ~3e8 times its median), and SGD on them stalls far from
    the optimum however long it runs (benchmarks/RESULTS.md, "Linear grid convergence"). With
    the default ridge of 10, a direction whose variance is far above 10 m is brought down to
    ~11 times the others; the rest keep their relative scale, so on well-conditioned features
    this is a plain rescaling (full whitening, a small ridge, overfits there: measured on the
    tests' blobs). The map is invertible and affine, so a linear head on its output is a linear
    head on ``x``: the same family of probes, reached in far fewer steps (preconditioned SGD).
    Weight decay then measures the weights' norm in these coordinates.
    """

    def __init__(self, mean: Tensor, matrix: Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("matrix", matrix)

    @classmethod
    @torch.no_grad()
    def fit(cls, x: Tensor, ridge: float, *, max_rows: int = 65536, seed: int = 0) -> Whitening:
        """From training features ``(N, D)`` or views ``(N, V, D)`` (every view a row); more
        than ``max_rows`` rows: a seeded sample of them."""
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] > max_rows:
            gen = torch.Generator().manual_seed(seed)
            rows = rows[torch.randperm(rows.shape[0], generator=gen)[:max_rows].to(rows.device)]
        total = torch.zeros(rows.shape[1], dtype=torch.float64, device=rows.device)
        gram = torch.zeros(rows.shape[1], rows.shape[1], dtype=torch.float64, device=rows.device)
        for i in range(0, rows.shape[0], 8192):  # float64 sums without a float64 copy of it all
            chunk = rows[i : i + 8192].double()
            total += chunk.sum(0)
            gram += chunk.T @ chunk
        n = rows.shape[0]
        mean = total / n
        cov = gram / n - torch.outer(mean, mean)  # per row: repeated views change nothing
        evals, evecs = torch.linalg.eigh(cov)
        evals = evals.clamp_min(0)
        scale = float(evals.median())  # the typical direction's variance, whatever the outliers
        if not scale > 0:  # constant features: nothing to whiten, nothing to learn
            return cls(mean.float(), torch.eye(len(evals), device=rows.device))
        shrunk = evals + ridge * scale
        unit = (len(evals) / (evals / shrunk).sum()).sqrt()  # mean output variance 1
        matrix = (evecs * (unit * shrunk.rsqrt())) @ evecs.T
        return cls(mean.float(), matrix.float())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) @ self.matrix


class LinearHead(nn.Module):
    """A trained probe: optional whitening (fixed), optional BatchNorm1d(affine=False), then a
    linear layer; all of it one affine map of the features."""

    def __init__(
        self, dim: int, num_classes: int, *, head: str = "linear", whiten: Whitening | None = None
    ):
        super().__init__()
        if head not in HEADS:
            raise ProbeError(f"head must be one of {HEADS}, got {head!r}")
        self.head = head
        self.whiten = whiten if whiten is not None else nn.Identity()
        self.norm = nn.BatchNorm1d(dim, affine=False) if head == "bn_linear" else nn.Identity()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.norm(self.whiten(x)))

    @torch.no_grad()
    def scores(self, x: Tensor, *, batch_size: int = 4096) -> Tensor:
        """Logits (N, C) on the CPU, in eval mode, computed in batches on the head's device."""
        self.eval()
        dev = self.linear.weight.device
        return torch.cat(
            [
                self(x[i : i + batch_size].to(dev).float()).cpu()
                for i in range(0, x.shape[0], batch_size)
            ]
        )

    def predict(self, x: Tensor) -> Tensor:
        return self.scores(x).argmax(dim=1)


@dataclass
class GridResult:
    """Every configuration's validation metrics, the chosen row, and the chosen head itself."""

    rows: list[dict]
    best: dict
    best_head: LinearHead = field(repr=False)


class _HeadGroup:
    """G heads reading one input (a representation, raw or batch-normalised): weight (D, G*C)."""

    def __init__(
        self,
        rep: str,
        head: str,
        dim: int,
        num_classes: int,
        config: LinearGridConfig,
        n: int,
        device: torch.device,
        whiten: Whitening | None,
    ):
        self.rep, self.head, self.config, self.whiten = rep, head, config, whiten
        combos = [(lr, wd) for lr in config.lrs for wd in config.weight_decays]
        self.combos, self.num_classes, self.size = combos, num_classes, len(combos)
        lrs = [config.effective_lr(lr, n) for lr, _ in combos]
        self.lr = torch.tensor(lrs, device=device)[:, None]  # (G, 1): broadcasts over classes
        self.wd = torch.tensor([wd for _, wd in combos], device=device)[:, None]
        init = torch.Generator().manual_seed(config.seed)  # same start for every head (and device)
        w0 = torch.randn(dim, 1, num_classes, generator=init) * 0.01  # DINOv2's normal(0, 0.01)
        self.weight = w0.expand(dim, self.size, num_classes).reshape(dim, -1).to(device)
        self.bias = torch.zeros(self.size * num_classes, device=device)
        self.norm = nn.BatchNorm1d(dim, affine=False).to(device) if head == "bn_linear" else None
        self.state = {name: {} for name in ("weight", "bias")}
        self.t = 0

    def input(self, x: Tensor, *, train: bool) -> Tensor:
        """The head's input from the (whitened, where it applies) features."""
        if self.norm is None:
            return x
        return self.norm.train(train)(x)

    def coordinates(self, x: Tensor) -> Tensor:
        """Features in the coordinates the heads train in."""
        return x if self.whiten is None else self.whiten(x)

    def logits(self, x: Tensor) -> Tensor:
        if self.config.matmul_dtype == "bfloat16":
            out = _bf16_mm(x, self.weight) + self.bias
        else:
            out = torch.addmm(self.bias, x, self.weight)
        return out.view(x.shape[0], self.size, -1)

    def step(self, x: Tensor, y: Tensor, schedule: float) -> Tensor:
        """One update of all G heads on a batch; returns their mean training loss."""
        n = x.shape[0]
        prob = self.logits(x).softmax(dim=-1)
        loss = -prob[torch.arange(n), :, y].clamp_min(1e-12).log().mean()
        prob -= F.one_hot(y, self.num_classes)[:, None, :]  # d(mean CE)/d(logits), times n
        grad = prob.view(n, -1) / n
        self.t += 1
        lr = self.lr * schedule
        bf16 = self.config.matmul_dtype == "bfloat16"
        self._update(
            "weight", self.weight, _bf16_mm(x.T, grad) if bf16 else x.T @ grad, lr, self.wd
        )
        self._update("bias", self.bias, grad.sum(0), lr, None)
        return loss

    def _update(self, name: str, param: Tensor, grad: Tensor, lr: Tensor, wd: Tensor | None):
        p, g = (t.view(-1, self.size, self.num_classes) for t in (param, grad))  # (., G, C)
        state, cfg = self.state[name], self.config
        if cfg.optimizer == "sgd":  # torch.optim.SGD: d = g + wd*p; buf = m*buf + d; p -= lr*buf
            if wd is not None:
                g = g + wd * p
            buf = state.setdefault("buf", torch.zeros_like(p))
            buf.mul_(cfg.momentum).add_(g)
            p.sub_(lr * buf)
        else:  # torch.optim.AdamW defaults: betas (0.9, 0.999), eps 1e-8, decoupled decay
            m = state.setdefault("m", torch.zeros_like(p))
            v = state.setdefault("v", torch.zeros_like(p))
            m.lerp_(g, 0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            if wd is not None:
                p.mul_(1 - lr * wd)
            step = (m / (1 - 0.9**self.t)) / ((v / (1 - 0.999**self.t)).sqrt() + 1e-8)
            p.sub_(lr * step)

    def head_is_finite(self, g: int) -> bool:
        dim = self.weight.shape[0]
        w = self.weight.view(dim, self.size, self.num_classes)[:, g, :]
        return is_finite([w, self.bias.view(self.size, -1)[g]])

    def extract(self, g: int) -> LinearHead:
        """Head g of the group as a standalone LinearHead."""
        dim = self.weight.shape[0]
        head = LinearHead(dim, self.num_classes, head=self.head, whiten=self.whiten)
        head = head.to(self.weight.device)
        w = self.weight.view(dim, self.size, self.num_classes)[:, g, :]
        head.linear.weight.data.copy_(w.T)
        head.linear.bias.data.copy_(self.bias.view(self.size, -1)[g])
        if self.norm is not None:
            head.norm.load_state_dict(self.norm.state_dict())
        return head.eval()


def _bf16_mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` with bf16 inputs and fp32 accumulation; the weights themselves stay fp32."""
    return (a.to(torch.bfloat16) @ b.to(torch.bfloat16)).float()


def batch_order(
    n: int, batch: int, steps: int, seed: int, device: torch.device
) -> Iterator[Tensor]:
    """`steps` batches of indices drawn from consecutive seeded permutations of range(n)."""
    gen = torch.Generator().manual_seed(seed)
    pool = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        while pool.numel() < batch:
            pool = torch.cat([pool, torch.randperm(n, generator=gen)])
        yield pool[:batch].to(device)
        pool = pool[batch:]


def _check_reps(
    feats: Mapping[str, Tensor], labels: Tensor, *, num_classes: int, name: str, train: bool
) -> Tensor:
    if not feats:
        raise ProbeError(f"no representations given for the {name} set")
    for rep, x in feats.items():
        labels = check_pair(
            x,
            labels,
            num_classes=num_classes,
            name=f"{name} '{rep}'",
            need_two_classes=train,
            views=train,
        )
    return labels


def _view_count(xs: Mapping[str, Tensor]) -> int | None:
    """V when the training features are ``(N, V, D)`` views (the same V for every
    representation), else None."""
    counts = {x.shape[1] if x.ndim == 3 else None for x in xs.values()}
    if len(counts) > 1:
        raise ProbeError(f"the representations carry different numbers of views: {counts}")
    return counts.pop()


@torch.no_grad()
def _train(
    feats: Mapping[str, Tensor],
    y: Tensor,
    *,
    num_classes: int,
    config: LinearGridConfig,
    device: torch.device,
    progress: bool,
) -> list[_HeadGroup]:
    n = y.shape[0]
    config = config.resolved(n)
    xs = {rep: x.to(device) for rep, x in feats.items()}  # stored dtype; float32 per batch
    y = y.to(device)
    whitening = {
        rep: Whitening.fit(x, config.whiten_ridge, seed=config.seed) if any(config.whiten) else None
        for rep, x in xs.items()
    }
    groups = {
        rep: [
            _HeadGroup(
                rep, h, x.shape[-1], num_classes, config, n, device, whitening[rep] if w else None
            )
            for w in config.whiten
            for h in config.heads
        ]
        for rep, x in xs.items()
    }
    steps = config.steps(n)
    num_views = _view_count(xs)
    views = torch.Generator().manual_seed(config.seed)  # its own stream: batches stay the same
    for t, idx in enumerate(batch_order(n, config.batch(n), steps, config.seed, device)):
        schedule = 0.5 * (1 + math.cos(math.pi * t / steps))
        yb = y[idx]
        if num_views is not None:  # one view per item, the same for every representation
            pick = torch.randint(num_views, (idx.numel(),), generator=views).to(device)
        losses = []
        for rep, x in xs.items():
            xb = (x[idx] if num_views is None else x[idx, pick]).float()
            batch = {w: whitening[rep](xb) if w else xb for w in config.whiten}  # once per step
            for group in groups[rep]:
                zb = batch[group.whiten is not None]
                losses.append(group.step(group.input(zb, train=True), yb, schedule))
        if progress and (t + 1) % max(steps // 10, 1) == 0:
            loss = torch.stack(losses).mean().item()
            print(f"linear grid: step {t + 1}/{steps}, mean loss {loss:.4f}", file=sys.stderr)
    return [g for gs in groups.values() for g in gs]


@torch.no_grad()
def _evaluate(
    group: _HeadGroup, x: Tensor, y: Tensor, config: LinearGridConfig, device: torch.device
) -> list[dict[str, float]]:
    meter = ClassificationMeter(group.num_classes, heads=group.size)
    for i in range(0, x.shape[0], config.eval_batch_size):
        xb = group.coordinates(x[i : i + config.eval_batch_size].to(device).float())
        meter.update(group.logits(group.input(xb, train=False)), y[i : i + config.eval_batch_size])
    return meter.compute()


def linear_grid(
    train: Mapping[str, Tensor],
    train_y: Tensor,
    val: Mapping[str, Tensor],
    val_y: Tensor,
    *,
    num_classes: int,
    config: LinearGridConfig = LinearGridConfig(),
    device: str | torch.device | None = None,
    progress: bool = False,
) -> GridResult:
    """Train every (representation, whitening, head, lr, weight decay) on `train`; score each
    on `val`.

    `train` and `val` map a representation name (e.g. "lastPOOL", "concatPOOL4") to (N, D)
    features; `train`'s may be (N, V, D), V views per item. Rows come in grid order:
    representation, whitening, head, lr, weight decay.
    """
    train_y = _check_reps(train, train_y, num_classes=num_classes, name="train", train=True)
    val_y = _check_reps(val, val_y, num_classes=num_classes, name="val", train=False)
    if set(train) != set(val):
        raise ProbeError(f"train has representations {sorted(train)}, val {sorted(val)}")
    for rep in train:
        if train[rep].shape[-1] != val[rep].shape[1]:
            raise ProbeError(
                f"'{rep}' is {train[rep].shape[-1]}-d in train, {val[rep].shape[1]}-d in val"
            )
    dev = resolve_device(device)
    n = train_y.shape[0]
    config = config.resolved(n)
    groups = _train(
        train, train_y, num_classes=num_classes, config=config, device=dev, progress=progress
    )
    rows, owners = [], []
    for group in groups:
        metrics = _evaluate(group, val[group.rep], val_y, config, dev)
        for g, ((lr, wd), m) in enumerate(zip(group.combos, metrics, strict=True)):
            rows.append(
                {
                    "representation": group.rep,
                    "whiten": group.whiten is not None,
                    "head": group.head,
                    "lr": lr,
                    "effective_lr": config.effective_lr(lr, n),
                    "weight_decay": wd,
                    "optimizer": config.optimizer,
                    "momentum": config.momentum,
                    "steps": config.steps(n),
                    **{f"val_{k}": v for k, v in m.items()},
                }
            )
            owners.append((group, g))
    finite = [group.head_is_finite(g) for group, g in owners]
    leave_out_diverged(rows, finite, "linear")
    i = select_on_val(rows)
    _note_grid_edge(rows[i]["lr"], config)
    group, g = owners[i]
    return GridResult(rows=rows, best=rows[i], best_head=group.extract(g))


def _note_grid_edge(lr: float, config: LinearGridConfig) -> None:
    """Say so when the chosen lr is the grid's largest or smallest: the optimum may lie beyond.

    At the top edge it usually means an undertrained probe: on badly conditioned features 1,000
    SGD steps at momentum 0.9 chose DINOv2's largest lr and fell 4 points short of converged
    logistic regression (benchmarks/RESULTS.md), which momentum 0.99, more steps and the
    whitened heads (now the defaults) recover.
    """
    if len(config.lrs) < 2 or min(config.lrs) < lr < max(config.lrs):
        return
    if lr == max(config.lrs):
        advice = "more steps (-p min_steps=N, -p epochs=N) or larger lrs"
        edge = "largest"
    else:
        advice = "smaller lrs (-p lrs=[...])"
        edge = "smallest"
    note(
        f"the linear probe chose lr {lr:g}, the {edge} in its grid: the best setting may lie "
        f"outside it; try {advice}"
    )


def fit_linear(
    train: Tensor,
    train_y: Tensor,
    *,
    num_classes: int,
    head: str,
    lr: float,
    weight_decay: float,
    whiten: bool = False,
    config: LinearGridConfig = LinearGridConfig(),
    device: str | torch.device | None = None,
) -> LinearHead:
    """Train one probe (e.g. the grid's choice, on train + val) with the grid's schedule.

    `lr` is a base lr, as in the grid rows; it is scaled by the batch size the same way.
    `whiten`: in `Whitening` coordinates fitted on `train`. `train` is (N, D), or (N, V, D)
    with views.
    """
    one = replace(config, lrs=(lr,), weight_decays=(weight_decay,), heads=(head,), whiten=(whiten,))
    train_y = check_pair(train, train_y, num_classes=num_classes, name="train", views=True)
    (group,) = _train(
        {"x": train},
        train_y,
        num_classes=num_classes,
        config=one,
        device=resolve_device(device),
        progress=False,
    )
    require_sound([group.weight, group.bias], "linear", f"the final fit at lr {lr:g}")
    return group.extract(0)


@dataclass
class LinearProbeResult:
    """The full path's outcome: grid on train/val, chosen row, the final head, test metrics."""

    grid: GridResult
    chosen: dict
    head: LinearHead = field(repr=False)
    test: dict[str, float]
    refit: bool


def linear_probe(
    train: Mapping[str, Tensor],
    train_y: Tensor,
    val: Mapping[str, Tensor],
    val_y: Tensor,
    test: Mapping[str, Tensor],
    test_y: Tensor,
    *,
    num_classes: int,
    config: LinearGridConfig = LinearGridConfig(),
    refit: bool = True,
    refit_val: Mapping[str, Tensor] | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> LinearProbeResult:
    """Grid on train, choose on val, (by default) retrain the choice on train + val, test once.

    The test set enters only in the last line, after the choice and the final head are fixed.
    `refit_val`: val as training data for the refit, when `train` has views (its own views).
    """
    test_y = _check_reps(test, test_y, num_classes=num_classes, name="test", train=False)
    if set(test) != set(train):
        raise ProbeError(f"test has representations {sorted(test)}, train {sorted(train)}")
    grid = linear_grid(
        train,
        train_y,
        val,
        val_y,
        num_classes=num_classes,
        config=config,
        device=device,
        progress=progress,
    )
    best = grid.best
    rep = best["representation"]
    config = config.resolved(len(train_y))  # the refit keeps the schedule the choice was made with
    if refit:
        extra = (val if refit_val is None else refit_val)[rep]
        if extra.ndim != train[rep].ndim:
            raise ProbeError("train has views: give the refit its val views (refit_val)")
        head = fit_linear(
            torch.cat([train[rep], extra.to(train[rep].device, train[rep].dtype)]),
            torch.cat([as_labels(train_y), as_labels(val_y)]),
            num_classes=num_classes,
            head=best["head"],
            lr=best["lr"],
            weight_decay=best["weight_decay"],
            whiten=best["whiten"],
            config=config,
            device=device,
        )
    else:
        head = grid.best_head
    scores = head.scores(test[rep], batch_size=config.eval_batch_size)
    meter = ClassificationMeter(num_classes)
    meter.update(scores, test_y)
    return LinearProbeResult(
        grid=grid, chosen=best, head=head, test=meter.compute()[0], refit=refit
    )


class LinearProbe(Probe):
    """The linear grid (representation × head × lr × weight decay), chosen on the selection split,
    refit on fit + selection, tested once."""

    name = "linear"
    reports = CLASSIFICATION_METRICS
    Config = LinearGridConfig
    trains_on_views = True

    def run(self, inputs: ProbeInputs, config: LinearGridConfig, device: str | None) -> ProbeResult:
        if inputs.select is None:
            raise ProbeError(
                "the linear probe needs a selection split, and none could be held out "
                "(every class has a single training item)"
            )
        fit, select, test = inputs.fit, inputs.select, inputs.test
        result = linear_probe(
            fit.x if fit.views is None else fit.views,
            fit.y,
            select.x,
            select.y,
            test.x,
            test.y,
            num_classes=inputs.num_classes,
            config=config,
            refit=True,
            refit_val=select.views,
            device=device,
        )
        rep = result.chosen["representation"]
        scores = result.head.scores(test.x[rep], batch_size=config.eval_batch_size)
        return ProbeResult(
            metrics=result.test,
            chosen=result.chosen,
            grid=result.grid.rows,
            predictions=classification_predictions(scores, test.y),
            artifacts=result.head.state_dict(),
            splits={"fit": len(fit), "select": len(select), "test": len(test)},
            seeds={"probe": config.seed},
        )
