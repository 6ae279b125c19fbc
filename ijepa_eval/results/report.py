"""``ijepa-eval report``: a results folder as one HTML page that opens anywhere, offline.

The page holds everything inline (CSS; figures as ``data:`` URIs drawn by
`ijepa_eval.results.figures`), so it can be mailed, attached to a CI job or opened from a
laptop with no network. It shows:

- the headline table: each task's first metric, the newest run of each (model, task), ± half
  its 95% interval (the leaderboard's rules), with optional reference rows;
- per task and run: every metric with its interval; the hyper-parameter grid as a heat map
  (learning rate × weight decay and the other settings, or C for the logistic regression), the
  chosen cell outlined; the confusion matrix of the saved per-item predictions; for depth, the
  test images the run kept with ground truth, prediction and error; RankMe and the feature
  health; the notes; the run's provenance (checkpoint, network, preprocessing, protocol,
  data, versions);
- layer sweeps (runs a ``sweep`` wrote): the metric by block, with its interval;
- training curves: pretraining logs beside a run's checkpoint or named with ``curves``,
  fine-tuning logs the records point at, ``curve`` tables under ``<results>/curves/``.

What a record does not hold is said where it would be shown, never drawn from anything else.
The same records give the same page: nothing on it depends on the clock.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ijepa_eval import __version__, atomic
from ijepa_eval.errors import UserError, writing
from ijepa_eval.results import figures, stats
from ijepa_eval.results.layout import Section
from ijepa_eval.results.leaderboard import (
    Leaderboard,
    build_leaderboard,
    format_value,
    headline,
    headline_metric,
    notes,
    reference_numbers,
    spread,
)
from ijepa_eval.results.load import file_beside, load_records, newest, record_arrays
from ijepa_eval.results.reference import load_references
from ijepa_eval.tasks.record import RunRecord

__all__ = ["render_report", "write_report"]


def write_report(
    results: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
    curves: Sequence[str | os.PathLike[str]] = (),
    title: str = "ijepa-eval report",
) -> Path:
    """Write `render_report`'s page to ``out`` atomically; a refused write is one `UserError`."""
    page = render_report(results, reference=reference, curves=curves, title=title)
    with writing("the report", out):
        atomic.write_text(out, page)
    return Path(out)


def render_report(
    results: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
    curves: Sequence[str | os.PathLike[str]] = (),
    title: str = "ijepa-eval report",
) -> str:
    """The report of the run records under ``results`` as one HTML string (see the module doc).

    ``reference``: YAML files of published numbers, as extra headline rows. ``curves``: more
    training logs to draw: a pretraining or fine-tuning run folder (its ``log.csv``), a
    ``curve`` output folder (``curve.csv``), or either file.
    """
    records = load_records(results)
    extra = [_curve_file(p) for p in curves]  # a wrong path fails before anything is drawn
    references = load_references(reference) if reference is not None else []
    runs = sorted(
        newest(records).values(),
        key=lambda r: (r.task, r.label.lower(), r.model.network, r.model.sha256),
    )
    swept = [r for r in records if r.sweep]
    tasks = list(dict.fromkeys(r.task for r in runs))
    body = [_headline_section(headline(build_leaderboard(runs, references)))] if runs else []
    for task in tasks:
        body.append(_task_section(task, [r for r in runs if r.task == task]))
    if swept:
        body.append(_sweep_section(swept))
    body.append(_curves_section(Path(results), runs, extra))
    return PAGE.format(
        title=escape(title),
        css=CSS,
        header=_header(title, results, records, runs, tasks, swept),
        body="\n".join(body),
    )


# ---- page parts ------------------------------------------------------------------------------


