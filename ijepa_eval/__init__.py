"""ijepa-eval: trustworthy, reproducible evaluation of pretrained I-JEPA encoders."""

from ijepa_eval.data import load_dataset
from ijepa_eval.errors import CheckpointError, DataError, UserError
from ijepa_eval.features import FeatureSet, extract
from ijepa_eval.models import Encoder, EncoderInfo, inspect_checkpoint, load_encoder
from ijepa_eval.preprocess import Preprocess

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataError",
    "Encoder",
    "EncoderInfo",
    "FeatureSet",
    "Preprocess",
    "UserError",
    "__version__",
    "extract",
    "inspect_checkpoint",
    "load_dataset",
    "load_encoder",
]
