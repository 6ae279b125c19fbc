"""Metrics on hand-made cases; seeded stratified splits and k-shot sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ijepa_eval.errors import UserError
from ijepa_eval.probes import (
    ClassificationMeter,
    ProbeError,
    classification_metrics,
    sample_per_class,
    stratified_split,
)


def one_hot_scores(pred: list[int], num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(pred), num_classes).float()


def test_top5_with_fewer_than_five_classes_is_top3():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    m = classification_metrics(scores, torch.tensor([2, 0, 0]), num_classes=3)
    assert m["top1"] == pytest.approx(100 / 3)
    assert m["top5"] == 100.0  # k = min(5, 3): every label is in the top 3


def test_top5_counts_rank_two_to_five_but_not_six():
    scores = torch.arange(7, 0, -1).float().repeat(3, 1)  # class 0 ranks first, class 6 last
    m = classification_metrics(scores, torch.tensor([0, 4, 5]), num_classes=7)
    assert m["top1"] == pytest.approx(100 / 3)
    assert m["top5"] == pytest.approx(200 / 3)


def test_mean_per_class_accuracy_weights_classes_equally():
    labels = torch.tensor([0, 0, 0, 0, 1])
    m = classification_metrics(one_hot_scores([0, 0, 0, 0, 0], 3), labels, num_classes=3)
    assert m["top1"] == 80.0
    assert m["mean_per_class_acc"] == 50.0  # class 0: 100%, class 1: 0%; class 2 absent


def test_meter_accumulates_batches_and_heads_like_one_call():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(100, 3, 6, generator=gen)
    labels = torch.randint(0, 6, (100,), generator=gen)
    meter = ClassificationMeter(6, heads=3)
    for i in range(0, 100, 30):
        meter.update(scores[i : i + 30], labels[i : i + 30])
    for g, got in enumerate(meter.compute()):
        assert got == pytest.approx(classification_metrics(scores[:, g], labels, 6))


def test_scores_with_the_wrong_number_of_classes_are_an_error():
    with pytest.raises(ProbeError, match="4 classes, expected 3"):
        classification_metrics(torch.zeros(2, 4), torch.tensor([0, 1]), num_classes=3)


def test_stratified_split_is_deterministic_stratified_and_complete():
    labels = np.repeat(np.arange(5), [10, 20, 3, 2, 50])
    train, val = stratified_split(labels, 0.2, seed=7)
    again = stratified_split(torch.from_numpy(labels), 0.2, seed=7)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, stratified_split(labels, 0.2, seed=8)[1])
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(labels.size))
    assert np.bincount(labels[val], minlength=5).tolist() == [2, 4, 1, 1, 10]
    assert set(labels[train]) == set(range(5))


def test_single_item_classes_go_to_train_or_are_an_error():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    train, val = stratified_split(labels, 0.25, seed=0)
    assert 8 in train and 2 not in labels[val]
    with pytest.raises(ProbeError, match=r"classes \[2\] have a single item"):
        stratified_split(labels, 0.25, seed=0, allow_singletons=False)
    with pytest.raises(ProbeError, match="single item"):
        stratified_split(np.arange(4), 0.25, seed=0)  # nothing could be held out


@pytest.mark.parametrize(
    ("labels", "fraction", "message"),
    [
        (np.zeros(10, dtype=int), 0.2, "all labels are class 0"),
        (np.zeros(0, dtype=int), 0.2, "empty"),
        (np.array([0, 1, 0, 1]), 1.0, r"fraction must be in \(0, 1\)"),
        (np.array([0.0, 1.0]), 0.5, "must be integers"),
    ],
)
def test_bad_split_requests_are_user_errors(labels, fraction, message):
    with pytest.raises(UserError, match=message):
        stratified_split(labels, fraction, seed=0)


def test_sample_per_class_draws_k_of_each_and_refuses_k_above_the_smallest_class():
    labels = np.repeat(np.arange(4), [5, 9, 3, 7])
    idx = sample_per_class(labels, 3, seed=1)
    assert np.bincount(labels[idx]).tolist() == [3, 3, 3, 3]
    assert np.array_equal(idx, sample_per_class(labels, 3, seed=1))
    assert not np.array_equal(idx, sample_per_class(labels, 3, seed=2))
    with pytest.raises(ProbeError, match="class 2 has only 3 items; use k <= 3"):
        sample_per_class(labels, 4, seed=1)