def _header(
    title: str,
    results: str | os.PathLike[str],
    records: list[RunRecord],
    runs: list[RunRecord],
    tasks: list[str],
    swept: list[RunRecord],
) -> str:
    models = {r.model for r in records}
    newest_run = max(records, key=lambda r: r.order)
    links = [("headline", "Headline")] if runs else []
    links += [(f"task-{t}", t) for t in tasks]
    links += [("sweeps", "Layer sweeps")] if swept else []
    links += [("curves", "Training curves")]
    nav = " · ".join(f'<a href="#{_id(a)}">{escape(text)}</a>' for a, text in links)
    facts = (
        f"{len(runs)} run(s) of {len(models)} model(s) on {len(tasks)} task(s)"
        + (f", {len(swept)} layer-sweep run(s)" if swept else "")
        + f"; newest run {newest_run.created_at:%Y-%m-%d %H:%M} UTC"
    )
    return (
        f"<header><h1>{escape(title)}</h1><p class=sub><code>{escape(str(results))}</code> · "
        f"{escape(facts)} · written by ijepa-eval {escape(__version__)}</p>"
        f"<nav>{nav}</nav></header>"
    )


def _headline_section(board: Leaderboard) -> str:
    """The headline table, with the leaderboard's own reference numbering and notes."""
    head = "".join(f"<th>{escape(h)}</th>" for h in ("model", "network", "px", "sha256"))
    head += "".join(
        f"<th class=num>{escape(c.task)}<br><span class=metric>{escape(c.metric)} "
        f"{'↑' if c.higher_is_better else '↓'}</span></th>"
        for c in board.columns
    )
    refs = reference_numbers(board)
    rows = []
    for i, row in board.rows.iterrows():
        name = escape(row["model"])
        if i in refs:
            name += f" <span class=ref>[ref {refs[i]}]</span>"
        values = [
            format_value(board.values.at[i, c.key], spread(board, i, c.key)) for c in board.columns
        ]
        cells = "".join(f"<td class=num>{escape(v)}</td>" for v in values)
        rows.append(
            f"<tr class={row['kind']}><td>{name}</td><td>{escape(row['network'])}</td>"
            f"<td class=num>{escape(row['px'])}</td><td><code>{escape(row['sha256'])}</code></td>"
            f"{cells}</tr>"
        )
    paragraphs = [
        *notes(board, [Section(None, board)], "headline"),
        "Layer-sweep runs are shown under Layer sweeps, not here.",
    ]
    lines = [line.removeprefix("- ") for text in paragraphs for line in text.split("\n")]
    return (
        '<section id="headline"><h2>Headline results</h2>'
        f"<table class=board><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + "".join(f"<p class=note>{_code_spans(line)}</p>" for line in lines)
        + "</section>"
    )


