"""The probe contract: what every probe declares, receives and returns.

A probe is one class in one module of this package (or any importable module, named in a task
YAML as ``type: package.module:Class``). It declares

- ``name``: the ``probe.type`` task YAMLs use;
- ``Config``: a frozen dataclass of its parameters; `Probe.parse` builds it from the task's
  ``params`` and the user's ``-p`` overrides, checking every key and type before any work;
- ``inputs``: ``"pooled"`` (per representation, the ``(N, D)`` mean of patch tokens),
  ``"tokens"`` (memory-mapped patch tokens ``(N, L, T, D)`` of the representation's L blocks) or
  ``"images"`` (no features: each part's ``x`` is the dataset itself, untransformed, and
  `ProbeInputs.encoder` the encoder, for a probe that trains it: fine-tuning);
- ``targets``: ``"classes"`` (int64 labels) or ``"depth"`` (``(N, H, W)`` maps in metres);
- ``selects``: whether it chooses hyper-parameters on a selection split (k-NN does not);
- ``sweepable``: whether the layer sweep can run it one block at a time;
- ``trains_on_views``: whether it trains on cached augmented views (`Part.views`), so a task
  may declare ``views:`` for it;
- ``reports``: the metrics ``run`` returns, when they do not depend on the config (else
  `Probe.metric_names` says), so a task asking for others fails before any work;

and implements ``run(inputs, config, device) -> ProbeResult``. The evaluation pipeline
(`ijepa_eval.tasks.pipeline`) does everything else the same way for every probe: the splits,
the held-out selection part (stratified and seeded), extraction through the cache, k-shot draws,
the run record and the per-item predictions file.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ijepa_eval.probes.common import ProbeError
from ijepa_eval.registry import Registry
from ijepa_eval.schema import build, unknown_key


@dataclass
class Part:
    """One split as a probe sees it: features ``x`` and targets ``y``, row-aligned.

    ``x`` is ``{representation: (N, D) tensor}`` for pooled inputs, or an indexable token source
    (rows → ``(B, L, T, D)``, read lazily from the cache) for token inputs. ``views``, when the
    task declares training views, is ``{representation: (N, V, D)}``: V views of each item to
    train on (``x`` is still the image as evaluated, for selection and reporting).
    """

    x: Any
    y: Any  # (N,) labels; dense (N, H, W) targets, or a row view of them (`TokenRows`)
    views: Mapping[str, Tensor] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def rows(self, index: np.ndarray) -> Part:
        """The rows ``index`` (sorted int64), without copying tokens or dense targets: a
        held-out part of 22,000 depth maps would otherwise be a second 330 MB copy."""
        from ijepa_eval.probes.attentive import TokenRows

        index = np.asarray(index, dtype=np.int64)
        picked = torch.as_tensor(index)
        if isinstance(self.x, Mapping):
            x: Any = {name: value[picked] for name, value in self.x.items()}
        else:
            x = TokenRows(self.x, index, block=None)
        dense = self.y.ndim > 1  # depth maps, read a batch of rows at a time by the probe
        y = TokenRows(self.y, index, block=None) if dense else self.y[index]
        views = None if self.views is None else {k: v[picked] for k, v in self.views.items()}
        return Part(x, y, views)


def joined(a: Part, b: Part) -> Part:
    """``a`` then ``b`` (fit then selection, for the final refit of the chosen setting)."""
    from ijepa_eval.probes.attentive import ConcatTokens

    if isinstance(a.x, Mapping):
        x: Any = {k: torch.cat([a.x[k], b.x[k].to(a.x[k].dtype)]) for k in a.x}
    else:
        x = ConcatTokens(a.x, b.x)
    if (a.views is None) != (b.views is None):
        raise ValueError("joined: both parts need training views, or neither")
    views = None if a.views is None else {k: torch.cat([a.views[k], b.views[k]]) for k in a.views}
    return Part(x, torch.cat([a.y, b.y]), views)


@dataclass
class ProbeInputs:
    """Everything a probe trains and reports on, prepared by the pipeline.

    ``select`` is None when the probe does not select, or when nothing could be held out (every
    class has a single training item: the probe falls back to its default setting and says so).
    ``train`` is every labelled training item: the train split in its own order when ``select``
    was held out of it, else ``fit`` followed by the separate selection split.
    """

    fit: Part
    select: Part | None
    test: Part
    train: Part  # fit and select together, to refit the chosen setting on (dataset order)
    num_classes: int | None
    representations: tuple[str, ...]
    blocks: tuple[int, ...]
    num_heads: int  # the encoder's attention heads (the attentive probe uses as many)
    grid: tuple[int, int]  # the encoder's patch grid (the depth head reshapes tokens onto it)
    encoder: Any = None  # the encoder itself, for probes whose inputs are "images"


@dataclass
class ProbeResult:
    """One result type for every probe; the pipeline turns it into the run record.

    ``predictions`` holds per-item outputs on the reported split, row-aligned with its items:
    ``top5`` (class indices, best first) and ``target`` for classification, per-image metrics
    for depth; a probe that reports several variants prefixes their names (``k10/top5``).
    ``artifacts`` are tensors saved beside the record (the trained head's weights); ``record``
    holds sections added to the run record as they are (fine-tuning's ``finetune``: the resolved
    recipe, the world size, where the fine-tuned weights went). ``examples`` shows a few test
    items (the depth probe's maps): ``index`` (their rows in the reported split) and per item
    ``<n>/<name>`` arrays; the pipeline adds each one's input image (``<n>/image``) and saves
    them beside the record for ``ijepa-eval report`` (never scored, so never needed to trust
    a number).
    """

    metrics: dict[str, float]
    chosen: dict[str, Any] | None = None
    grid: list[dict[str, Any]] = field(default_factory=list)
    metrics_std: dict[str, float] = field(default_factory=dict)
    metrics_per_seed: dict[str, list[float]] = field(default_factory=dict)  # --seeds: each one's
    baselines: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    artifacts: dict[str, Tensor] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)


EXAMPLE_SIDE = 320  # examples' images and maps are kept at most this many pixels on a side


class Probe:
    """Base class of every probe (see the module docstring for the contract)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    inputs: ClassVar[str] = "pooled"
    targets: ClassVar[str] = "classes"
    selects: ClassVar[bool] = True
    sweepable: ClassVar[bool] = True
    trains_on_views: ClassVar[bool] = False
    reports: ClassVar[tuple[str, ...] | None] = None  # None: not known before the run

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> Any:
        """The validated ``Config``: unknown keys, wrong types and out-of-range values fail here."""
        unknown = unknown_key("parameter")
        try:
            return build(cls.Config, dict(params), unknown=unknown, error=ProbeError)
        except ProbeError as exc:
            raise ProbeError(f"{cls.name} probe: {exc}") from None

    @classmethod
    def check(cls, representations: tuple[str, ...], blocks: tuple[int, ...]) -> None:
        """Refuse representations this probe cannot read (before anything is extracted)."""

    @classmethod
    def metric_names(cls, config: Any) -> tuple[str, ...] | None:
        """The metrics `run` reports with ``config`` (None: not known in advance)."""
        return cls.reports

    @classmethod
    def parameters(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Config)]

    @classmethod
    def seed_of(cls, config: Any) -> int | None:
        """The seed that sets this probe's initialisation and batch order (``--seeds`` counts
        up from it); None for a deterministic probe, which ``--seeds`` refuses."""
        return getattr(config, "seed", None) if "seed" in cls.parameters() else None

    @classmethod
    def with_seed(cls, config: Any, seed: int) -> Any:
        """``config`` trained from ``seed`` instead (one run of ``--seeds``)."""
        return dataclasses.replace(config, seed=seed)

    def run(self, inputs: ProbeInputs, config: Any, device: str | None) -> ProbeResult:
        raise NotImplementedError


CLASSIFICATION_METRICS = ("top1", "top5", "mean_per_class_acc")


def top5(scores: Tensor) -> np.ndarray:
    """The five best classes per row (fewer when there are fewer classes), best first."""
    k = min(5, scores.shape[1])
    return scores.topk(k, dim=1).indices.to(torch.int32).numpy()


def classification_predictions(scores: Tensor, labels: Tensor) -> dict[str, np.ndarray]:
    return {"top5": top5(scores), "target": labels.to(torch.int32).numpy()}


def find_probe(name: str) -> type[Probe]:
    """The probe class for a task's ``probe.type``: a built-in name or ``module:Class``."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            probe = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ProbeError(f"probe {name!r} cannot be imported: {exc}") from None
        if not (isinstance(probe, type) and issubclass(probe, Probe)):
            raise ProbeError(f"probe {name!r} is not a subclass of ijepa_eval.probes.Probe")
        return probe
    return probe_registry().get(name)


_REGISTRY: list[Registry] = []


def probe_registry() -> Registry:
    """The built-in probes: every `Probe` subclass defined in a module of this package.

    Found by importing the package's modules once, so a new probe is one new module; no list to
    edit. A name defined twice is an error, as in every registry.
    """
    if not _REGISTRY:
        import ijepa_eval.probes as package

        registry = Registry("probe", ProbeError)
        for module in pkgutil.iter_modules(package.__path__):
            loaded = importlib.import_module(f"{package.__name__}.{module.name}")
            for value in vars(loaded).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, Probe)
                    and value.__module__ == loaded.__name__
                    and "name" in vars(value)
                ):
                    registry.register(value.name, value)
        _REGISTRY.append(registry)
    return _REGISTRY[0]
