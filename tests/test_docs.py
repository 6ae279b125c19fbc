"""Every code block in README.md and docs/*.md runs, and checks what the text around it claims.

The convention, for whoever writes a page:

- A page's blocks run in order, in one fresh temporary folder that is the working directory, so
  a block may use what an earlier block of the same page made. The environment: ``REPO`` = the
  repository root (``$REPO/results/reference``); ``HF_HUB_OFFLINE=1`` and
  ``HF_DATASETS_OFFLINE=1``; ``IJEPA_EVAL_CACHE=<tmp>/cache``; ``IJEPA_EVAL_CONFIG`` pointing
  at a file that does not exist (no user config) and no ``IJEPA_EVAL_DATA_*`` /
  ``IJEPA_EVAL_REGISTRY``; ``COLUMNS=200`` (rich tables are not wrapped); one BLAS/OpenMP
  thread (much faster on a shared 2-core machine); this interpreter's ``bin/`` first on PATH.
- ```` ```python ```` blocks are ``exec``-ed, all blocks of a page in one namespace. Each must
  contain a visible ``assert`` or be followed by a ```` ```text ```` block (below).
- ```` ```bash ```` blocks run with ``bash -euo pipefail``; their output is stdout and stderr
  together. Each must be followed by a ```` ```text ```` block. A command that is meant to fail
  is written ``cmd || echo "exit status $?"``.
- A ```` ```text ```` block right after a python or bash block (only blank lines between) lists
  lines that must appear in that block's output (a python block's: what it prints), in this
  order. An expected line may match part of an output line; runs of whitespace compare as one
  space; ``...`` inside a line matches anything (timings, paths, values); a line that is only
  ``...`` marks elided output and matches nothing. A mismatch fails with the page and line, the
  first expected line not found, and the whole output.
- ```` ```yaml ```` and ```` ```json ```` blocks must start with
  ``# file: PATH``: they are parsed and written to PATH (relative to the folder) for the blocks
  after them. A ```` ```python ```` block may start so too (a module to show, e.g. a probe): it
  is compiled and written, not run; a later block checks or uses it.
- A block whose first line is ``# not run here: <reason>`` is not run; the reader sees the
  reason. Each such block is collected as its own skipped test (``test_block_not_run``), so the
  count and the reasons show in the summary; keep them few.
- Anything else (a block without a language, another language, a ```` ```text ```` block with
  nothing to check) fails, so nothing reaches a page untested by accident. The one exception is
  the README's first block (``make demo`` / ``make test``): the test suite cannot run itself,
  and CI runs both (``.ci/run``: ``make test``, then ``make regression``, the demo's suite).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = "# not run here:"
FILE = "# file:"
# (page, index of the block on the page) that may break the rules, and why.
EXEMPT = {
    ("README.md", 0): "make demo / make test: the suite cannot run itself; CI runs both",
}
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)


@dataclass
class Block:
    page: str
    index: int
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    expected: Block | None = None  # the ```text block that follows, if any

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.code.lstrip("\n").split("\n", 1)[0].strip()

    @property
    def not_run_reason(self) -> str | None:
        first = self.first_line
        return first[len(NOT_RUN) :].strip() if first.startswith(NOT_RUN) else None


def parse(path: Path) -> list[Block]:
    """The page's fenced blocks, each ```text block attached to the block it follows."""
    text = path.read_text()
    page = str(path.relative_to(ROOT))
    blocks: list[Block] = []
    last_end = None
    for i, m in enumerate(FENCE.finditer(text)):
        indent = len(m["indent"])
        body = "\n".join(line[indent:] for line in m["body"].split("\n"))
        block = Block(page, i, text.count("\n", 0, m.start()) + 1, m["lang"].strip(), body)
        follows = last_end is not None and not text[last_end : m.start()].strip()
        if block.lang == "text":
            previous = blocks[-1] if blocks and follows else None
            if previous is None or previous.lang not in ("python", "bash"):
                raise AssertionError(
                    f"{block.where}: a ```text block must follow a python or bash block"
                )
            previous.expected = block
        else:
            blocks.append(block)
        last_end = m.end()
    return blocks


