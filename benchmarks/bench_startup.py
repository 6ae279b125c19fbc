"""Start-up time of the command line: what every `ijepa-eval ...` pays before doing anything.

    python benchmarks/bench_startup.py [--repeats 5] [--checkout DIR]

Times `ijepa-eval --help`, `tasks`, `leaderboard` and `check` (on `results/baseline`) in fresh
interpreters, median of --repeats. `--checkout DIR` runs another checkout's code instead (e.g. a
`git worktree` of an older commit, for before/after figures). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--checkout", type=Path, default=ROOT)
    args = p.parse_args()
    baseline = str(ROOT / "results" / "baseline")
    out = Path(tempfile.mkdtemp()) / "board.md"
    commands = {
        "--help": ["--help"],
        "tasks": ["tasks"],
        "leaderboard": ["leaderboard", "--results", baseline, "--out", str(out)],
        "check": ["check", "--baseline", baseline, "--results", baseline],
    }
    env = {**os.environ, "PYTHONPATH": str(args.checkout.resolve())}
    code = "import sys; from ijepa_eval.cli import main; sys.argv[0] = 'ijepa-eval'; main()"
    print(
        f"- checkout: {args.checkout}; median of {args.repeats} runs; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print()
    print("| command | seconds |")
    print("|---|---|")
    for name, argv in commands.items():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(  # run elsewhere: `python -c` puts the cwd first on sys.path
                [sys.executable, "-c", code, *argv],
                env=env,
                cwd=out.parent,
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
        print(f"| `ijepa-eval {name}` | {np.median(times):.2f} |")


if __name__ == "__main__":
    main()
