"""``ijepa-eval cache …``: list, verify and remove feature-cache entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ijepa_eval.cli_options import CacheDirOption
from ijepa_eval.errors import UserError

cache_app = typer.Typer(help="List, verify and remove cached features.", no_args_is_help=True)
console = Console()


def _store(cache_dir: Path | None):
    from ijepa_eval.features.store import FeatureStore

    return FeatureStore(cache_dir)


def _size(num: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num < 1024:
            return f"{num:,.0f} {unit}" if unit == "B" else f"{num:,.1f} {unit}"
        num /= 1024
    return f"{num:,.1f} TB"


@cache_app.command("ls")
def ls(cache_dir: CacheDirOption = None) -> None:
    """One row per entry: key, model, dataset, split, layers, size, created."""
    entries = _store(cache_dir).entries()
    table = Table(title=f"feature cache: {_store(cache_dir).root}", title_justify="left")
    for column in ("key", "model", "data", "items", "blocks", "size", "created", "state"):
        table.add_column(column, no_wrap=column in ("key", "created", "size"))
    for e in entries:
        fields = e.meta.get("key_fields", {})
        data = fields.get("dataset", {})
        missing = len(e.missing_shards())
        tokens = "" if e.spec.tokens == "none" else f" +{e.spec.tokens} tokens"
        table.add_row(
            e.short_key,
            f"{fields.get('arch', '?')} {fields.get('network', '?')}",
            f"{e.meta.get('made_from', {}).get('adapter', '?')}:{data.get('split', '?')}",
            f"{e.num_items:,}",
            ",".join(map(str, e.spec.layers)) + tokens,
            _size(e.size_bytes()),
            e.meta.get("created", "?")[5:16].replace("T", " "),
            "done" if e.complete else f"{missing} left",
        )
    console.print(table if entries else "the feature cache is empty")


@cache_app.command("verify")
def verify(
    key: Annotated[str | None, typer.Argument(help="Entry key (prefix); all if omitted.")] = None,  # noqa: UP045
    cache_dir: CacheDirOption = None,
) -> None:
    """Re-hash every shard file against the manifest; exit 1 if anything is off."""
    store = _store(cache_dir)
    entries = [store.get(key)] if key else store.entries()
    problems = [p for e in entries for p in e.verify()]
    for problem in problems:
        console.print(f"[red]✗[/] {problem}", highlight=False)
    if problems:
        raise UserError(f"{len(problems)} problem(s) in the feature cache; `cache rm` the entries")
    console.print(f"[green]✓[/] {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} verified")


@cache_app.command("rm")
def rm(
    key: Annotated[Optional[str], typer.Argument(help="Entry key (prefix) to remove.")] = None,  # noqa: UP045
    older_than: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--older-than", help="Remove entries created more than DAYS ago."),
    ] = None,
    cache_dir: CacheDirOption = None,
) -> None:
    """Remove one entry, or every entry older than --older-than DAYS."""
    store = _store(cache_dir)
    if (key is None) == (older_than is None):
        raise UserError("give an entry KEY or --older-than DAYS (one of them)")
    if key is not None:
        doomed = [store.get(key)]
    else:
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=older_than)
        doomed = [
            e for e in store.entries() if dt.datetime.fromisoformat(e.meta["created"]) < cutoff
        ]
    for entry in doomed:
        store.remove(entry)
        console.print(f"removed {entry.key}", highlight=False)
    if not doomed:
        console.print("nothing to remove")