def _code_spans(text: str) -> str:
    """``text`` escaped for HTML, its Markdown `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _task_section(task: str, runs: list[RunRecord]) -> str:
    spec = runs[-1].task_spec or {}
    version = runs[-1].task_version
    head = f"<h2>{escape(task)}" + (f" <span class=ver>v{version}</span>" if version else "")
    head += "</h2>"
    if spec.get("description"):
        head += f"<p class=desc>{escape(spec['description'])}</p>"
    return (
        f'<section id="{_id("task-" + task)}" class=task>{head}'
        + "".join(_run_article(r) for r in runs)
        + "</section>"
    )


def _run_article(record: RunRecord) -> str:
    missing: list[str] = []
    shown = [
        piece
        for piece in (
            _grid_piece(record),
            _confusion_piece(record, missing),
            _depth_piece(record, missing),
        )
        if piece is not None
    ]
    figures_html = "".join(_figure(drawn, caption) for drawn, caption in shown)
    said = "".join(f"<li>{escape(n)}</li>" for n in dict.fromkeys(record.notes))
    lacking = "".join(f"<li>{escape(m)}</li>" for m in missing)
    return (
        f"<article class=run><h3>{escape(_model_title(record))}</h3>"
        f"<p class=meta>{escape(_meta_line(record))}</p>"
        f"<div class=row><div class=side>{_metrics_table(record)}{_health(record)}"
        f"{_chosen(record)}</div><div class=figs>{figures_html}</div></div>"
        + (f"<ul class=notes><li class=h>Notes from the run</li>{said}</ul>" if said else "")
        + (f"<ul class=missing><li class=h>Not recorded</li>{lacking}</ul>" if lacking else "")
        + f"<details><summary>Provenance</summary>{_provenance(record)}</details></article>"
    )


def _figure(drawn: figures.Drawn, caption: str) -> str:
    return (
        f'<figure style="width:{drawn.width}px"><img src="{drawn.uri}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _model_title(record: RunRecord) -> str:
    model = record.model
    px = f" · {model.resolution} px" if model.resolution else ""
    return f"{record.label} · {model.network}{px} · {model.short_sha}"


def _metrics_table(record: RunRecord) -> str:
    rows = []
    for name, value in record.metrics.items():
        ci = record.metrics_ci.get(name)
        std = record.metrics_std.get(name)
        interval = f"[{format_value(ci[0])}, {format_value(ci[1])}]" if ci else ""
        spread_text = "" if std is None else f"± {format_value(std)}"
        arrow = "↑" if record.higher_is_better[name] else "↓"
        rows.append(
            f"<tr><td>{escape(name)} {arrow}</td><td class=num><b>{escape(format_value(value))}"
            f"</b></td><td class=num>{escape(interval)}</td><td class=num>{escape(spread_text)}"
            "</td></tr>"
        )
    seeds = "std over seeds" if record.metrics_per_seed else "std over draws"
    return (
        f"<table class=metrics><thead><tr><th>metric</th><th class=num>value</th>"
        f"<th class=num>95% interval</th><th class=num>{seeds if record.metrics_std else ''}"
        f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _health(record: RunRecord) -> str:
    h = record.health
    if "rankme" not in h:
        return ""
    of = min(h.get("rows", 0), h.get("dim", 0)) or "?"
    parts = [f"<b>RankMe {h['rankme']:.2f}</b> of {of} possible"]
    if "near_constant_dims" in h:
        parts.append(f"{100 * h['near_constant_dims']:.1f}% near-constant dims")
    if "mean_norm" in h:
        parts.append(f"mean feature norm {h['mean_norm']:.3f}")
    where = f"{h.get('split', '?')} split, block {h.get('block', '?')}, {h.get('rows', '?')} rows"
    return f"<p class=health>{' · '.join(parts)} <span class=dim>({escape(where)})</span></p>"


def _chosen(record: RunRecord) -> str:
    chosen = record.chosen
    if not isinstance(chosen, dict) or not chosen:
        return ""
    flat = {k: v for k, v in chosen.items() if not isinstance(v, dict)}
    if not flat:  # one per run (k-shot draws): their count says enough beside the grid
        return f"<p class=chosen>chosen per run: {len(chosen)} runs (see the grid)</p>"
    text = ", ".join(f"{k} {_value(v)}" for k, v in flat.items() if not k.startswith("val_"))
    return f"<p class=chosen><b>chosen</b> {escape(text)}</p>"


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# ---- figures from a record -----------------------------------------------------------------

SWEPT = ("lr", "C")  # the hyper-parameter along the heat map's columns
# not settings of their own: they follow from lr and the set size, or mark a diverged head
# (whose cell is left empty)
DERIVED = ("effective_lr", "steps", "diverged")


def grid_heatmap(record: RunRecord) -> tuple[figures.Heatmap, str] | None:
    """The record's grid as a heat map of its validation metric (the task's first metric where
    the grid has it): columns the lr (or C), rows every combination of the other settings that
    vary (weight decay first, always shown); None when the grid has no such rows."""
    first = headline_metric(record)
    rows = [r for r in record.grid if any(k.startswith("val_") for k in r)]
    named = [k for k in dict.fromkeys(k for r in rows for k in r) if k.startswith("val_")]
    metric = f"val_{first}" if f"val_{first}" in named else next(iter(named), None)
    swept = next((k for k in SWEPT if rows and all(k in r for r in rows)), None)
    if metric is None or swept is None:
        return None
    others = [
        k
        for k in dict.fromkeys(k for r in rows for k in r)
        if k not in (swept, *DERIVED) and not k.startswith("val_")
    ]
    varying = [k for k in others if len({json.dumps(r.get(k)) for r in rows}) > 1]
    shown = (["weight_decay"] if "weight_decay" in others else []) + [
        k for k in varying if k != "weight_decay"
    ]
    labels = list(dict.fromkeys(_setting_label(r, shown) for r in rows))
    columns = sorted({float(r[swept]) for r in rows})
    values = np.full((len(labels), len(columns)), np.nan)
    for r in rows:
        at = (labels.index(_setting_label(r, shown)), columns.index(float(r[swept])))
        values[at] = np.nan if r.get(metric) is None else r[metric]  # None: diverged
    chosen = None
    if isinstance(record.chosen, dict) and swept in record.chosen:
        label = _setting_label(record.chosen, shown)
        if label in labels and float(record.chosen[swept]) in columns:
            chosen = (labels.index(label), columns.index(float(record.chosen[swept])))
    column_label = "learning rate" if swept == "lr" else "C (inverse L2 strength)"
    heatmap = figures.Heatmap(values, columns, column_label, labels, chosen)
    return heatmap, metric.removeprefix("val_")


def _setting_label(row: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = row.get(key)
        if key == "weight_decay":
            parts.append(f"wd {_value(value)}")
        elif key == "whiten":
            parts.append("whitened" if value else "raw")
        else:
            parts.append(_value(value))
    return " · ".join(parts)


def _grid_piece(record: RunRecord) -> tuple[figures.Drawn, str] | None:
    found = grid_heatmap(record)
    if found is None:
        return None
    heatmap, metric = found
    higher = record.higher_is_better.get(metric, True)
    n = int(np.isfinite(heatmap.values).sum())
    caption = (
        f"Validation {metric} of the {n} settings trained, by {heatmap.column_label}"
        + (" × the other settings" if heatmap.rows != [""] else "")
        + ("; the outlined cell was chosen" if heatmap.chosen else "")
        + "."
    )
    return figures.grid_heatmap(heatmap, metric, higher), caption


def confusion(record: RunRecord) -> tuple[np.ndarray, list[str], str, int] | None:
    """(counts, class names, metric, runs summed) from the saved predictions: the best class
    of each test item against its target, summed over the runs (k-shot draws, probe seeds) of
    the record's first classification metric; None without predictions or classes."""
    predictions = record_arrays(record, record.predictions)
    if predictions is None:
        return None
    for metric in record.metrics:
        keys = stats.class_arrays(predictions, metric)
        if keys:
            break
    else:
        return None
    target = np.asarray(predictions["target"], dtype=np.int64)
    best = [np.asarray(predictions[k]).reshape(len(target), -1)[:, 0] for k in keys]
    names = list((record.predictions or {}).get("classes") or [])
    n = max(len(names), int(max(target.max(), *(b.max() for b in best))) + 1)
    names += [str(i) for i in range(len(names), n)]
    counts = sum(np.bincount(target * n + b, minlength=n * n) for b in best).reshape(n, n)
    return counts, names, metric, len(keys)


