"""Logistic regression: scikit-learn's answers at equal C; a deterministic, held-out C sweep;
MSN's low-shot feature handling (rows centred and L2-normalised, no intercept)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import ijepa_eval as ie
from ijepa_eval.data.synth import generate_classes
from ijepa_eval.probes import ProbeError, ProbeWarning, logreg_fit, logreg_grid, stratified_split
from ijepa_eval.probes.logreg import LogRegConfig, center_normalize
from ijepa_eval.tasks import ExtractOptions

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
    # The final model is the best C refitted on all the training data, from scratch (with the
    # sweep's default feature handling, MSN's).
    again = logreg_fit(x, y, C=first.best_C, num_classes=8, **LogRegConfig().options)
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
    result = logreg_grid(x, y, num_classes=9, Cs=[100.0, 1e4])  # unit-norm rows: larger C
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


# --- MSN's low-shot feature handling ------------------------------------------------------------

MSN = {"center": True, "normalize": True, "fit_intercept": False}


def msn_by_hand(x: torch.Tensor) -> np.ndarray:
    """cyanure.preprocess(X, normalize=True, columns=False, centering=True), per row, in numpy."""
    a = x.double().numpy()
    a = a - a.mean(axis=1, keepdims=True)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_center_normalize_is_cyanures_row_preprocessing():
    x = torch.tensor([[1.0, 2, 3, 6], [5, 5, 5, 5], [2, -2, 2, -2], [3, 4, 0, 0]])
    got = center_normalize(x)
    # Row 0: mean 3 -> (-2, -1, 0, 3), norm sqrt(14). Row 1: constant -> 0, left at 0 (norm 0).
    # Row 2: mean 0, norm 4. Row 3: mean 7/4 -> (5/4, 9/4, -7/4, -7/4), norm sqrt(204)/4.
    want = torch.tensor(
        [
            [-2 / 14**0.5, -1 / 14**0.5, 0, 3 / 14**0.5],
            [0, 0, 0, 0],
            [0.5, -0.5, 0.5, -0.5],
            [5 / 204**0.5, 9 / 204**0.5, -7 / 204**0.5, -7 / 204**0.5],
        ]
    )
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(
        center_normalize(x[3:], center=False), torch.tensor([[0.6, 0.8, 0, 0]])
    )
    torch.testing.assert_close(
        center_normalize(x[:1], normalize=False), torch.tensor([[-2.0, -1, 0, 3]])
    )


@pytest.mark.parametrize("C", [1.0, 400.0, 4000.0])  # MSN's lambd 0.0025 and 0.00025 are 400, 4000
def test_msn_fit_agrees_with_sklearn_without_intercept_on_hand_preprocessed_features(data, C):
    """The same problem as scikit-learn's on features preprocessed by hand, no intercept. (At
    C = 4,000 on these nearly separable unit-norm rows, float32 L-BFGS stops 0.04% above the
    optimum; predictions still agree on >= 99%.)"""
    x, y, x_test, _ = data
    ours = logreg_fit(x, y, C=C, num_classes=8, **MSN)
    assert ours.linear.bias is None and not ours.fit_intercept
    theirs = LogisticRegression(
        C=C, fit_intercept=False, solver="lbfgs", max_iter=10_000, tol=1e-10
    )
    theirs.fit(msn_by_hand(x), y.numpy())
    agree = (ours.predict(x_test).numpy() == theirs.predict(msn_by_hand(x_test))).mean()
    assert agree >= 0.99
    features = torch.from_numpy(msn_by_hand(x)).float()
    zero = np.zeros(8)
    objective = sklearn_objective(features, y, ours.linear.weight, zero, C)
    assert objective <= sklearn_objective(features, y, theirs.coef_, zero, C) * (1 + 1e-3)


def test_msn_model_transforms_each_scored_row_on_its_own(data):
    """Test features get the same per-row transform, with no statistics from any set: scores do
    not depend on the other rows scored with them, or on a row's offset and positive scale."""
    x, y, x_test, _ = data
    model = logreg_fit(x, y, C=1.0, num_classes=8, **MSN)
    scores = model.scores(x_test)
    by_hand = torch.from_numpy(msn_by_hand(x_test)).float() @ model.linear.weight.T
    torch.testing.assert_close(scores, by_hand, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.scores(x_test[:1]), scores[:1])
    shifted = 3.0 * x_test + torch.linspace(-5, 5, len(x_test))[:, None]
    torch.testing.assert_close(model.scores(shifted), scores, rtol=1e-4, atol=1e-4)
    plain = logreg_fit(x, y, C=1.0, num_classes=8)  # raw features: the offset matters there
    assert not torch.allclose(plain.scores(shifted), plain.scores(x_test), atol=1e-2)


def test_warm_start_refuses_other_feature_options(data):
    x, y, *_ = data
    with pytest.raises(ProbeError, match="same feature options"):
        logreg_fit(x, y, C=1.0, num_classes=8, init=logreg_fit(x, y, C=0.1, num_classes=8), **MSN)


def test_low_shot_tasks_use_msn_features_and_say_so(tmp_path, official_ckpt):
    """The k-shot task runs with MSN's handling by default, records it, and -p turns it off."""
    classes = generate_classes(
        tmp_path / "classes", classes=3, per_class=8, size=16, val_per_class=3, progress=False
    )
    assert LogRegConfig().options == MSN
    enc = ie.load_encoder(official_ckpt)
    raw = {"center": False, "normalize": False, "fit_intercept": True}
    for params, want in ((None, MSN), (raw, raw)):
        record = ie.evaluate(
            "imagenet_kshot",
            encoder=enc,
            data=str(classes),
            shots=[2],
            params=params,
            extraction=ExtractOptions(progress=False, workers=0),
            results_dir=None,
        ).record
        draw = record["chosen"]["2shot_seed0"]
        assert {k: draw[k] for k in MSN} == want
