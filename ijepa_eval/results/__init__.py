"""Results: read run records back into leaderboards, charts and CI regression checks."""

from ijepa_eval.results.check import CheckReport, Comparison, check
from ijepa_eval.results.leaderboard import (
    Leaderboard,
    build_leaderboard,
    leaderboard,
    to_csv,
    to_markdown,
    write_leaderboard,
)
from ijepa_eval.results.load import Record, RecordWarning, load_records, newest
from ijepa_eval.results.plot import plot_leaderboard
from ijepa_eval.results.reference import ReferenceRow, load_references

__all__ = [
    "CheckReport",
    "Comparison",
    "Leaderboard",
    "Record",
    "RecordWarning",
    "ReferenceRow",
    "build_leaderboard",
    "check",
    "leaderboard",
    "load_records",
    "load_references",
    "newest",
    "plot_leaderboard",
    "to_csv",
    "to_markdown",
    "write_leaderboard",
]
