"""The bundled I-JEPA trainer: multi-block masks, predictor, EMA loop, torchrun DDP.

``pretrain(load_config("vit_tiny_synth", ["data.root=..."]))`` trains and writes checkpoints in
the official layout, which `ijepa_eval.load_encoder` and facebookresearch/ijepa both read.
"""

from ijepa_eval.train.checkpoint import export_encoder
from ijepa_eval.train.config import PretrainConfig, load_config
from ijepa_eval.train.masks import MaskConfig, MultiBlockMasks
from ijepa_eval.train.predictor import Predictor
from ijepa_eval.train.trainer import pretrain

__all__ = [
    "MaskConfig",
    "MultiBlockMasks",
    "Predictor",
    "PretrainConfig",
    "export_encoder",
    "load_config",
    "pretrain",
]
