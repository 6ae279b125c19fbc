"""A non-editable install carries the bundled specs (the registry) inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
        assert "ijepa_eval/_resources/checkpoints/registry.yaml" in zf.namelist()
        zf.extractall(tmp_path / "site")
    probe = (
        "import ijepa_eval.paths as p, ijepa_eval.models.registry as r;"
        "print(p.resource_path('checkpoints/registry.yaml'));"
        "print(len(r.load_registry()))"
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
    assert out[0].startswith(str(tmp_path / "site"))
    assert int(out[1]) >= 8