def _confusion_piece(record: RunRecord, missing: list[str]) -> tuple[figures.Drawn, str] | None:
    if record.predictions is None:
        if not _is_depth(record):
            missing.append(
                "per-item predictions (the record predates them), so no confusion matrix"
            )
        return None
    if file_beside(record, record.predictions) is None:
        missing.append(f"the predictions file {record.predictions.get('file')} is not beside it")
        return None
    found = confusion(record)
    if found is None:
        return None
    counts, names, metric, runs = found
    split = record.predictions.get("split", "test")
    summed = f", summed over its {runs} runs" if runs > 1 else ""
    caption = (
        f"Confusion matrix on {split} ({int(counts.sum() // runs)} items{summed}): the best "
        f"class of each item, as {metric} scores it; colour = share of the true class."
    )
    return figures.confusion_matrix(counts, names), caption


def depth_examples(record: RunRecord) -> list[figures.DepthExample] | None:
    """The test images a depth run kept, with ground truth and prediction; None if none."""
    arrays = record_arrays(record, record.examples)
    if arrays is None:
        return None
    return [
        figures.DepthExample(
            int(row),
            arrays.get(f"{n}/image"),
            arrays[f"{n}/target"],
            arrays[f"{n}/prediction"],
        )
        for n, row in enumerate(arrays["index"])
    ]


