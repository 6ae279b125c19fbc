"""``ijepa-eval report``: the page's pieces from real run records, the page itself, and the page
as a real browser renders it (headless Chromium)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import one_error_line
from PIL import Image
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data.synth import generate_classes, generate_clevr
from ijepa_eval.errors import UserError
from ijepa_eval.results.leaderboard import format_value
from ijepa_eval.results.load import load_records
from ijepa_eval.results.report import (
    confusion,
    curve_panels,
    depth_examples,
    grid_heatmap,
    provenance,
    render_report,
    write_report,
)
from ijepa_eval.tasks import ExtractOptions, evaluate
from ijepa_eval.tasks.curve import curve
from ijepa_eval.tasks.record import RunRecord
from ijepa_eval.tasks.sweep import sweep
from ijepa_eval.train.log import TrainLog

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "results" / "baseline"
FIXTURES = ROOT / "tests" / "fixtures" / "records"
IMG = re.compile(r'<img src="data:image/(svg\+xml|png);base64,([A-Za-z0-9+/=]+)"')
LINEAR = {"lrs": [0.05, 0.5], "weight_decays": [0.0, 1e-4], "epochs": 2, "min_steps": 30}


def _baseline(task: str) -> RunRecord:
    return RunRecord.read(next((BASELINE / "runs" / task).glob("*.json")))


@pytest.fixture(scope="module")
def results(tmp_path_factory, official_ckpt) -> Path:
    """Real records: the committed baseline, and on the official-format test checkpoint a depth
    run (with examples), a layer sweep, and a ``curve`` over two checkpoints; beside them a
    pretraining log written by the trainer's own logger."""
    root = tmp_path_factory.mktemp("report")
    out = root / "results"
    shutil.copytree(BASELINE / "runs", out / "runs")
    quiet = ExtractOptions(progress=False, workers=0, cache_dir=root / "cache")
    clevr = generate_clevr(root / "CLEVR_v1.0", train=40, val=12, size=32, progress=False)
    evaluate(
        "depth_synth",
        ckpt=official_ckpt,
        data=str(clevr / "depth"),
        results_dir=out,
        params={"epochs": 2, "lrs": [3e-3, 1e-2]},
        extraction=quiet,
    )
    classes = generate_classes(
        root / "classes", classes=3, per_class=10, size=16, val_per_class=4, progress=False
    )
    sweep("linprobe", ckpt=str(official_ckpt), data=str(classes), results_dir=out,
          params=LINEAR, extraction=quiet)  # fmt: skip
    curve(["nearest_mean"], [official_ckpt, official_ckpt], data=str(classes),
          results_dir=out, extraction=quiet)  # fmt: skip
    log = TrainLog(root / "pretrain" / "log.csv", resume_step=None, console=_silent())
    for step in range(1, 9):
        log.write(step=step, epoch=1 + step // 5, loss=1 / step, lr=1e-3 * step, wd=0.04,
                  momentum=0.996 + step * 1e-4, knn_top1=None if step % 4 else 30.0 + step,
                  time=float(step))  # fmt: skip
    return out


def _silent():
    from rich.console import Console

    return Console(file=io.StringIO())


def _images(page: str) -> list[tuple[str, bytes]]:
    return [(kind, base64.b64decode(data)) for kind, data in IMG.findall(page)]


# ---- the pieces, from the committed baseline ---------------------------------------------------


def test_grid_heatmap_is_the_linear_grid():
    record = _baseline("clevr_count")
    heatmap, metric = grid_heatmap(record)
    assert metric == "top1" and heatmap.columns == [0.003, 0.01, 0.03, 0.1]
    assert heatmap.values.shape == (8, 4)  # 2 representations x raw/whitened x 2 heads, 1 wd
    assert heatmap.rows[0] == "wd 0 · lastPOOL · raw · linear"
    for row in record.grid:  # every trained setting sits in its cell
        label = f"wd {row['weight_decay']:g} · {row['representation']} · "
        label += f"{'whitened' if row['whiten'] else 'raw'} · {row['head']}"
        cell = heatmap.values[heatmap.rows.index(label), heatmap.columns.index(row["lr"])]
        assert cell == row["val_top1"]
    r, c = heatmap.chosen
    assert heatmap.values[r, c] == record.chosen["val_top1"] == np.nanmax(heatmap.values)


def test_a_diverged_setting_is_an_empty_cell_not_a_row_of_its_own():
    record = _baseline("clevr_count")
    record.grid[0].update(val_top1=None, val_top5=None, diverged=True)  # as the grid marks it
    heatmap, _ = grid_heatmap(record)
    assert heatmap.values.shape == (8, 4) and heatmap.rows[0] == "wd 0 · lastPOOL · raw · linear"
    assert np.isnan(heatmap.values[0, heatmap.columns.index(record.grid[0]["lr"])])


