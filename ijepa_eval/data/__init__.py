"""Datasets in their real on-disk formats, behind one entry point.

    from ijepa_eval.data import load_dataset
    ds = load_dataset("clevr_count", root="CLEVR_v1.0", split="train800")
    image, target = ds[0]; ds.num_classes; ds.fingerprint()

Adapters: imagefolder, hf, cifar10, cifar100, clevr_count, clevr_dist, places205, inat18,
nyu_depth_v2, depth_folder (see `ijepa_eval.data.load`). Names resolve lazily, so importing
this package (the CLI does on every start) imports neither torch nor `datasets`.
"""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.data.load": (
            "load_dataset",
            "register_dataset",
            "dataset_names",
            "available_splits",
        ),
        "ijepa_eval.data.base": ("EvalDataset", "open_image"),
        "ijepa_eval.data.subsets": ("apply_subset_file", "draw_k_shot", "save_file_list"),
        "ijepa_eval.data.spec": ("parse_spec",),
    },
)
