"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A write goes to a temporary name beside its destination, then one rename puts it in place.
A killed process leaves that temporary behind; its name says who made it
(``.<name>.<host>.<pid>.<random>.tmp``), so the next process writing into the folder removes
it once its owner is gone (same host, process no longer running) or it is older than
`STALE_AFTER_S` (another host on a shared filesystem: we cannot ask it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STALE_AFTER_S = 3600.0  # our temporaries live for one write: seconds, never an hour
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_OURS = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
# names earlier versions used (mkstemp's, the record's, the feature cache's): removed by age
_LEGACY = re.compile(
    r"^(\..+\.[a-z0-9_]{8}\.tmp|\.record-[a-z0-9_]{8}\.tmp|\.tmp-\d{5}-[0-9a-f]{8})$"
)


def temp_path(dest: str | os.PathLike[str]) -> Path:
    """A fresh temporary name beside ``dest`` that says which process made it."""
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> int:
    """Remove temporaries in ``directory`` left by killed processes; how many went.

    Safe under concurrency: a temporary of a live process on this host is never touched, and
    one from elsewhere only once it is older than any write takes. It costs one listing of
    the folder, small beside the write it comes with.
    """
    directory = Path(directory)
    removed = 0
    try:
        names = [n for n in os.listdir(directory) if n.startswith(".")]
    except OSError:
        return 0
    now = time.time()
    for name in names:
        path = directory / name
        if not (_OURS.match(name) or _LEGACY.match(name)):
            continue
        try:
            age = now - path.lstat().st_mtime
        except OSError:
            continue  # gone already: another process swept it
        if age > STALE_AFTER_S or _owner_is_gone(name):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            removed += 1
    return removed


def _owner_is_gone(name: str) -> bool:
    """True if ``name`` was made by a process of this host that no longer runs."""
    match = _OURS.match(name)
    if match is None or match["host"] != _HOST:
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it runs, as another user
        return False
    return False


@contextlib.contextmanager
def _temporary(dest: Path) -> Iterator[Path]:
    """A new empty temporary file beside ``dest``, removed on the way out whatever happens."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest.parent)
    tmp = temp_path(dest)
    try:
        tmp.touch(mode=0o600, exist_ok=False)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _settle(tmp: Path) -> None:
    """On disk for good, with the mode users expect (not the 0600 it was made with)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.chmod(tmp, default_file_mode())


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` in one rename.

    On any exception the temporary file is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    with _temporary(dest) as tmp:
        yield tmp
        _settle(tmp)
        os.replace(tmp, dest)


def create_new(dest: str | os.PathLike[str], data: bytes) -> None:
    """Write ``dest`` atomically only if no file has that name; `FileExistsError` otherwise.

    The file appears complete (a hard link to a finished temporary), never half-written, and
    of two writers racing for one name only one wins.
    """
    dest = Path(dest)
    with _temporary(dest) as tmp:
        tmp.write_bytes(data)
        _settle(tmp)
        os.link(tmp, dest)


def default_file_mode() -> int:
    """What ``open(path, "w")`` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text(dest: str | os.PathLike[str], text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")
