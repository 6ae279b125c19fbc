"""`make gpu-check`'s dry run: every section's code path, tiny shapes, on the CPU.

The GPU check only runs on a lent device, so CI runs its --dry-run here to keep the script from
rotting between devices: the same sections and JSON schema, with ViT-Ti, a handful of 64 px
JPEGs and small grid and k-NN sizes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = [
    "gpu_tests",
    "model_only",
    "end_to_end",
    "linear_grid",
    "knn",
    "pretrain",
    "finetune",
]


@pytest.mark.slow
def test_the_dry_run_writes_every_section(tmp_path):
    out = tmp_path / "gpu-check"
    script = ROOT / "benchmarks" / "gpu_check.py"
    cmd = [sys.executable, str(script), "--dry-run", "--out", str(out)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    log = out / "gpu_check.log"
    assert run.returncode == 0, run.stdout + run.stderr + (log.read_text() if log.exists() else "")

    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] is True
    assert list(report["sections"]) == SECTIONS
    for name, section in report["sections"].items():
        assert section["error"] is None, name
        assert section["figures"], name
        for figure in section["figures"]:
            value = figure["value"]
            assert isinstance(value, int | float) and math.isfinite(value), (name, figure)
            assert figure["met"] is None  # no verdicts in a dry run
    # the analytic ViT FLOPs agree with torch's count (on the CPU through the math backend)
    details = report["sections"]["model_only"]["details"]
    assert details["gflop_per_image_formula"] == pytest.approx(details["gflop_per_image_counted"])
    assert report["machine"]["torch"] and report["sizes"]["arch"] == "tiny"

    table = (out / "gpu_check.md").read_text()
    assert "| section | figure | value | unit | % of bf16 limit | target | verdict |" in table
    assert all(f"| {name} |" in table for name in SECTIONS)
