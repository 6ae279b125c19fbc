"""Label-free health of a representation: has this checkpoint collapsed?

Three numbers from pooled features alone, no labels and no probe:

- ``rankme``: the effective rank of the ``(N, D)`` feature matrix (Garrido et al., ICML 2023,
  "RankMe"): with singular values σ, ``p_k = σ_k / Σσ + ε`` and ``RankMe = exp(−Σ p_k log p_k)``
  (ε = 1e-7, no centring, as in the paper). About 1 when every row is the same vector (complete
  collapse), close to ``min(N, D)`` for isotropic features;
- ``near_constant_dims``: the fraction of the D coordinates whose standard deviation over the rows
  is at most `NEAR_CONSTANT` (1%) of the mean standard deviation over coordinates (every
  coordinate, 1.0, when all rows are equal): dimensional collapse shows here before accuracy falls;
- ``mean_norm``: the mean L2 norm of the rows (a norm drifting to 0 or exploding is a warning).

At most `MAX_ROWS` rows (25,600, RankMe's own sample size on ImageNet) enter: a larger set is
sampled without replacement, seeded (`SEED`), which caps the SVD's cost; the result says how many
rows were used of how many.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from ijepa_eval.features.store import FeatureSet

MAX_ROWS = 25_600
SEED = 0
EPS = 1e-7
NEAR_CONSTANT = 0.01  # a coordinate whose std is at most 1% of the mean std is near-constant


def rankme(features: torch.Tensor | np.ndarray) -> float:
    """The effective rank of ``features`` ``(N, D)`` (see the module doc)."""
    x = torch.as_tensor(features).to(torch.float64)
    if x.ndim != 2 or min(x.shape) == 0:
        raise ValueError(f"rankme needs a non-empty (N, D) matrix, not shape {tuple(x.shape)}")
    # σ² are the eigenvalues of the smaller Gram matrix: in float64 the zero ones come out below
    # 1e-8 σ_max (under ε), and it costs N·D² rather than an SVD's several times that
    gram = x.T @ x if x.shape[0] >= x.shape[1] else x @ x.T
    sigma = torch.linalg.eigvalsh(gram).clamp(min=0).sqrt()
    total = float(sigma.sum())
    if total == 0.0:  # every row is zero: nothing spans anything
        return 1.0
    p = sigma / total + EPS
    return float(torch.exp(-(p * torch.log(p)).sum()))


def health(
    features: torch.Tensor | np.ndarray, *, max_rows: int = MAX_ROWS, seed: int = SEED
) -> dict[str, Any]:
    """``rankme``, ``near_constant_dims`` and ``mean_norm`` of ``features`` ``(N, D)``, with the
    rows used (``rows`` of ``of_rows``, a seeded sample when more than ``max_rows``) and ``dim``."""
    x = torch.as_tensor(features)
    if x.ndim != 2 or min(x.shape) == 0:
        raise ValueError(f"health needs a non-empty (N, D) matrix, not shape {tuple(x.shape)}")
    total = x.shape[0]
    sampled = total > max_rows
    if sampled:
        rows = np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))
        x = x[torch.from_numpy(rows)]
    x = x.to(torch.float64)
    std = x.std(dim=0, unbiased=False)
    near_constant = float((std <= NEAR_CONSTANT * std.mean()).double().mean())
    out = {
        "rankme": round(rankme(x), 4),
        "near_constant_dims": round(near_constant, 4),
        "mean_norm": round(float(x.norm(dim=1).mean()), 4),
        "rows": int(x.shape[0]),
        "of_rows": int(total),
        "dim": int(x.shape[1]),
    }
    if sampled:
        out["sample_seed"] = seed
    if not all(math.isfinite(out[k]) for k in ("rankme", "near_constant_dims", "mean_norm")):
        raise ValueError("health: the features hold a NaN or an infinity")
    return out


def feature_health(features: FeatureSet, split: str, *, block: int | None = None) -> dict[str, Any]:
    """`health` of a cached feature set's pooled features (lastPOOL: the last of its blocks, or
    ``block``), saying which split and block it read."""
    layers = list(features.layers)
    block = layers[-1] if block is None else block
    pooled = features.pooled()[:, layers.index(block)]
    return {**health(pooled), "split": split, "block": block, "pooled": "mean of patch tokens"}


def encoder_health(encoder: Any, dataset: Any, **extract_options: Any) -> dict[str, Any]:
    """`health` of ``encoder``'s lastPOOL features of ``dataset``, extracted through the cache
    (``extract_options``: `ijepa_eval.extract`'s ``cache_dir``, ``batch_size``, ``workers``,
    ``refresh``, ``progress``); what ``ijepa-eval info --health`` prints."""
    from ijepa_eval.features import extract

    features = extract(encoder, dataset, layers="last", tokens="none", **extract_options)
    return {**feature_health(features, dataset.split), "cache_hit": features.hit}


__all__ = ["MAX_ROWS", "NEAR_CONSTANT", "encoder_health", "feature_health", "health", "rankme"]