def check_rules(block: Block) -> None:
    """Fail on a block the tests would not really run or check (see the module docstring)."""
    if (block.page, block.index) in EXEMPT or block.not_run_reason is not None:
        if block.not_run_reason == "":
            raise AssertionError(f"{block.where}: '{NOT_RUN}' needs a reason")
        return
    if block.lang == "python" and not block.first_line.startswith(FILE):
        if block.expected is None and not re.search(r"^\s*assert\b", block.code, re.M):
            raise AssertionError(
                f"{block.where}: a python block needs an assert or a ```text block"
            )
    elif block.lang == "bash":
        if block.expected is None:
            raise AssertionError(f"{block.where}: a bash block needs a ```text block after it")
    elif block.lang in ("yaml", "json", "python"):
        if not block.first_line.startswith(FILE):
            raise AssertionError(
                f"{block.where}: a {block.lang} block must start with '{FILE} PATH'"
            )
    else:
        raise AssertionError(
            f"{block.where}: a block in {block.lang or 'no language'!r} cannot be run; use python, "
            f"bash (+ text), yaml/json with '{FILE} PATH', or mark it '{NOT_RUN} <reason>'"
        )


def _pattern(line: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in " ".join(line.split()).split("...")]
    return re.compile(".*?".join(parts))


def match_output(expected: str, output: str) -> str | None:
    """None when every expected line is found in ``output`` in order; else the first missing."""
    lines = [" ".join(line.split()) for line in output.splitlines()]
    at = 0
    for want in expected.splitlines():
        if not want.strip() or want.strip() == "...":
            continue
        pattern = _pattern(want)
        while at < len(lines) and not pattern.search(lines[at]):
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


def _check_output(block: Block, output: str) -> None:
    if block.expected is None:
        return
    missing = match_output(block.expected.code, output)
    if missing is not None:
        pytest.fail(
            f"{block.where}: the output lacks the line {missing!r} (expected by the ```text block "
            f"at {block.expected.where}, in order)\n--- output ---\n{output}",
            pytrace=False,
        )


def _write_file(block: Block, folder: Path) -> None:
    first, _, rest = block.code.lstrip("\n").partition("\n")
    dest = folder / first[len(FILE) :].strip()
    loads = {
        "yaml": yaml.safe_load,
        "json": json.loads,
        "python": lambda text: compile(text, str(dest), "exec"),
    }[block.lang]
    loads(rest)  # a page never shows a file that does not parse
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(rest)


def _environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IJEPA_EVAL_")}
    env.update(
        REPO=str(ROOT),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        IJEPA_EVAL_CACHE=str(folder / "cache"),
        IJEPA_EVAL_CONFIG=str(folder / ".no-user-config.yaml"),
        COLUMNS="200",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def _run_bash(block: Block, folder: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{block.where}: the bash block exited with status {proc.returncode}\n"
            f"--- output ---\n{proc.stdout}",
            pytrace=False,
        )
    _check_output(block, proc.stdout)


def _run_python(block: Block, namespace: dict) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.code, block.where, "exec"), namespace)
    _check_output(block, printed.getvalue())


def _runnable(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.not_run_reason is None and (b.page, b.index) not in EXEMPT]


