"""`load_dataset`: one entry point for every dataset format, and the adapter registry.

An adapter is a class (or any callable) taking ``root``, ``split`` and keyword options and
returning an `EvalDataset`; an ``available_splits(root, **opts)`` classmethod lets ``data info``
list its splits. Register your own with `register_dataset` — no fork needed.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ijepa_eval.errors import DataError
from ijepa_eval.registry import Registry

if TYPE_CHECKING:
    from ijepa_eval.data.base import EvalDataset

DATASETS = Registry("dataset", DataError)
for _name, _entry in {
    "imagefolder": "ijepa_eval.data.imagefolder:ImageFolder",
    "hf": "ijepa_eval.data.hf:HFDataset",
    "cifar10": "ijepa_eval.data.cifar:Cifar10",
    "cifar100": "ijepa_eval.data.cifar:Cifar100",
    "clevr_count": "ijepa_eval.data.clevr:ClevrCount",
    "clevr_dist": "ijepa_eval.data.clevr:ClevrDist",
    "places205": "ijepa_eval.data.places:Places205",
    "inat18": "ijepa_eval.data.inat:INat18",
    "nyu_depth_v2": "ijepa_eval.data.depth:NyuDepthV2",
    "depth_folder": "ijepa_eval.data.depth:DepthFolder",
}.items():
    DATASETS.register(_name, _entry)

# Options every adapter takes (handled by EvalDataset) or that load_dataset applies afterwards.
_COMMON = {"transform", "target_transform", "skip_bad_images"}


def register_dataset(name: str, factory: Callable[..., Any] | str) -> None:
    """Make ``load_dataset(name, ...)`` call ``factory(root=..., split=..., **opts)``.

    ``factory`` may be a ``"module:attribute"`` string, imported on first use.
    """
    DATASETS.register(name, factory)


def dataset_names() -> list[str]:
    return DATASETS.names()


def load_dataset(
    name: str,
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    subset_file: str | os.PathLike[str] | None = None,
    shots: int | None = None,
    seed: int | None = None,
    **opts: Any,
) -> EvalDataset:
    """Open split ``split`` of dataset ``root`` with adapter ``name``.

    ``opts`` go to the adapter (``transform``, ``target_transform``, ``skip_bad_images`` for all;
    adapter ones such as ``image_column``). ``subset_file`` keeps the images a SimCLR-format list
    names; ``shots`` keeps that many per class, drawn with ``seed`` (required with ``shots``).
    """
    factory = DATASETS.get(name)
    _check_options(name, factory, opts)
    if subset_file is not None and shots is not None:
        raise DataError("give either subset_file or shots, not both")
    if shots is not None and seed is None:
        raise DataError("a k-shot draw needs an explicit seed (seed=0, --seed 0)")
    ds = factory(root=root, split=split, **opts)
    if subset_file is not None or shots is not None:
        from ijepa_eval.data import subsets

        if subset_file is not None:
            ds = subsets.apply_subset_file(ds, subset_file)
        else:
            ds = subsets.draw_k_shot(ds, shots, seed)
    return ds


def available_splits(name: str, root: str | os.PathLike[str], **opts: Any) -> list[str]:
    """The splits ``root`` holds for adapter ``name`` (empty if the adapter cannot tell)."""
    factory = DATASETS.get(name)
    lister = getattr(factory, "available_splits", None)
    if lister is None:
        return []
    params = inspect.signature(lister).parameters
    return lister(root, **{k: v for k, v in opts.items() if k in params})


def _check_options(name: str, factory: Any, opts: dict[str, Any]) -> None:
    """Unknown options are the user's typo: say which ones the adapter takes."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()) and not isinstance(factory, type):
        return
    taken = {k for k, p in params.items() if p.kind is not p.VAR_KEYWORD} - {"root", "split"}
    unknown = sorted(set(opts) - taken - _COMMON)
    if unknown:
        options = ", ".join(sorted(taken | _COMMON))
        raise DataError(
            f"dataset {name!r} takes no option {', '.join(unknown)}; it takes: {options}"
        )