def test_grid_heatmap_of_other_probes():
    depth, _ = grid_heatmap(_baseline("depth_synth"))
    assert depth.rows == [""] and depth.columns == [0.001, 0.003, 0.01]
    assert depth.values[depth.chosen] == np.nanmin(depth.values)  # lower RMSE wins
    kshot = _baseline("imagenet_kshot")
    heatmap, metric = grid_heatmap(kshot)
    assert metric == "top1" and heatmap.column_label.startswith("C")
    assert heatmap.rows == [f"{k}shot_seed{s}" for k in (2, 5) for s in (0, 1, 2)]  # 1-shot: none
    assert len(heatmap.columns) == len(kshot.probe_config["Cs"])
    assert heatmap.chosen is None  # chosen per draw, not one cell
    assert grid_heatmap(RunRecord.read(next((FIXTURES / "runs/depth_synth").glob("*")))) is None


def test_confusion_matrix_from_the_saved_predictions():
    record = _baseline("clevr_count")
    counts, names, metric, runs = confusion(record)
    assert metric == "top1" and runs == 1 and counts.shape == (8, 8)
    assert counts.sum() == 300 and 100 * np.trace(counts) / 300 == pytest.approx(29.6667, 1e-4)
    kshot = _baseline("imagenet_kshot")
    counts, names, metric, runs = confusion(kshot)
    assert (metric, runs, counts.sum()) == ("top1_1shot", 3, 300)  # 3 draws of 100 items
    assert 100 * np.trace(counts) / 300 == pytest.approx(kshot.metrics["top1_1shot"])
    assert confusion(_baseline("depth_synth")) is None


def test_a_lost_file_is_said_not_drawn(tmp_path):
    shutil.copytree(BASELINE / "runs" / "depth_synth", tmp_path / "runs" / "depth_synth")
    (preds,) = (tmp_path / "runs" / "depth_synth").glob("*.preds.npz")
    record = RunRecord.read(next((tmp_path / "runs" / "depth_synth").glob("*.json")))
    record.examples = {"file": preds.name.replace(".preds.", ".examples."), "index": [0]}
    record.path.unlink()
    record.write(tmp_path)  # as a depth run now records it, but its examples file is gone
    page = render_report(tmp_path)
    assert f"the depth examples file {record.examples['file']} is not beside it" in page
    assert "<img " in page and 'src="data:image/png' not in page  # the grid only


def test_provenance_names_what_the_run_depended_on():
    rows = dict(provenance(_baseline("linprobe")))
    assert rows["sha256"].startswith("8d77ac1f1fec072e")
    assert rows["network"].startswith("target_encoder")
    assert "crop 73→64 bicubic" in rows["preprocessing"] and "0.485" in rows["preprocessing"]
    assert rows["protocol"].startswith("I-JEPA (Assran et al., CVPR 2023)")
    assert "torch 2." in rows["versions"] and "timm 1." in rows["versions"]
    assert "computed in" not in rows["features"]  # made before records said: no claim


def test_provenance_says_what_numerics_computed_the_features():
    record = _baseline("linprobe")
    entries = record.features["entries"]
    keys = ["float32", "bfloat16-weights"] + ["float32"] * (len(entries) - 2)
    features = {**record.features, "entries": [
        {**e, "compute_dtype": k} for e, k in zip(entries, keys, strict=True)
    ]}  # fmt: skip
    rows = dict(provenance(replace(record, features=features)))
    assert "computed in bfloat16 (the whole model cast) and float32;" in rows["features"]


# ---- the page -------------------------------------------------------------------------------


@pytest.mark.slow
def test_page_from_the_baseline_is_self_contained_and_says_what_is_missing(tmp_path):
    page = write_report(BASELINE, tmp_path / "sub" / "report.html").read_text()
    assert page == render_report(BASELINE)  # nothing depends on the clock
    for record in load_records(BASELINE):  # every headline number, as the leaderboard shows it
        first = next(iter(record.metrics))
        low, high = record.metrics_ci[first]
        value = format_value(record.metrics[first], (high - low) / 2)
        assert f"<td class=num>{value}</td>" in page, (record.task, value)
    images = _images(page)
    assert [k for k, _ in images].count("svg+xml") == 5 + 4  # 5 grids, 4 confusion matrices
    for kind, data in images:
        assert data.startswith(b"<?xml") if kind == "svg+xml" else data[:4] == b"\x89PNG"
    # offline: nothing is fetched (no URL in a src, href, url() or @import)
    assert not re.search(r"(src|href)=\"(?!data:|#)|url\(|@import", page)
    assert "Not recorded" in page and "depth examples: this record predates them" in page
    assert page.count("<summary>Provenance</summary>") == 5


