"""k-NN: equal to a brute-force reference at any chunking; temperature weighting by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ijepa_eval.probes import ProbeError, ProbeWarning, classification_metrics, knn_eval

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add contention


def brute_force(train, train_y, test, test_y, *, k, temperature, num_classes):
    """The whole similarity matrix at once, then DINO's weighted vote."""
    sim = F.normalize(test.float(), dim=1) @ F.normalize(train.float(), dim=1).T
    top = sim.topk(k, dim=1)
    votes = torch.zeros(test.shape[0], num_classes)
    votes.scatter_add_(1, train_y[top.indices], (top.values / temperature).exp())
    return classification_metrics(votes, test_y, num_classes)


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    centers = torch.randn(6, 32, generator=gen)
    train_y, test_y = (
        torch.randint(0, 6, (700,), generator=gen),
        torch.randint(0, 6, (150,), generator=gen),
    )
    train = (centers[train_y] + 1.5 * torch.randn(700, 32, generator=gen)).half()  # as cached
    test = (centers[test_y] + 1.5 * torch.randn(150, 32, generator=gen)).half()
    return train, train_y, test, test_y


@pytest.mark.parametrize(("chunk", "train_chunk"), [(4096, 65536), (37, 256), (64, 333), (1, 700)])
def test_chunked_knn_equals_brute_force(data, chunk, train_chunk):
    train, train_y, test, test_y = data
    got = knn_eval(
        train,
        train_y,
        test,
        test_y,
        num_classes=6,
        ks=(1, 10, 20, 100),
        chunk_size=chunk,
        train_chunk_size=train_chunk,
        device="cpu",
    )
    for k, metrics in got.items():
        want = brute_force(train, train_y, test, test_y, k=k, temperature=0.07, num_classes=6)
        assert metrics == pytest.approx(want)
    assert 40 < got[20]["top1"] < 100  # a real signal, not chance (16.7%) or trivial


def test_temperature_decides_between_many_far_and_one_near_neighbour():
    """Two class-0 neighbours at similarity 0.9 against one class-1 neighbour at 1.0.

    T = 0.07: 2 exp(0.9/0.07) < exp(1/0.07), class 1 wins; T = 1: 2 exp(0.9) > e, class 0 wins.
    """
    a = math.acos(0.9)
    train = torch.tensor([[math.cos(a), math.sin(a)], [math.cos(a), -math.sin(a)], [3.0, 0.0]])
    train_y, test, test_y = torch.tensor([0, 0, 1]), torch.tensor([[2.0, 0.0]]), torch.tensor([1])
    sharp = knn_eval(train, train_y, test, test_y, num_classes=2, ks=(3,), temperature=0.07)
    flat = knn_eval(train, train_y, test, test_y, num_classes=2, ks=(3,), temperature=1.0)
    assert sharp[3]["top1"] == 100.0 and flat[3]["top1"] == 0.0
    assert knn_eval(train, train_y, test, test_y, num_classes=2, ks=(1,))[1]["top1"] == 100.0


def test_k_beyond_the_training_set_is_clipped_with_a_note(data):
    train, train_y, test, test_y = data
    with pytest.warns(ProbeWarning, match="k = 5000 exceeds the 700 training items"):
        got = knn_eval(train, train_y, test, test_y, num_classes=6, ks=(5000,))
    want = brute_force(train, train_y, test, test_y, k=700, temperature=0.07, num_classes=6)
    assert got[5000] == pytest.approx(want)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: {
                **a,
                "train_feats": a["train_feats"][:0],
                "train_labels": a["train_labels"][:0],
            },
            "empty",
        ),
        (lambda a: {**a, "test_labels": a["test_labels"][:-1]}, "150 feature rows but 149 labels"),
        (lambda a: {**a, "train_labels": torch.zeros_like(a["train_labels"])}, "single class"),
        (lambda a: {**a, "test_feats": a["test_feats"][:, :16]}, "32-d but test features 16-d"),
        (lambda a: {**a, "ks": (0, 10)}, "ks must be positive"),
        (lambda a: {**a, "num_classes": 4}, r"outside \[0, 3\]"),
    ],
)
def test_bad_inputs_are_probe_errors(data, change, message):
    train, train_y, test, test_y = data
    args = dict(
        train_feats=train, train_labels=train_y, test_feats=test, test_labels=test_y, num_classes=6
    )
    with pytest.raises(ProbeError, match=message):
        knn_eval(**change(args))
