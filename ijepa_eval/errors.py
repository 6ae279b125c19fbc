"""Errors that are the user's to fix.

A `UserError` carries one line that says what is wrong and what to do. The CLI prints it without
a traceback (``--debug`` shows one); library callers can catch it like any exception.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator


class UserError(Exception):
    """A problem with the user's input (a path, a spec, a file), not a bug in ijepa-eval."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


class DataError(UserError):
    """A dataset that is missing, malformed, or does not match its description."""


class DataWarning(UserWarning):
    """Something about a dataset that was worked around (a folder left out, say)."""


class CacheWarning(UserWarning):
    """Damage found in the feature cache, and what was recomputed in its place."""


@contextlib.contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """Catch every warning raised inside (each occurrence, not once per place) as text; the
    list is filled when the block ends.

    The one way warnings reach the user: commands print them, run records keep them as notes.
    """
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield messages
        finally:  # filled on the way out, also when the block fails
            messages.extend(str(w.message) for w in caught)


@contextlib.contextmanager
def writing(what: str, dest: str | os.PathLike[str], then: str = "") -> Iterator[None]:
    """Turn a write the system refuses (a full disk, a read-only folder, a file where a folder
    should be) into one `UserError` saying what could not be written and where; ``then`` adds
    what was kept and what to do."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"could not write {what} to {dest}: {exc.strerror or exc}{then}") from exc
