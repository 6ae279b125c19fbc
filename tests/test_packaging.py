"""A non-editable install carries the bundled specs (the registry) inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_registry_and_finds_it(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("ijepa_eval-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "ijepa_eval/_resources/checkpoints/registry.yaml" in names
        assert "ijepa_eval/_resources/checkpoints/ijepa_tiny_synth.pth.tar" in names
        assert any(n.startswith("ijepa_eval/_resources/tasks/") for n in names)
        zf.extractall(tmp_path / "site")
    probe = (
        "import ijepa_eval as ie, ijepa_eval.paths as p, ijepa_eval.models.registry as r;"
        "import ijepa_eval.tasks as t;"
        "print(p.resource_path('checkpoints/registry.yaml'));"
        "print(len(r.load_registry()));"
        "print(ie.load_encoder('ijepa_tiny_synth').info.path);"
        "print(t.get_task('clevr_count').source)"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    site = str(tmp_path / "site")
    assert out[0].startswith(site)
    assert int(out[1]) >= 9
    assert out[2].startswith(site) and out[3].startswith(site)  # the bundled model, the tasks
