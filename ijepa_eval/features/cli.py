"""``ijepa-eval cache …``: list, verify and remove feature-cache entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ijepa_eval.cli_options import CacheDirOption
from ijepa_eval.errors import UserError
from ijepa_eval.tables import Col, fitted

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
    from ijepa_eval.features.store import BrokenEntry

    store = _store(cache_dir)
    entries = store.all_entries()
    rows = []
    for e in entries:
        if isinstance(e, BrokenEntry):
            rows.append([e.short_key, *["?"] * 4, _size(e.size_bytes()), "?", e.problem])
            continue
        fields = e.meta.get("key_fields", {})
        data = fields.get("dataset", {})
        missing = len(e.missing_shards())
        tokens = "" if e.spec.tokens == "none" else f" +{e.spec.tokens} tokens"
        rows.append(
            [
                e.short_key,
                f"{fields.get('arch', '?')} {fields.get('network', '?')}",
                f"{e.meta.get('made_from', {}).get('adapter', '?')}:{data.get('split', '?')}",
                f"{e.num_items:,}",
                ",".join(map(str, e.spec.layers)) + tokens,
                _size(e.size_bytes()),
                e.meta.get("created", "?")[5:16].replace("T", " "),
                "done" if e.complete else f"{missing} left",
            ]
        )
    columns = [Col("key"), Col("model", wrap=14), Col("data", wrap=12), Col("items", right=True)]
    columns += [Col("blocks", wrap=11), Col("size", right=True), Col("created"), Col("state")]
    title = f"feature cache: {store.root}"
    table = fitted(columns, rows, console, title=title, under=[3, 6, 7])  # narrow: stacked
    console.print(table if entries else "the feature cache is empty")


@cache_app.command("verify")
def verify(
    key: Annotated[str | None, typer.Argument(help="Entry key (prefix); all if omitted.")] = None,  # noqa: UP045
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Drop what is damaged (a shard, a manifest, an unreadable entry) so the next "
            "run recomputes just that.",
        ),
    ] = False,
    cache_dir: CacheDirOption = None,
) -> None:
    """Re-read every shard file against its recorded checksum; exit 1 if anything is off."""
    from ijepa_eval.features.store import BrokenEntry

    store = _store(cache_dir)
    entries = [store.get(key)] if key else store.all_entries()
    problems = 0
    for entry in entries:
        if isinstance(entry, BrokenEntry):
            found, fix = [entry.problem], "removed it"
            if repair:
                store.remove(entry)
        elif not entry.complete:  # a killed extraction: not damage, its rerun resumes it
            missing = len(entry.missing_shards())
            line = f"  {entry.key}: incomplete, {missing} shard(s) to go"
            console.print(line, highlight=False, soft_wrap=True)
            continue
        else:
            damage = entry.damage(remember=False)
            found = [d.what for d in damage]
            if repair and damage:
                shards = entry.discard(damage)
                fix = f"dropped the manifest and {len(shards)} shard(s): the next run redoes those"
        for problem in found:
            console.print(f"[red]✗[/] {entry.key}: {problem}", highlight=False, soft_wrap=True)
        if found and repair:
            console.print(f"  [yellow]→[/] {fix}", highlight=False)
        problems += len(found)
    if problems and not repair:
        raise UserError(
            f"{problems} problem(s) in the feature cache; `ijepa-eval cache verify --repair` "
            "drops the damaged parts (or `cache rm KEY` an entry)"
        )
    console.print(
        f"[green]✓[/] {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} verified"
        + (f", {problems} problem(s) repaired" if problems else "")
    )


def _created(entry) -> dt.datetime:
    """When an entry was started; an unreadable one counts by its folder's time."""
    try:
        return dt.datetime.fromisoformat(entry.meta["created"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return dt.datetime.fromtimestamp(entry.dir.stat().st_mtime, dt.timezone.utc)


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
        doomed = [e for e in store.all_entries() if _created(e) < cutoff]
    for entry in doomed:
        store.remove(entry)
        console.print(f"removed {entry.key}", highlight=False)
    if not doomed:
        console.print("nothing to remove")
