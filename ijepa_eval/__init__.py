"""ijepa-eval: trustworthy, reproducible evaluation of pretrained I-JEPA encoders."""

from ijepa_eval.errors import CheckpointError, DataError, UserError
from ijepa_eval.models import Encoder, EncoderInfo, inspect_checkpoint, load_encoder
from ijepa_eval.preprocess import Preprocess

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataError",
    "Encoder",
    "EncoderInfo",
    "Preprocess",
    "UserError",
    "__version__",
    "inspect_checkpoint",
    "load_encoder",
]
