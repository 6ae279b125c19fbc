"""ijepa-eval: trustworthy, reproducible evaluation of pretrained I-JEPA encoders."""

from ijepa_eval.lazy import lazy_exports

__version__ = "0.1.0"

_all = lazy_exports(
    __name__,
    {
        "ijepa_eval.data": ("load_dataset",),
        "ijepa_eval.errors": ("CheckpointError", "DataError", "UserError"),
        "ijepa_eval.features": ("FeatureSet", "extract"),
        "ijepa_eval.models": ("Encoder", "EncoderInfo", "inspect_checkpoint", "load_encoder"),
        "ijepa_eval.preprocess": ("Preprocess",),
        "ijepa_eval.tasks": ("ExtractOptions", "RunRecord", "curve", "evaluate", "sweep"),
    },
)
__all__ = [*_all, "__version__"]