def _page_param(path: Path):
    blocks = parse(path)
    run = _runnable(blocks)
    page = str(path.relative_to(ROOT))
    slow = any(b.lang == "bash" for b in run)
    ident = f"{page}-{len(run)}run-{len(blocks) - len(run)}notrun"
    return pytest.param(path, id=ident, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("path", [_page_param(p) for p in PAGES])
def test_page_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocks = parse(path)
    for block in blocks:
        check_rules(block)
    env = _environment(tmp_path)
    for key in [k for k in os.environ if k.startswith("IJEPA_EVAL_")]:
        monkeypatch.delenv(key)
    for key in ("REPO", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "IJEPA_EVAL_CACHE"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("IJEPA_EVAL_CONFIG", env["IJEPA_EVAL_CONFIG"])
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    import torch
    from threadpoolctl import threadpool_limits

    threads, environ = torch.get_num_threads(), dict(os.environ)
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            for block in _runnable(blocks):
                if block.lang == "python" and not block.first_line.startswith(FILE):
                    _run_python(block, namespace)
                elif block.lang == "bash":
                    _run_bash(block, tmp_path, env)
                else:
                    _write_file(block, tmp_path)
    finally:  # a page may set variables (IJEPA_EVAL_CONFIG=...) for its later blocks
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)


NOT_RUN_BLOCKS = [
    pytest.param(b, id=b.where)
    for p in PAGES
    for b in parse(p)
    if b.not_run_reason is not None or (b.page, b.index) in EXEMPT
]


@pytest.mark.parametrize("block", NOT_RUN_BLOCKS)
def test_block_not_run(block: Block):
    """One skipped test per block that cannot run here, with its reason (see -ra's summary)."""
    pytest.skip(
        f"{block.where} not run here: {block.not_run_reason or EXEMPT[(block.page, block.index)]}"
    )


# --- the convention itself, and the pages' structure ----------------------------------------


def test_output_matching_convention():
    out = (
        "features: 2/2 from the cache; extract 0.0s, probe 0.2s\n"
        "│ top1 ↑   │  40.00 │\n"
        "record: x.json\n"
    )
    assert match_output("features: 2/2 from the cache; ...\n...\n│ top1 ↑ │ ... │", out) is None
    assert match_output("record: ....json", out) is None
    assert match_output("│ top1 ↑ │ ... │\nfeatures: 2/2", out) == "features: 2/2"  # order counts
    assert match_output("top5", out) == "top5"
    assert match_output("features: 1/2 ...", out) == "features: 1/2 ..."


def test_a_wrong_output_or_status_fails_loudly(tmp_path: Path):
    env = _environment(tmp_path)
    wants_moon = Block("p.md", 1, 5, "text", "hello ... moon\n")
    with pytest.raises(pytest.fail.Exception, match="lacks the line 'hello ... moon'"):
        _run_bash(Block("p.md", 0, 1, "bash", "echo hello world\n", wants_moon), tmp_path, env)
    with pytest.raises(pytest.fail.Exception, match="exited with status 3"):
        _run_bash(Block("p.md", 0, 1, "bash", "exit 3\n", wants_moon), tmp_path, env)
    with pytest.raises(pytest.fail.Exception, match="lacks the line 'hello ... moon'"):
        _run_python(Block("p.md", 0, 1, "python", "print('hello sun')\n", wants_moon), {})


def test_rules_catch_unchecked_blocks():
    bad = [
        Block("p.md", 0, 1, "bash", "echo hi\n"),
        Block("p.md", 1, 5, "python", "x = 1\n"),
        Block("p.md", 2, 9, "", "plain\n"),
        Block("p.md", 3, 13, "yaml", "a: 1\n"),
        Block("p.md", 4, 17, "bash", "# not run here:\nls\n"),
    ]
    for block in bad:
        with pytest.raises(AssertionError):
            check_rules(block)
    check_rules(Block("p.md", 5, 21, "bash", "# not run here: needs a GPU\nnvidia-smi\n"))
    check_rules(Block("p.md", 6, 25, "python", "assert 1 + 1 == 2\n"))


def test_readme_is_short_and_pages_are_linked():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert readme.startswith("# ijepa-eval\n\n```\nmake demo")
    index = (ROOT / "docs" / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path):
    text = FENCE.sub("", path.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = (path.parent / target.split("#", 1)[0]).resolve()
        assert file.exists(), f"{path.relative_to(ROOT)} links to {target}, which does not exist"


def test_protocols_page_covers_every_task():
    from ijepa_eval.tasks import task_registry

    text = (ROOT / "docs" / "protocols.md").read_text()
    missing = [n for n in task_registry().names() if f"`{n}`" not in text]
    assert not missing, f"docs/protocols.md does not mention {missing}"
