"""Logistic regression: scikit-learn's answers at equal C; a deterministic, held-out C sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from ijepa_eval.probes import ProbeError, ProbeWarning, logreg_fit, logreg_grid, stratified_split

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add contention


def blobs(n: int, seed: int, num_classes: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(size=(num_classes, 64)) * 0.35
    y = rng.integers(0, num_classes, n)
    x = centers[y] + rng.normal(size=(n, 64)) + 1.0
    return torch.tensor(x, dtype=torch.float32), torch.from_numpy(y)


@pytest.fixture(scope="module")
def data():
    return (*blobs(600, seed=0), *blobs(2000, seed=1))


def sklearn_objective(x, y, weight, bias, C: float) -> float:
    """C * sum of log-losses + ||W||^2 / 2, in float64."""
    w, b = torch.as_tensor(weight, dtype=torch.float64), torch.as_tensor(bias, dtype=torch.float64)
    loss = torch.nn.functional.cross_entropy(x.double() @ w.T + b, y, reduction="sum")
    return (C * loss + 0.5 * w.square().sum()).item()


@pytest.mark.parametrize("C", [1e-4, 1e-2, 1.0, 100.0])
def test_predictions_agree_with_sklearn_at_equal_C(data, C):
    """Against a converged scikit-learn: at C = 100 its default tol (1e-4) stops after ~56 of
    the ~400 iterations it needs, 10% above the optimum, and then disagrees with itself."""
    x, y, x_test, _ = data
    ours = logreg_fit(x, y, C=C, num_classes=8)
    theirs = LogisticRegression(C=C, solver="lbfgs", max_iter=10_000, tol=1e-10)
    theirs.fit(x.numpy(), y.numpy())
    agree = (ours.predict(x_test).numpy() == theirs.predict(x_test.numpy())).mean()
    assert agree >= 0.99
    w, b = ours.linear.weight, ours.linear.bias
    objective = sklearn_objective(x, y, w, b, C)
    assert objective <= sklearn_objective(x, y, theirs.coef_, theirs.intercept_, C) * (1 + 1e-5)


def test_sweep_is_deterministic_and_chooses_on_held_out_train_data(data):
    x, y, *_ = data
    Cs = np.logspace(-4, 2, 7)
    first = logreg_grid(x, y, num_classes=8, Cs=Cs[::-1], seed=3)  # order does not matter
    second = logreg_grid(x, y, num_classes=8, Cs=Cs, seed=3)
    assert first.rows == second.rows and first.best_C == second.best_C
    assert [row["C"] for row in first.rows] == sorted(Cs)
    assert first.selection == "validation"
    fit_idx, val_idx = stratified_split(y, 0.2, seed=3)
    assert (first.n_fit, first.n_val) == (len(fit_idx), len(val_idx))
    best = max(first.rows, key=lambda row: row["val_top1"])["val_top1"]
    assert first.rows[[row["C"] for row in first.rows].index(first.best_C)]["val_top1"] == best
    # The final model is the best C refitted on all the training data, from scratch.
    again = logreg_fit(x, y, C=first.best_C, num_classes=8)
    torch.testing.assert_close(first.model.linear.weight, again.linear.weight)


def test_warm_started_fits_reach_the_same_optimum(data):
    x, y, x_test, _ = data
    cold = logreg_fit(x, y, C=1.0, num_classes=8)
    warm = logreg_fit(x, y, C=1.0, num_classes=8, init=logreg_fit(x, y, C=0.01, num_classes=8))
    assert (cold.predict(x_test) == warm.predict(x_test)).float().mean() >= 0.995


def test_one_shot_sets_fall_back_to_a_fixed_C_with_a_warning():
    x, y = torch.randn(5, 8), torch.arange(5)
    with pytest.warns(ProbeWarning, match="single training item"):
        result = logreg_grid(x, y, num_classes=5, fallback_C=0.5)
    assert (result.selection, result.best_C, result.rows, result.n_val) == ("fallback", 0.5, [], 0)
    assert result.model.predict(x).tolist() == y.tolist()


def test_single_item_classes_stay_in_the_fitting_part(data):
    x, y, *_ = data
    x, y = torch.cat([x, torch.randn(1, 64)]), torch.cat([y, torch.tensor([8])])
    result = logreg_grid(x, y, num_classes=9, Cs=[1.0, 100.0])
    fit_idx, val_idx = stratified_split(y, 0.2, seed=0)
    assert len(y) - 1 in fit_idx and (result.n_fit, result.n_val) == (len(fit_idx), len(val_idx))
    assert result.model.predict(x[-1:]).item() == 8  # the singleton class was learnt


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        (torch.randn(6, 4), torch.zeros(6, dtype=torch.long), {}, "single class"),
        (torch.randn(0, 4), torch.zeros(0, dtype=torch.long), {}, "empty"),
        (torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0]), {}, "6 feature rows but 5 labels"),
        (torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1]), {"C": -1.0}, "C must be > 0"),
    ],
)
def test_bad_inputs_are_probe_errors(x, y, kwargs, message):
    with pytest.raises(ProbeError, match=message):
        logreg_fit(x, y, num_classes=2, **{"C": 1.0, **kwargs})
