"""Multinomial L2 logistic regression by full-batch L-BFGS in torch, and its C sweep.

It minimises scikit-learn's objective, C * sum_i log-loss_i + ||W||^2 / 2 with the intercept
unpenalised, written as the mean log-loss + ||W||^2 / (2 C N) (the same minimiser, better scaled
for a tolerance). So at equal C it gives scikit-learn's `LogisticRegression(solver="lbfgs")`
answers, on the GPU when there is one. The sweep follows DINOv2's `eval/log_regression.py`: 45
log-spaced C from 1e-6 to 1e5, chosen on a held-out part of the (low-shot) training set, then
refit on all of it.

The low-shot protocol around it is MSN's (`logistic_eval.py`): every feature vector goes through
cyanure's `preprocess(X, normalize=True, columns=False, centering=True)` — each row minus its own
mean over its D coordinates, then scaled to unit L2 norm — and the classifier has no intercept
(`fit_intercept=False`). The transform is per row and uses no statistics of any set, so MSN
applies it to the test features on their own and the result is the same as here, where the
model applies it to whatever it scores. `logreg_fit` alone is the plain solver (raw features, an
intercept), which is what is compared with scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
from ijepa_eval.probes.common import ProbeError, check_pair, note, require_sound, resolve_device
from ijepa_eval.probes.metrics import classification_metrics
from ijepa_eval.probes.split import stratified_split

DINOV2_CS = tuple(np.logspace(-6, 5, 45).tolist())


def center_normalize(x: Tensor, *, center: bool = True, normalize: bool = True) -> Tensor:
    """cyanure's ``preprocess(X, centering, normalize, columns=False)`` on (N, D) features.

    Row by row, as cyanure does it (its C++ works on X.T, whose columns are the rows of X): each
    row minus the mean of its own D values, then divided by its L2 norm. A row whose norm is at
    most 1e-10 (a constant feature vector) is left as it is; cyanure replaces it by a random
    unit vector.
    """
    if center:
        x = x - x.mean(dim=1, keepdim=True)
    if normalize:
        norm = x.norm(dim=1, keepdim=True)
        x = x / torch.where(norm > 1e-10, norm, torch.ones_like(norm))
    return x


class LogRegModel(nn.Module):
    """A fitted multinomial logistic regression: the feature transform (MSN's centring and L2
    normalisation, when on) and a linear layer whose argmax is the class."""

    def __init__(
        self,
        dim: int,
        num_classes: int,
        *,
        C: float = 1.0,
        center: bool = False,
        normalize: bool = False,
        fit_intercept: bool = True,
    ):
        super().__init__()
        self.C = C
        self.center, self.normalize = center, normalize
        self.linear = nn.Linear(dim, num_classes, bias=fit_intercept)
        nn.init.zeros_(self.linear.weight)
        if fit_intercept:
            nn.init.zeros_(self.linear.bias)

    @property
    def fit_intercept(self) -> bool:
        return self.linear.bias is not None

    def prepare(self, x: Tensor) -> Tensor:
        """The features the linear layer reads: each row transformed on its own."""
        return center_normalize(x, center=self.center, normalize=self.normalize)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.prepare(x))

    @torch.no_grad()
    def scores(self, x: Tensor) -> Tensor:
        """Logits (N, C) on the CPU."""
        return self(x.to(self.linear.weight.device, self.linear.weight.dtype)).float().cpu()

    def predict(self, x: Tensor) -> Tensor:
        return self.scores(x).argmax(dim=1)


def logreg_fit(
    x: Tensor,
    y: Tensor,
    *,
    C: float,
    num_classes: int,
    max_iter: int = 1000,
    tol: float = 1e-6,
    init: LogRegModel | None = None,
    center: bool = False,
    normalize: bool = False,
    fit_intercept: bool = True,
    device: str | torch.device | None = None,
) -> LogRegModel:
    """Fit on all of (x, y) at inverse regularisation C; `init` warm-starts from another fit.

    `center` / `normalize` transform each row first (`center_normalize`, MSN's preprocessing)
    and `fit_intercept=False` drops the intercept (MSN); the defaults are scikit-learn's plain
    problem. Stops when the largest gradient entry of the mean objective is below `tol`, the
    objective stops changing in float32, or after `max_iter` L-BFGS iterations.
    """
    y = check_pair(x, y, num_classes=num_classes, name="train")
    if C <= 0:
        raise ProbeError(f"C must be > 0, got {C}")
    dev = resolve_device(device)
    options = dict(center=center, normalize=normalize, fit_intercept=fit_intercept)
    model = LogRegModel(x.shape[1], num_classes, C=C, **options).to(dev)
    x, y = model.prepare(x.to(dev).float()), y.to(dev)  # once: the transform is fixed
    if init is not None:
        if (init.center, init.normalize, init.fit_intercept) != tuple(options.values()):
            raise ProbeError("a warm start must come from a fit with the same feature options")
        model.load_state_dict(init.state_dict())
        model.C = C
    w, b = model.linear.weight, model.linear.bias
    params = [w] if b is None else [w, b]
    penalty = 1.0 / (2.0 * C * x.shape[0])
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_iter * 5 // 4,
        tolerance_grad=tol,
        tolerance_change=1e-12,
        history_size=10,  # scipy's L-BFGS-B default (maxcor), which scikit-learn uses
        line_search_fn="strong_wolfe",
    )

    def objective() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(F.linear(x, w, b), y) + penalty * w.square().sum()
        loss.backward()
        return loss

    opt.step(objective)
    require_sound(params, "logreg", f"the fit at C={C:g}")
    model.requires_grad_(False)
    return model.eval()


@dataclass
class LogRegResult:
    """The C sweep: one row per C (validation metrics), the choice, and the final model.

    `selection` is "validation" normally, or "fallback" when no class had two items to split
    (1-shot), in which case `best_C` is the fallback C and rows is empty.
    """

    rows: list[dict]
    best_C: float
    model: LogRegModel = field(repr=False)
    selection: str
    n_fit: int
    n_val: int


@dataclass(frozen=True)
class LogRegConfig:
    """The C sweep (DINOv2's 45 values by default), the solver's iteration budget, and MSN's
    low-shot feature handling (on by default: the probe serves the low-shot tasks, whose
    protocol is MSN's). MSN fixes the L2 strength instead of sweeping it: its `lambd` 0.00025
    (script default; its README runs 0.0025), divided by N in cyanure's mean-loss objective, is
    C = 1 / 0.00025 = 4,000 here (400 for 0.0025)."""

    Cs: tuple[float, ...] = DINOV2_CS
    max_iter: int = 1000
    fallback_C: float = 1.0  # used when nothing can be held out (every class has one item)
    center: bool = True  # MSN: each feature vector minus its own mean ...
    normalize: bool = True  # ... then scaled to unit L2 norm (cyanure's preprocess)
    fit_intercept: bool = False  # MSN: cyanure MultiClassifier(fit_intercept=False)

    @property
    def options(self) -> dict[str, bool]:
        """The feature handling, as `logreg_fit` takes it and the run record shows it."""
        return {
            "center": self.center,
            "normalize": self.normalize,
            "fit_intercept": self.fit_intercept,
        }

    def __post_init__(self) -> None:
        object.__setattr__(self, "Cs", tuple(sorted(float(c) for c in self.Cs)))
        if not self.Cs or self.Cs[0] <= 0:
            raise ProbeError(f"Cs must be positive and non-empty, got {list(self.Cs)}")
        if self.max_iter < 1:
            raise ProbeError(f"max_iter must be >= 1, got {self.max_iter}")
        if self.fallback_C <= 0:
            raise ProbeError(f"fallback_C must be > 0, got {self.fallback_C}")


def logreg_grid(
    train_x: Tensor,
    train_y: Tensor,
    *,
    num_classes: int,
    Cs: Sequence[float] = DINOV2_CS,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 1000,
    fallback_C: float = 1.0,
    center: bool = True,
    normalize: bool = True,
    fit_intercept: bool = False,
    device: str | torch.device | None = None,
) -> LogRegResult:
    """Choose C on a stratified held-out part of the training set, then refit on all of it.

    By default with MSN's feature handling (`LogRegConfig`): rows centred and L2-normalised, no
    intercept.

    Cs are fitted in increasing order, each warm-started from the last: the objective is convex,
    so the answer is the same and the path is much shorter. Ties go to the smaller C (the
    stronger regularisation). A class with a single item stays in the fitting part and is
    absent from validation; if every class has a single item (1-shot) nothing can be held out,
    and `fallback_C` (scikit-learn's default, 1.0) is used with a ProbeWarning.
    """
    config = LogRegConfig(
        Cs=tuple(Cs),
        max_iter=max_iter,
        fallback_C=fallback_C,
        center=center,
        normalize=normalize,
        fit_intercept=fit_intercept,
    )
    train_y = check_pair(train_x, train_y, num_classes=num_classes, name="train")
    if int(torch.bincount(train_y).max()) < 2:
        return logreg_fallback(
            train_x, train_y, num_classes=num_classes, config=config, device=device
        )
    fit_idx, val_idx = stratified_split(train_y, val_fraction, seed)
    return logreg_choose(
        train_x[fit_idx],
        train_y[fit_idx],
        train_x[val_idx],
        train_y[val_idx],
        refit=(train_x, train_y),
        num_classes=num_classes,
        config=config,
        device=device,
    )


def logreg_choose(
    fit_x: Tensor,
    fit_y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    *,
    refit: tuple[Tensor, Tensor],
    num_classes: int,
    config: LogRegConfig = LogRegConfig(),
    device: str | torch.device | None = None,
) -> LogRegResult:
    """Fit every C on ``fit`` (warm-started in increasing order), choose on ``val``, refit the
    choice on ``refit`` (the fitting and validation items together)."""
    fit_y = check_pair(fit_x, fit_y, num_classes=num_classes, name="train")
    val_y = check_pair(val_x, val_y, num_classes=num_classes, name="val", need_two_classes=False)
    rows, model = [], None
    for C in config.Cs:
        model = logreg_fit(
            fit_x,
            fit_y,
            C=C,
            num_classes=num_classes,
            max_iter=config.max_iter,
            init=model,
            device=device,
            **config.options,
        )
        metrics = classification_metrics(model.scores(val_x), val_y, num_classes)
        rows.append({"C": C, **{f"val_{k}": v for k, v in metrics.items()}})
    best = max(rows, key=lambda row: row["val_top1"])  # max keeps the first (smallest C) of ties
    final = logreg_fit(
        *refit,
        C=best["C"],
        num_classes=num_classes,
        max_iter=config.max_iter,
        device=device,
        **config.options,
    )
    return LogRegResult(rows, best["C"], final, "validation", len(fit_y), len(val_y))


def logreg_fallback(
    x: Tensor,
    y: Tensor,
    *,
    num_classes: int,
    config: LogRegConfig = LogRegConfig(),
    device: str | torch.device | None = None,
) -> LogRegResult:
    """Nothing to choose on (every class has a single item): fit ``fallback_C``, and say so."""
    C = config.fallback_C
    note(f"every class has a single training item: no validation split; using C={C}")
    model = logreg_fit(
        x,
        y,
        C=config.fallback_C,
        num_classes=num_classes,
        max_iter=config.max_iter,
        device=device,
        **config.options,
    )
    n = len(y)
    return LogRegResult([], config.fallback_C, model, "fallback", n_fit=n, n_val=0)


class LogRegProbe(Probe):
    """L2 logistic regression on one representation, C chosen on the selection split."""

    name = "logreg"
    reports = CLASSIFICATION_METRICS
    Config = LogRegConfig

    def run(self, inputs: ProbeInputs, config: LogRegConfig, device: str | None) -> ProbeResult:
        rep = inputs.representations[0]
        fit, select, test = inputs.fit, inputs.select, inputs.test
        if select is None:
            result = logreg_fallback(
                fit.x[rep], fit.y, num_classes=inputs.num_classes, config=config, device=device
            )
        else:
            result = logreg_choose(
                fit.x[rep],
                fit.y,
                select.x[rep],
                select.y,
                refit=(inputs.train.x[rep], inputs.train.y),
                num_classes=inputs.num_classes,
                config=config,
                device=device,
            )
        scores = result.model.scores(test.x[rep])
        return ProbeResult(
            metrics=classification_metrics(scores, test.y, inputs.num_classes),
            chosen={
                "C": result.best_C,
                "selection": result.selection,
                "representation": rep,
                **config.options,
            },
            grid=result.rows,
            predictions=classification_predictions(scores, test.y),
            artifacts=result.model.state_dict(),
            splits={"fit": result.n_fit, "select": result.n_val, "test": len(test)},
        )
