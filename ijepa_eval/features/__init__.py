"""Frozen features: extracted once, cached by content, read by every task."""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.features.extract": ("extract",),
        "ijepa_eval.features.spec": ("FeatureSpec",),
        "ijepa_eval.features.store": ("FeatureSet", "FeatureStore"),
    },
)
