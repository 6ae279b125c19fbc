"""Results: read run records back into leaderboards, charts, CI regression checks and reports."""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.results.check": ("CheckReport", "Comparison", "check"),
        "ijepa_eval.results.leaderboard": (
            "Leaderboard",
            "build_leaderboard",
            "headline",
            "leaderboard",
            "to_csv",
            "to_markdown",
            "write_leaderboard",
        ),
        "ijepa_eval.results.layout": ("Section", "sections"),
        "ijepa_eval.results.load": ("RecordWarning", "load_records", "newest"),
        "ijepa_eval.results.terminal": ("to_text",),
        "ijepa_eval.tasks.record": ("RunRecord",),
        "ijepa_eval.plots": ("plot_leaderboard",),
        "ijepa_eval.results.report": ("render_report", "write_report"),
        "ijepa_eval.results.model_card": ("write_model_card",),
        "ijepa_eval.results.reference": ("ReferenceRow", "load_references"),
    },
)
