"""Synthetic datasets written in real on-disk layouts, so offline runs take the users' code path.

``generate_clevr`` writes the CLEVR_v1.0 layout (plus depth maps); ``generate_classes`` writes an
ImageFolder of procedurally rendered classes; ``as_places205`` and ``as_inat18`` write an
ImageFolder again in the Places205 and iNaturalist 2018 release layouts. Names resolve lazily:
the ``data synth-*`` commands need neither torch nor the dataset adapters.
"""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.data.synth.classes": ("generate_classes",),
        "ijepa_eval.data.synth.clevr": ("generate_clevr",),
        "ijepa_eval.data.synth.layouts": ("as_inat18", "as_places205"),
    },
)