@pytest.mark.slow
def test_page_with_depth_examples_sweeps_and_curves(results):
    page = render_report(results, curves=[results.parent / "pretrain"])
    depth = [r for r in load_records(results) if r.task == "depth_synth" and r.examples]
    (record,) = depth
    examples = depth_examples(record)
    assert [e.row for e in examples] == record.examples["index"] == [0, 4, 7, 11]
    assert all(e.image.shape == (32, 32, 3) and e.target.shape == (32, 32) for e in examples)
    assert "4 val images spread over the split" in page
    assert "Layer sweeps" in page and "linprobe: top1 of the probe trained on each block" in page
    assert "log.csv: the pretraining log, by step" in page
    assert "(ijepa-eval curve): each metric and RankMe by position of the checkpoint" in page
    # the headline holds both models, the newest non-sweep run of each task
    assert page.count("<tr class=measured>") == 2
    assert re.findall(r'<figure style="width:(\d+)px">', page)  # drawn at one scale
    pngs = [Image.open(io.BytesIO(d)) for k, d in _images(page) if k == "png"]
    assert pngs and all(im.size[0] > 300 and len(im.getcolors(1 << 20)) > 100 for im in pngs)


def test_curve_panels_read_each_kind_of_log(results):
    x, shown, _ = curve_panels(results.parent / "pretrain" / "log.csv")
    assert x == "step" and [c for c, _ in shown] == ["loss", "lr", "wd", "momentum", "knn_top1"]
    (table,) = results.glob("curves/*/curve.csv")
    x, shown, _ = curve_panels(table)
    assert x == "position" and [c for c, _ in shown] == ["nearest_mean.top1", "nearest_mean.top5",
                                                          "nearest_mean.mean_per_class_acc",
                                                          "nearest_mean.rankme"]  # fmt: skip


@pytest.mark.slow
def test_report_command_and_its_mistakes(tmp_path):
    runner = CliRunner()
    out = tmp_path / "report.html"
    ok = runner.invoke(app, ["report", "--results", str(BASELINE), "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "wrote report" in ok.stderr and out.read_text().startswith("<!DOCTYPE html>")
    for args, message in (
        ([], "report needs --out report.html, --model-card README.md, or both"),
        (["--out", str(tmp_path)], f"could not write the report to {tmp_path}"),
        (["--out", str(out), "--curves", "nowhere"], "--curves nowhere: no such file"),
        (["--out", str(out), "--curves", str(tmp_path)], "no log.csv (pretrain, finetune)"),
    ):
        result = runner.invoke(app, ["report", "--results", str(BASELINE), *args])
        assert message in one_error_line(result), args
    with pytest.raises(UserError, match="does not exist"):
        render_report(tmp_path / "missing")
    damaged = tmp_path / "damaged"
    shutil.copytree(BASELINE, damaged)
    npz = next((damaged / "runs" / "linprobe").glob("*.npz"))
    whole = npz.read_bytes()
    for bad in (b"not a zip file", whole[: len(whole) // 2]):  # foreign bytes, a cut-short zip
        npz.write_bytes(bad)
        result = runner.invoke(app, ["report", "--results", str(damaged), "--out", str(out)])
        assert f"cannot read {npz}" in one_error_line(result)


# ---- in a real browser --------------------------------------------------------------------------

PROBE = """<script>
addEventListener("load", () => {
  const found = {
    rows: [...document.querySelectorAll("table.board tbody tr")].map(r => r.innerText),
    images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
    sections: [...document.querySelectorAll("section h2")].map(h => h.textContent),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(found);
  document.body.append(out);
});
</script>"""


def _chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
                None)  # fmt: skip


@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_in_headless_chromium(results, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install chromium)")
    report = write_report(results, tmp_path / "report.html", curves=[results.parent / "pretrain"])
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=20000"]  # fmt: skip
    dom = subprocess.run(
        [*flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120
    )
    found = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)[1])
    assert len(found["rows"]) == 2 and all("±" in row for row in found["rows"])
    assert found["sections"][:2] == ["Headline results", "clevr_count v4"]
    assert "Layer sweeps" in found["sections"] and "Training curves" in found["sections"]
    assert len(found["images"]) == len(IMG.findall(report.read_text())) >= 14
    assert all(done and w > 100 and h > 50 for done, w, h in found["images"]), found["images"]

    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1560,2400", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    with Image.open(shot) as image:
        assert image.size == (1560, 2400)
        page = image.convert("RGB")
    header = page.crop((0, 0, 1560, 60)).getcolors(1 << 20)
    assert max(header)[1] == (20, 33, 61)  # the header band: the page's CSS applied
    figures = page.crop((400, 400, 1560, 2400)).getcolors(1 << 20)
    assert len(figures) > 500  # heat maps, confusion matrices: not a blank or broken page
