"""Frozen features: extracted once, cached by content, read by every task."""

from ijepa_eval.features.extract import extract
from ijepa_eval.features.spec import FeatureSpec
from ijepa_eval.features.store import FeatureSet, FeatureStore

__all__ = ["FeatureSet", "FeatureSpec", "FeatureStore", "extract"]
