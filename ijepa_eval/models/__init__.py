"""Loading I-JEPA encoders from every source into one implementation."""

from ijepa_eval.models.arch import VitArch
from ijepa_eval.models.info import EncoderInfo
from ijepa_eval.models.loading import SourceWarning, inspect_checkpoint, load_encoder
from ijepa_eval.models.vit import Encoder

__all__ = [
    "Encoder",
    "EncoderInfo",
    "SourceWarning",
    "VitArch",
    "inspect_checkpoint",
    "load_encoder",
]