def _depth_piece(record: RunRecord, missing: list[str]) -> tuple[figures.Drawn, str] | None:
    if not _is_depth(record):
        return None
    examples = depth_examples(record)
    if examples is None:
        missing.append(
            "depth examples: this record predates them (a new depth run keeps four test "
            "images with ground truth and prediction)"
            if record.examples is None
            else f"the depth examples file {record.examples.get('file')} is not beside it"
        )
        return None
    split = record.examples.get("split", "test") if record.examples else "test"
    caption = (
        f"{len(examples)} {split} images spread over the split: ground truth and prediction "
        "at the resolution they were scored at (subsampled to at most 320 px), one depth "
        "scale for all; error on the scored pixels."
    )
    return figures.depth_examples(examples), caption


def _is_depth(record: RunRecord) -> bool:
    probe = (record.task_spec or {}).get("probe") or {}
    return probe.get("type") == "depth" or record.examples is not None


# ---- provenance ------------------------------------------------------------------------------


def _meta_line(record: RunRecord) -> str:
    """The provenance one reads first: weights, network input, code, machine, when."""
    info, env = record.model_info, record.environment
    parts = [f"sha256 {record.model.sha256[:16]}…"]
    if info.get("arch"):
        parts.append(f"{info['arch']} at {info.get('resolution', '?')} px")
    if info.get("preprocess"):
        parts.append(_preprocessing(info["preprocess"]))
    if env:
        commit = str(env.get("git_commit") or "")
        commit = (
            f" @ {commit[:12]}{'-dirty' if commit.endswith('-dirty') else ''}" if commit else ""
        )
        parts += [f"ijepa-eval {env.get('ijepa_eval', '?')}{commit}", f"torch {env.get('torch')}"]
        parts.append(str(env.get("gpu") or env.get("device")))
    parts.append(f"run {record.created_at:%Y-%m-%d %H:%M} UTC")
    return " · ".join(parts)


def _preprocessing(prep: dict[str, Any]) -> str:
    return (
        f"{prep.get('resize', '?')} {prep.get('resize_size', '?')}→{prep.get('img_size', '?')} "
        f"{prep.get('interpolation', '')}, mean {_numbers(prep.get('mean'))} "
        f"std {_numbers(prep.get('std'))}"
    )


def _numerics(key: str) -> str:
    """A cache key's ``compute_dtype`` in words."""
    if key.endswith("-weights"):
        return f"{key.removesuffix('-weights')} (the whole model cast)"
    return key if key == "float32" else f"{key} (matrix products under autocast)"


def _numbers(values: Any) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]" if values else "?"


