"""Task specs: one YAML file per benchmark task, read into frozen dataclasses.

A spec names the dataset and its splits, the representations and the probe with its grid, the
metrics (each with its direction), and a ``protocol:`` note that cites the setting it follows
and every deviation. ``include: other.yaml`` takes another file as the base and overrides it.
Unknown or misspelt fields are errors that name the field and suggest the closest one.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ijepa_eval.errors import UserError
from ijepa_eval.schema import bounded, build, did_you_mean
from ijepa_eval.yaml_file import read_yaml

REPRESENTATIONS = ("lastPOOL", "concatPOOL4", "linear", "linear4", "block<N>")
_BLOCK = re.compile(r"block(\d+)")


def blocks_of(representation: str, depth: int) -> list[int]:
    """The blocks whose pooled outputs make up a representation (concatenated in this order).

    lastPOOL: the last block; concatPOOL4: the last four (fewer in a shallower encoder);
    ``block<N>``: block N alone (the layer sweep). For dense probes, ``linear`` is the last
    block's tokens and ``linear4`` four evenly spaced blocks' (DINOv2's depth heads).
    """
    if representation in ("lastPOOL", "linear"):
        return [depth - 1]
    if representation == "linear4":
        return sorted({round((i + 1) * depth / 4) - 1 for i in range(4)})
    if representation == "concatPOOL4":
        return list(range(max(0, depth - 4), depth))
    match = _BLOCK.fullmatch(representation)
    if match is None:
        raise UserError(f"unknown representation {representation!r}; use {REPRESENTATIONS}")
    if int(match.group(1)) >= depth:
        raise UserError(f"{representation}: the encoder has blocks 0..{depth - 1}")
    return [int(match.group(1))]


class TaskSpecError(UserError):
    """A task YAML that cannot be used as written."""


@dataclass(frozen=True)
class DataSpec:
    """Which data and which splits.

    ``select`` chooses hyper-parameters: a split name (``val200``); ``holdout``, a stratified
    ``holdout`` fraction of ``train`` carved with ``seed``; ``none`` (k-NN reports every k);
    or ``auto`` — for data with a ``test`` split, ``test`` is reported and ``val`` selects;
    otherwise ``val`` is reported and a held-out part of ``train`` selects (the ImageNet
    layout). The chosen configuration is then refit on train plus the selection data.
    """

    adapter: str | None = None  # None: any classification dataset (format from --data)
    root_key: str | None = None  # settings key of the default location (IJEPA_EVAL_DATA_<KEY>)
    train: str = "train"
    test: str | None = None  # None with select "auto": decided by the splits on disk
    select: str = "auto"
    holdout: float = bounded(0.1, gt=0, lt=1)
    seed: int = 0
    subset_file_key: str | None = None  # settings key of a SimCLR subset file (imagenet_1pct)
    shots: tuple[int, ...] = ()
    seeds: tuple[int, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreprocessSpec:
    """The task's image geometry, where its protocol is not the encoder's evaluation default.

    VISSL's CLEVR configs, which the paper ran, resize the whole frame to S×S (``resize:
    resize``): a centre crop would cut objects out and falsify the count. Unset fields keep the
    encoder's; the command line's ``--resize`` / ``--crop-pct`` / ``--interpolation`` win over
    both. Part of the cache key and of the record, through the encoder's preprocessing.
    """

    resize: Literal["crop", "resize"] | None = None
    crop_pct: float | None = bounded(None, gt=0, le=1)
    interpolation: Literal["nearest", "bilinear", "bicubic"] | None = None

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ViewsSpec:
    """Training augmentation as cached views: each view of every training image is extracted
    once (`Preprocess.view`), and the probe draws one view per image per step.

    ``none``: the image as evaluated. ``hflip``: the image and its mirror, drawn with equal
    chance: VISSL's RandomHorizontalFlip, exactly, at 2× extraction. ``random``: ``count`` seeded
    views of RandomResizedCrop + flip (VISSL's ImageNet linear-probe training transform),
    ``count``× extraction. Views are drawn for training only (the fit part, and the selection
    split when the chosen setting is refit on it); selection and the reported split always see
    the image as evaluated.
    """

    kind: Literal["none", "hflip", "random"] = "none"
    count: int = bounded(1, ge=1, le=64)  # random views per image
    seed: int = 0

    def names(self) -> tuple[str | None, ...]:
        """Each view's `Preprocess.view` (None: the image as evaluated)."""
        if self.kind == "hflip":
            return (None, "hflip")
        if self.kind == "random":
            return tuple(f"random:{self.seed}:{i}" for i in range(self.count))
        return (None,)

    def label(self) -> str:
        return {"none": "none", "hflip": "hflip"}.get(self.kind, f"random:{self.count}")


def parse_views(text: str) -> ViewsSpec:
    """``--views``: ``none``, ``hflip``, or ``random:K`` (K seeded random views per image)."""
    kind, _, count = text.partition(":")
    if kind in ("none", "hflip") and not count:
        return ViewsSpec(kind)
    if kind == "random" and count.isdigit() and 1 <= int(count) <= 64:
        return ViewsSpec("random", int(count))
    raise UserError(f"--views {text!r}: use none, hflip, or random:K with 1 <= K <= 64")


@dataclass(frozen=True)
class ProbeSpec:
    type: str
    representations: tuple[str, ...] = ("lastPOOL",)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: int
    description: str
    protocol: str
    dataset: DataSpec
    probe: ProbeSpec
    metrics: tuple[MetricSpec, ...]
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    views: ViewsSpec = field(default_factory=ViewsSpec)
    adaptation: Literal["frozen", "fine-tuned"] = "frozen"  # what reference rows it may sit by
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_task_file(path: str | Path) -> TaskSpec:
    """Read, resolve ``include:`` and validate one task YAML."""
    path = Path(path)
    raw = _read_with_includes(path, seen=())
    return _build(raw, path)


def _read_with_includes(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path.resolve() in seen:
        raise TaskSpecError(f"task YAML {path}: include loop through {', '.join(map(str, seen))}")
    raw = read_yaml(path, "task YAML", error=TaskSpecError)
    if not isinstance(raw, dict):
        raise TaskSpecError(f"task YAML {path} must be a mapping of fields")
    base_name = raw.pop("include", None)
    if base_name is None:
        return raw
    base = _read_with_includes(path.parent / base_name, (*seen, path.resolve()))
    return _merge(base, raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict) and key != "params"
        out[key] = _merge(base[key], value) if nested else value
    return out


def _unknown_field(key: str, known: list[str]) -> str:
    close = did_you_mean(key, known)
    hint = f" (did you mean '{close[0]}'?)" if close else f"; fields: {', '.join(known)}"
    return f"unknown field '{key}'{hint}"


def _build(raw: dict[str, Any], path: Path) -> TaskSpec:
    raw = dict(raw)
    if "source" in raw:
        raise TaskSpecError(f"task YAML {path}: 'source' is set by the loader, not the YAML")
    try:
        if isinstance(raw.get("metrics"), list) and raw["metrics"]:
            raw["metrics"] = tuple(
                build(
                    MetricSpec,
                    {"name": entry} if isinstance(entry, str) else entry,
                    prefix="metrics[].",
                    unknown=_unknown_field,
                )
                for entry in raw["metrics"]
            )
        elif "metrics" in raw:
            raise UserError("'metrics' must be a non-empty list")
        spec = build(TaskSpec, raw, unknown=_unknown_field)
    except UserError as exc:
        raise TaskSpecError(f"task YAML {path}: {exc}") from None
    unknown = [
        r
        for r in spec.probe.representations
        if r not in REPRESENTATIONS and not _BLOCK.fullmatch(r)
    ]
    if unknown:
        raise TaskSpecError(
            f"task YAML {path}: representation {unknown[0]!r}; use {', '.join(REPRESENTATIONS)}"
        )
    return dataclasses.replace(
        spec, description=spec.description.strip(), protocol=spec.protocol.strip(), source=str(path)
    )
