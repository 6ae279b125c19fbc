"""The command line as users type it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ijepa_eval.cli import app

runner = CliRunner()


def test_info_table_says_what_would_be_evaluated(official_ckpt):
    result = runner.invoke(app, ["info", "--ckpt", str(official_ckpt)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for expected in (
        "native",
        "target_encoder, encoder, predictor",
        "network used",
        "vit_tiny_patch8_32 (width 192, depth 2, heads 3, mlp 768)",
        "930,240",
        "32px (checkpoint 32px)",
        "crop 37→32 bilinear",
    ):
        assert expected in result.output, expected


def test_info_json_with_overrides(official_ckpt):
    args = ["info", "--ckpt", str(official_ckpt), "--which", "encoder", "--img-size", "48"]
    args += ["--resize", "resize", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads(result.output)
    assert meta["network"] == "encoder"
    assert meta["resolution"] == 48 and meta["checkpoint_resolution"] == 32
    assert meta["pos_embed_interpolated"] is True
    assert meta["preprocess"]["resize"] == "resize"
    assert meta["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert meta["epoch"] == 7


def test_bad_preprocessing_options_are_user_errors(official_ckpt):
    for extra in (["--mean", "0.5,0.5"], ["--resize", "squash"], ["--crop-pct", "1.5"]):
        result = runner.invoke(app, ["info", "--ckpt", str(official_ckpt), *extra])
        assert result.exit_code == 1 and result.stderr.startswith("error:"), extra


def test_models_lists_the_registry():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    entries = json.loads(result.output)
    assert {
        "ijepa_tiny_synth",
        "ijepa_vith14_in1k",
        "ijepa_vith16_448_in1k",
        "ijepa_vith14_in22k",
        "ijepa_vitg16_in22k",
        "facebook/ijepa_vith14_1k",
        "facebook/ijepa_vith16_1k",
        "facebook/ijepa_vith14_22k",
        "facebook/ijepa_vitg16_22k",
    } <= set(entries)
    assert entries["ijepa_vith16_448_in1k"]["resolution"] == 448
    assert entries["facebook/ijepa_vith14_1k"]["networks"] == ["encoder"]
    assert entries["ijepa_tiny_synth"]["default"] is True


@pytest.mark.slow
def test_runs_as_python_module():
    result = subprocess.run(
        [sys.executable, "-m", "ijepa_eval", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    assert "info" in result.stdout and "convert" in result.stdout


def _heavy_modules_after(argv: list[str]) -> list[str]:
    """Run the CLI in a fresh interpreter; list which heavy libraries it imported."""
    code = (
        "import sys\n"
        "from ijepa_eval.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('torch', 'timm', 'torchvision', 'transformers', 'sklearn', 'datasets',\n"
        "         'matplotlib')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[-2].split()


@pytest.mark.slow
def test_commands_that_need_no_model_do_not_import_torch(tmp_path):
    # `import torch` alone costs seconds and ~0.5 GB: --help, listing tasks and models,
    # leaderboards, CI checks and model cards must not pay it, nor matplotlib's start-up
    # (the package exports resolve lazily)
    baseline = str(Path(__file__).parents[1] / "results" / "baseline")
    reference = str(Path(__file__).parents[1] / "results" / "reference")
    for argv in (
        ["--help"],
        ["tasks"],
        ["models"],
        ["leaderboard", "--results", baseline, "--out", str(tmp_path / "board.md")],
        ["leaderboard", "--results", baseline, "--reference", reference, "--layout", "paper",
         "--format", "table", "--out", str(tmp_path / "board.txt")],
        ["check", "--baseline", baseline, "--results", baseline],
        ["report", "--results", baseline, "--model-card", str(tmp_path / "README.md")],
    ):  # fmt: skip
        assert _heavy_modules_after(argv) == [], argv
    # the HTML report and the leaderboard's charts draw with matplotlib, and need nothing else
    report = ["report", "--results", baseline, "--out", str(tmp_path / "report.html")]
    assert _heavy_modules_after(report) == ["matplotlib"]
    charts = ["leaderboard", "--results", baseline, "--plot", str(tmp_path / "board.png"),
              "--out", str(tmp_path / "charted.md")]  # fmt: skip
    assert _heavy_modules_after(charts) == ["matplotlib"]


def test_lazy_package_exports_resolve_and_list():
    import ijepa_eval as ie
    import ijepa_eval.probes as probes

    assert ie.load_encoder.__module__ == "ijepa_eval.models.loading"
    assert "linear_grid" in dir(probes) and "load_encoder" in ie.__all__
    with pytest.raises(AttributeError, match="no_such_name"):
        ie.no_such_name  # noqa: B018


@pytest.mark.slow
def test_exported_function_named_like_its_module_is_not_hidden_by_it():
    # importing ijepa_eval.features.extract (the module) must not rebind the package's
    # `extract` (the function) to it; run fresh so the import order is the harmful one
    code = (
        "import ijepa_eval.features.extract, ijepa_eval.results.check\n"
        "from ijepa_eval.features import extract\n"
        "from ijepa_eval.results import check\n"
        "import ijepa_eval as ie\n"
        "assert callable(extract) and callable(check) and ie.extract is extract, extract\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
