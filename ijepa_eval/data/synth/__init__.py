"""Synthetic datasets written in real on-disk layouts, so offline runs take the users' code path.

``generate_clevr`` writes the CLEVR_v1.0 layout (plus depth maps); ``generate_classes`` writes an
ImageFolder of procedurally rendered classes.
"""

from ijepa_eval.data.synth.classes import generate_classes
from ijepa_eval.data.synth.clevr import generate_clevr

__all__ = ["generate_classes", "generate_clevr"]
