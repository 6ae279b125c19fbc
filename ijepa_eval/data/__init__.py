"""Datasets in their real on-disk formats, behind one entry point.

    from ijepa_eval.data import load_dataset
    ds = load_dataset("clevr_count", root="CLEVR_v1.0", split="train800")
    image, target = ds[0]; ds.num_classes; ds.fingerprint()

Adapters: imagefolder, hf, cifar10, cifar100, clevr_count, clevr_dist, nyu_depth_v2,
depth_folder (see `ijepa_eval.data.load`). Names resolve lazily, so importing this package (the
CLI does on every start) imports neither torch nor `datasets`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_dataset": "ijepa_eval.data.load",
    "register_dataset": "ijepa_eval.data.load",
    "dataset_names": "ijepa_eval.data.load",
    "available_splits": "ijepa_eval.data.load",
    "EvalDataset": "ijepa_eval.data.base",
    "apply_subset_file": "ijepa_eval.data.subsets",
    "draw_k_shot": "ijepa_eval.data.subsets",
    "save_file_list": "ijepa_eval.data.subsets",
    "parse_spec": "ijepa_eval.data.spec",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
