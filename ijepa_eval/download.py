"""Resumable, checksummed downloads into the cache.

Bytes go to ``<dest>.part``; an interrupted download continues from there with an HTTP Range
request, and the file takes its final name only after its sha256 (when known) matches.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ijepa_eval.errors import UserError
from ijepa_eval.hashing import digest_file

_CHUNK = 1 << 20


def download(url: str, dest: Path, sha256: str | None = None, *, quiet: bool = False) -> Path:
    """Fetch ``url`` to ``dest`` unless it is already there; return ``dest``."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:  # the server ignored Range: start over
                have = 0
            total = response.length + have if response.length is not None else None
            with open(part, "ab" if have else "wb") as out, _progress(quiet) as bar:
                task = bar.add_task(dest.name, total=total, completed=have)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
            if total is not None and part.stat().st_size < total:
                raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # Range past the end: the .part is already complete
            pass
        else:
            raise UserError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        kept = part.stat().st_size if part.exists() else 0
        resume = (
            f"{kept} bytes are kept in {part}: rerun to resume" if kept else "check the network"
        )
        raise UserError(
            f"download of {url} failed ({reason}); {resume}, or download the file yourself and "
            "pass its local path"
        ) from exc
    if sha256:
        got = digest_file(part)
        if got != sha256:
            part.unlink()
            raise UserError(
                f"{url}: sha256 {got} does not match the expected {sha256}; "
                "the download was removed, rerun to fetch it again"
            )
    os.replace(part, dest)
    return dest


def _progress(quiet: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
        transient=True,
    )
