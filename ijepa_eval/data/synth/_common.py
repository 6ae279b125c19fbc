"""What both generators share: argument checks, the resume manifest, PNG bytes and a worker pool."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ijepa_eval.atomic import write_bytes, write_json
from ijepa_eval.errors import DataError

T = TypeVar("T")
R = TypeVar("R")

MANIFEST = ".ijepa-eval-synth.json"


def check_args(out: str | os.PathLike[str], size: int, seed: int, counts: dict[str, int]) -> Path:
    """Reject user mistakes with one line saying what to do; return ``out`` as a Path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder (new or from an earlier run).")
    if size < 16:
        raise DataError(f"--size {size} is too small; use 16 pixels or more.")
    if seed < 0:
        raise DataError(f"--seed {seed} is negative; use 0 or more.")
    for name, n in counts.items():
        if n < 0:
            raise DataError(f"--{name} {n} is negative; give a count of 0 or more.")
    return out


def claim(out: Path, params: dict[str, Any]) -> None:
    """Record the parameters in ``out``; refuse to mix two different generations in one folder.

    A rerun with the same parameters resumes (files already written are kept); anything that
    changes the pixels (generator, version, seed, size) must go to a fresh folder.
    """
    manifest = out / MANIFEST
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != params:
            diff = ", ".join(f"{k}={old.get(k)!r}" for k in params if old.get(k) != params[k])
            raise DataError(
                f"{out} holds a different generation ({diff}); use a new --out or delete it."
            )
    elif out.exists() and any(p.name != MANIFEST for p in out.iterdir()):
        raise DataError(
            f"{out} is not empty and was not written by this generator; use a new --out."
        )
    else:
        write_json(manifest, params)


def refuse_extra(folder: Path, expected: set[str], option: str) -> None:
    """Stop a rerun that asks for fewer images than ``folder`` already holds.

    The leftovers would join the dataset (or break its scenes file), so say so instead.
    """
    if not folder.is_dir():
        return
    extra = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".png"))
    extra = [name for name in extra if name not in expected]
    if extra:
        raise DataError(
            f"{folder} already holds {len(extra)} image(s) beyond what {option} asks for "
            f"(e.g. {extra[-1]}); ask for at least as many or use a new --out."
        )


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode uint8 RGB or uint16 grey pixels as PNG (deterministic for equal pixels)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_once(path: Path, data: bytes) -> None:
    """Atomically write ``data`` unless ``path`` already exists (a resumed run)."""
    if not path.exists():
        write_bytes(path, data)


def link_once(src: Path, dest: Path) -> None:
    """Make ``dest`` the same file as ``src`` (hard link, else atomic copy) unless it exists."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except FileExistsError:
        pass
    except OSError:  # a filesystem without hard links
        write_bytes(dest, src.read_bytes())


def default_workers(jobs: int) -> int:
    """Processes worth starting: one per core, none for small jobs (start-up would dominate)."""
    return 1 if jobs < 64 else max(1, min(os.cpu_count() or 1, 8))


def run_jobs(
    fn: Callable[[T], R], jobs: Iterable[T], total: int, workers: int, what: str, progress: bool
) -> Iterator[R]:
    """``map(fn, jobs)`` in order, over ``workers`` processes, with a rich progress bar."""
    bar = Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not progress,
        transient=False,
    )
    with bar:
        task = bar.add_task(what, total=total)
        if workers <= 1:
            results: Iterable[R] = map(fn, jobs)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(fn, jobs, chunksize=8)
        try:
            for r in results:
                bar.advance(task)
                yield r
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
