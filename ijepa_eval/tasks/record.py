"""The run record: one JSON file per run, with everything needed to trust and redo it.

Written atomically under ``<results>/runs/<task>/<run_id>.json``: the file appears by a hard
link from a finished temporary file, which fails rather than overwrite another run.
A failed write raises; it is never a logged warning.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ijepa_eval.atomic import default_file_mode
from ijepa_eval.errors import UserError

SCHEMA = "ijepa-eval/run/1"


def environment(device: str) -> dict[str, Any]:
    import timm
    import torch

    from ijepa_eval import __version__

    return {
        "ijepa_eval": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
        "device": device,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def git_commit() -> str | None:
    """The harness's own commit (with ``-dirty`` for local changes), or None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_record(record: dict[str, Any], results_dir: str | os.PathLike[str], run_id: str) -> Path:
    """Write ``record`` as ``runs/<task>/<run_id>.json``; never replaces an existing file."""
    folder = Path(results_dir) / "runs" / record["task"]
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, default=_jsonable) + "\n"
    dest = folder / f"{run_id}.json"
    fd, tmp = tempfile.mkstemp(prefix=".record-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.link(tmp, dest)  # appears complete, and only if the name is free
    except FileExistsError:
        raise UserError(f"run record {dest} already exists; not overwriting it") from None
    finally:
        os.unlink(tmp)
    return dest


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record a {type(value).__name__}")
