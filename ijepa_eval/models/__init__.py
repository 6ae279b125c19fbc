"""Loading I-JEPA encoders from every source into one implementation."""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.models.arch": ("VitArch",),
        "ijepa_eval.models.info": ("EncoderInfo",),
        "ijepa_eval.models.loading": ("SourceWarning", "inspect_checkpoint", "load_encoder"),
        "ijepa_eval.models.vit": ("Encoder",),
    },
)