def provenance(record: RunRecord) -> list[tuple[str, str]]:
    """What the run depended on, as (field, text) rows: checkpoint, network, preprocessing,
    protocol, data, probe, seeds, versions, timings; rows the record has nothing for are left
    out."""
    info, env, data = record.model_info, record.environment, record.data
    protocol = str((record.task_spec or {}).get("protocol") or "").strip()
    rows = [
        ("run", f"{record.run_id}, {record.created}; record {record.path or '-'}"),
        ("task", f"{record.task} v{record.task_version} ({record.schema})"),
        ("checkpoint", f"{info.get('spec', '-')} → {info.get('path', '-')}"),
        ("sha256", record.model.sha256),
        (
            "network",
            f"{info['network']} (in the file: {', '.join(info.get('networks_present') or ['?'])})",
        ),
    ]
    if info.get("arch"):
        rows.append((
            "architecture",
            f"{info['arch']}: width {info.get('embed_dim')}, depth {info.get('depth')}, "
            f"heads {info.get('num_heads')}, patch {info.get('patch_size')}, "
            f"{info.get('num_params', 0):,} parameters; pretraining epoch {info.get('epoch', '-')}",
        ))  # fmt: skip
    if info.get("resolution"):
        rows.append((
            "resolution",
            f"{info['resolution']} px (checkpoint {info.get('checkpoint_resolution', '?')} px)",
        ))  # fmt: skip
    if info.get("preprocess"):
        prep = info["preprocess"]
        rows.append(("preprocessing", f"{_preprocessing(prep)}, crop_pct {prep.get('crop_pct')}"))
    if protocol:
        rows.append(("protocol", protocol))
    if data:
        test = (data.get("datasets") or {}).get("test") or {}
        rows.append((
            "data",
            f"{data.get('adapter', '?')} at {data.get('root', '?')}; reported split "
            f"{test.get('split', '?')} ({test.get('items', '?')} items, fingerprint "
            f"{str(test.get('fingerprint') or '?')[:16]})",
        ))  # fmt: skip
    if record.features:
        entries = record.features.get("entries") or []
        hits = sum(bool(e.get("cache_hit")) for e in entries)
        dtypes = sorted({_numerics(e["compute_dtype"]) for e in entries if e.get("compute_dtype")})
        rows.append((
            "features",
            f"blocks {record.features.get('layers')}, "
            f"{', '.join(record.features.get('representations') or [])}"
            + (f", computed in {' and '.join(dtypes)}" if dtypes else "")
            + f"; {hits} of {len(entries)} cache entries were hits",
        ))  # fmt: skip
    rows += [
        (name, _compact(value))
        for name, value in (
            ("splits", record.splits),
            ("probe", record.probe_config),
            ("seeds", record.seeds),
        )
        if value
    ]
    if env:
        rows.append((
            "versions",
            f"ijepa-eval {env.get('ijepa_eval')} (commit {env.get('git_commit') or '-'}), "
            f"Python {env.get('python')}, torch {env.get('torch')}, timm {env.get('timm')}",
        ))  # fmt: skip
        gpu = f" ({env['gpu']})" if env.get("gpu") else ""
        rows.append(("machine", f"{env.get('device')}{gpu}, {env.get('platform')}"))
    if record.timings:
        rows.append(("timings", ", ".join(f"{k} {v:g}" for k, v in record.timings.items())))
    return rows


def _provenance(record: RunRecord) -> str:
    return (
        "<table class=prov>"
        + "".join(
            f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in provenance(record)
        )
        + "</table>"
    )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), default=str) if value else ""


# ---- layer sweeps ------------------------------------------------------------------------------


def _sweep_section(swept: list[RunRecord]) -> str:
    """A chart per task: its first metric by block, a line per model (the newest run of each
    block), the 95% interval as a band."""
    charts = []
    for task in sorted({r.task for r in swept}):
        latest = newest_by_block(r for r in swept if r.task == task)
        metric = headline_metric(next(iter(next(iter(latest.values())).values())))
        series, depth = [], None
        for (model, label), per_block in latest.items():
            blocks = [b for b in sorted(per_block) if metric in per_block[b].metrics]
            if not blocks:  # another task version, without that metric
                continue
            recs = [per_block[b] for b in blocks]
            cis = [r.metrics_ci.get(metric) for r in recs]
            depth = recs[-1].sweep.get("of") if recs[-1].sweep else None
            series.append(
                figures.Series(
                    f"{label} ({model.network}, {model.short_sha})",
                    blocks,
                    [r.metrics[metric] for r in recs],
                    [c[0] for c in cis] if all(cis) else None,
                    [c[1] for c in cis] if all(cis) else None,
                )
            )
        higher = recs[-1].higher_is_better[metric]
        drawn = figures.to_uri(
            figures.sweep_figure(series, metric=metric, higher_is_better=higher, depth=depth)
        )
        caption = (
            f"{task}: {metric} of the probe trained on each block alone (the newest sweep run "
            "of each block); band: 95% interval over the test items; ringed: the best block."
        )
        charts.append(_figure(drawn, caption))
    return '<section id="sweeps"><h2>Layer sweeps</h2>' + "".join(charts) + "</section>"


