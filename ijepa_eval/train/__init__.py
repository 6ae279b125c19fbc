"""The bundled I-JEPA trainer: multi-block masks, predictor, EMA loop, torchrun DDP.

``pretrain(load_config("vit_tiny_synth", ["data.root=..."]))`` trains and writes checkpoints in
the official layout, which `ijepa_eval.load_encoder` and facebookresearch/ijepa both read.
"""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.train.checkpoint": ("export_encoder",),
        "ijepa_eval.train.config": ("PretrainConfig", "load_config"),
        "ijepa_eval.train.masks": ("MaskConfig", "MultiBlockMasks"),
        "ijepa_eval.train.predictor": ("Predictor",),
        "ijepa_eval.train.trainer": ("pretrain",),
    },
)