def newest_by_block(records: Iterable[RunRecord]) -> dict[tuple[Any, str], dict[int, RunRecord]]:
    """Per (model, label): the newest sweep record of each block."""
    out: dict[tuple[Any, str], dict[int, RunRecord]] = {}
    for record in sorted(records, key=lambda r: r.order):
        out.setdefault((record.model, record.label), {})[int(record.sweep["block"])] = record
    return out


# ---- training curves ---------------------------------------------------------------------------

TITLES = {
    "loss": "loss",
    "lr": "learning rate",
    "wd": "weight decay",
    "momentum": "EMA momentum",
    "knn_top1": "k-NN top-1 (online)",
    "holdout_top1": "held-out top-1",
}
HIDDEN = ("step", "epoch", "time", "checkpoint", "sha256", "position")


def _curve_file(path: str | os.PathLike[str]) -> Path:
    """A training log or curve table named by the user: the file, or the one in a folder."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in ("log.csv", "curve.csv") if (path / n).is_file()]
        if found:
            return found[0]
        raise UserError(f"--curves {path}: no log.csv (pretrain, finetune) or curve.csv in it")
    if not path.is_file():
        raise UserError(f"--curves {path}: no such file or folder")
    return path


def curve_panels(path: Path) -> tuple[str, list[tuple[str, str]], pd.DataFrame] | None:
    """(x column, [(column, title)], table) of a training log or a ``curve`` table; None when
    it holds nothing to draw."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} as a CSV table ({exc})") from None
    if "checkpoint" in table:  # `ijepa-eval curve`: metrics and health by epoch
        x = "epoch" if "epoch" in table else "position"
        shown = [
            (c, c.replace(".rankme", ": RankMe").replace(".", ": "))
            for c in table.columns
            if "." in c and not c.endswith((".near_constant_dims", ".mean_norm"))
        ]
    else:  # a pretraining or fine-tuning log.csv, by step
        x = "step"
        shown = [(c, TITLES.get(c, c)) for c in table.columns if c not in HIDDEN]
    numeric = table.apply(pd.to_numeric, errors="coerce")
    shown = [(c, t) for c, t in shown if numeric[c].notna().any()]
    if x not in table or not shown:
        return None
    return x, shown, numeric


def _curves_section(results: Path, runs: list[RunRecord], extra: list[Path]) -> str:
    sources: dict[Path, str] = {}
    for path in extra:
        sources.setdefault(path.resolve(), f"{path}")
    for path in sorted(results.glob("curves/*/curve.csv")):
        sources.setdefault(path.resolve(), f"{path} (ijepa-eval curve)")
    for record in runs:
        spec_path = Path(str(record.model_info.get("path") or ""))
        log = spec_path.parent / "log.csv"
        if spec_path.name and log.is_file():
            sources.setdefault(log.resolve(), f"{log}: the run that made {spec_path.name}")
        for out in _finetune_outs(record):
            log = _located(out, results) / "log.csv"
            if log.is_file():
                sources.setdefault(log.resolve(), f"{log}: fine-tuning for {record.task}")
    charts, empty = [], []
    for path, label in sources.items():
        found = curve_panels(path)
        if found is None:
            empty.append(label)
            continue
        x, shown, table = found
        if "checkpoint" in table:
            kind = f"each metric and RankMe by {x} of the checkpoint"
        elif "momentum" in table:
            kind = "the pretraining log, by step"
        else:
            kind = "the training log, by step"
        drawn = figures.to_uri(figures.panels_figure(table, x, shown))
        charts.append(_figure(drawn, f"{label}: {kind}"))
    if not charts:
        charts.append(
            "<p class=note>No training logs found: none beside the runs' checkpoints, no "
            "fine-tuning log the records point at, no <code>curves/*/curve.csv</code> in the "
            "results folder. Name pretraining runs or <code>ijepa-eval curve</code> outputs "
            "with <code>--curves</code>.</p>"
        )
    charts += [f"<p class=note>{escape(e)}: nothing to draw.</p>" for e in empty]
    return '<section id="curves"><h2>Training curves</h2>' + "".join(charts) + "</section>"


def _finetune_outs(record: RunRecord) -> list[str]:
    """The folders a fine-tuning record names (one per probe seed with ``--seeds``)."""
    section = record.extra.get("finetune")
    if not isinstance(section, dict):
        return []
    if "out" in section:
        return [str(section["out"])]
    return [str(v["out"]) for v in section.values() if isinstance(v, dict) and "out" in v]


def _located(folder: str, results: Path) -> Path:
    """A folder a record names: as written (absolute, or from here), else beside the results."""
    path = Path(folder)
    if path.is_absolute() or path.exists():
        return path
    return results.parent / path


def _id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)


CSS = """
:root { --ink:#1d232b; --dim:#5f6b7a; --line:#dde3ea; --bg:#f6f8fa; --accent:#1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; color: var(--ink); background: var(--bg); }
header { background: #14213d; color: #fff; padding: 18px 32px 12px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .sub { margin: 0 0 8px; color: #c9d3e0; font-size: 13px; }
header code { color: #fff; }
nav a { color: #9cc3ff; text-decoration: none; font-size: 13px; }
main { max-width: 1560px; margin: 0 auto; padding: 8px 32px 40px; }
section { margin-top: 22px; }
h2 { font-size: 19px; margin: 0 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h2 .ver { font-size: 12px; color: var(--dim); font-weight: normal; }
h3 { font-size: 15px; margin: 0 0 2px; }
.desc, .note, .dim, .meta { color: var(--dim); }
.note { font-size: 12.5px; margin: 6px 0; }
.meta { font-size: 12px; margin: 0 0 10px; }
table { border-collapse: collapse; background: #fff; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { font-weight: 600; font-size: 12.5px; background: #eef2f6; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.board { font-size: 13.5px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
.board .metric { font-weight: normal; color: var(--dim); }
.board tr.reference td { color: var(--dim); font-style: italic; }
.ref { font-size: 11px; }
article.run { background: #fff; border: 1px solid var(--line); border-radius: 6px;
  padding: 14px 16px; margin: 10px 0 16px; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.side { flex: 0 0 340px; }
.metrics td:first-child { white-space: nowrap; }
.metrics { width: 100%; font-size: 12.5px; }
.figs { flex: 1 1 600px; display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 0 0 6px; max-width: 100%; }
figure img { display: block; width: 100%; height: auto; }
figcaption { font-size: 12px; color: var(--dim); margin-top: 3px; }
.health, .chosen { font-size: 12.5px; margin: 8px 0 0; }
ul.notes, ul.missing { font-size: 12.5px; margin: 10px 0 0; padding-left: 18px; }
ul.missing { color: #8a5300; }
li.h { list-style: none; margin-left: -18px; font-weight: 600; }
details { margin-top: 10px; font-size: 12.5px; }
summary { cursor: pointer; color: var(--accent); }
.prov th { width: 120px; background: none; }
.prov td { word-break: break-word; }
code { font-size: 12px; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{header}
<main>
{body}
</main>
</body>
</html>
"""
