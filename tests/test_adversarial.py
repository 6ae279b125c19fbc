"""Malformed inputs, as a user would hand them over: one line, no traceback, nothing left behind.

Each input kind (checkpoint file, Hugging Face directory, task YAML, user config file,
pretraining config and resume checkpoint, output paths) has a table of malformed variants. Every
variant runs the real command line (`typer.testing.CliRunner` over `ijepa_eval.cli.app`) and
must exit non-zero with exactly one line on stderr and no traceback; the results folder (which
already holds earlier run records) and the pretraining folder must be byte for byte as they
were: no new record, no new checkpoint, no temporary file. A full disk is simulated by making
the write raise ``ENOSPC``.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import save_random_ijepa
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ijepa_eval.cli import app
from ijepa_eval.data.synth import generate_classes

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "records" / "runs"
# A pretraining run small enough to start in well under a second (see test_train_loop.py).
TINY = [
    "data.batch_size=4", "data.workers=0", "model.embed_dim=64", "model.depth=2",
    "model.num_heads=2", "model.patch_size=4", "model.img_size=32", "model.predictor_depth=1",
    "model.predictor_embed_dim=32", "mask.min_keep=4", "optimization.epochs=2",
    "optimization.warmup=1", "eval.every=0", "logging.log_every=1", "logging.keep_every=0",
]  # fmt: skip

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


class _Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- fixtures: inputs made once, copied or edited per case --------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """An ImageFolder (train + val) for `run --tasks knn` and pretraining."""
    root = tmp_path_factory.mktemp("adversarial") / "classes"
    return generate_classes(root, classes=2, per_class=6, val_per_class=2, size=32, progress=False)


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory) -> Path:
    """A valid HF directory (64 wide, 2 layers, 4 heads, MLP 160, 32 px, 8 px patches)."""
    out = tmp_path_factory.mktemp("adversarial") / "hf"
    save_random_ijepa(out)
    return out


@pytest.fixture
def results(tmp_path) -> Path:
    """A results folder that already holds earlier run records."""
    root = tmp_path / "results"
    shutil.copytree(FIXTURE_RUNS, root / "runs")
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temporaries included), with its bytes."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _fails_in_one_line(result, *needles: str) -> str:
    """The command failed with exactly one line on stderr, holding ``needles``, no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not a crash
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, line
    return line


# --- checkpoint files ---------------------------------------------------------------------------


def _official(official_ckpt: Path) -> dict:
    return torch.load(official_ckpt, map_location="cpu", weights_only=True)


def _ckpt_random_bytes(path: Path, official: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(4096))


def _ckpt_truncated_zip(path: Path, official: Path) -> None:
    data = official.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _ckpt_truncated_legacy(path: Path, official: Path) -> None:
    torch.save(_official(official), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:5000])


def _ckpt_empty(path: Path, official: Path) -> None:
    path.write_bytes(b"")


def _ckpt_text(path: Path, official: Path) -> None:
    path.write_text("hello, I am a README\n")


def _ckpt_no_encoder_keys(path: Path, official: Path) -> None:
    torch.save({"optimizer": {"lr": torch.tensor(0.1)}, "weights": torch.zeros(3)}, path)


def _ckpt_only_metadata(path: Path, official: Path) -> None:
    torch.save({"epoch": 3, "loss": 0.5}, path)


def _ckpt_a_list(path: Path, official: Path) -> None:
    torch.save([torch.zeros(2)], path)


def _ckpt_wrong_shape(path: Path, official: Path) -> None:
    state = _official(official)
    state["target_encoder"]["module.blocks.0.attn.proj.weight"] = torch.zeros(192, 100)
    torch.save(state, path)


def _ckpt_code(path: Path, official: Path) -> None:
    state = _official(official)
    state["payload"] = _Payload(path.with_name("code-ran"))
    torch.save(state, path)


def _ckpt_plain_pickle(path: Path, official: Path) -> None:
    path.write_bytes(pickle.dumps({"target_encoder": {"w": [1.0, 2.0]}}))


def _ckpt_nan(path: Path, official: Path) -> None:
    state = _official(official)
    state["target_encoder"]["module.blocks.0.mlp.fc1.weight"].view(-1)[:5] = float("nan")
    torch.save(state, path)


def _ckpt_bad_arch_metadata(path: Path, official: Path) -> None:
    state = _official(official)
    arch = {"embed_dim": 192, "depth": 2, "mlp_hidden": 768, "patch_size": 8, "grid": 4}
    state["ijepa_eval"] = {"arch": {**arch, "num_heads": "three"}}
    torch.save(state, path)


CHECKPOINTS: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...]]] = {
    "random-bytes": (_ckpt_random_bytes, ("is not a readable checkpoint", "not a PyTorch zip")),
    "truncated-zip": (_ckpt_truncated_zip, ("truncated or corrupt",)),
    "truncated-legacy": (_ckpt_truncated_legacy, ("truncated or corrupt",)),
    "empty": (_ckpt_empty, ("empty (0 bytes)",)),
    "text": (_ckpt_text, ("is not a readable checkpoint",)),
    "no-encoder-keys": (_ckpt_no_encoder_keys, ("non-tensor entries: optimizer",)),
    "only-metadata": (_ckpt_only_metadata, ("expected a state dict of tensors",)),
    "a-list": (_ckpt_a_list, ("holds a list, not a state dict",)),
    "wrong-shape": (
        _ckpt_wrong_shape,
        ("wrong shape: blocks.0.attn.proj.weight is (192, 100), expected (192, 192)",),
    ),
    "code": (_ckpt_code, ("refusing to load", "could run code", "it asks for io.open")),
    "plain-pickle": (_ckpt_plain_pickle, ("is a pickle but not one torch.save wrote",)),
    "nan": (_ckpt_nan, ("non-finite weights", "blocks.0.mlp.fc1.weight: 5 NaN values")),
    "bad-arch-metadata": (_ckpt_bad_arch_metadata, ("ijepa_eval.arch.num_heads must be int",)),
}


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_malformed_checkpoint_file(case, official_ckpt, data, results, tmp_path):
    make, needles = CHECKPOINTS[case]
    bad = tmp_path / "model.pth.tar"
    make(bad, official_ckpt)
    before = _snapshot(results)
    run = ["run", "--tasks", "knn", "--data", str(data), "--results", str(results)]
    _fails_in_one_line(runner.invoke(app, [*run, "--ckpt", str(bad)]), str(bad), *needles)
    _fails_in_one_line(runner.invoke(app, ["info", "--ckpt", str(bad)]), *needles)
    assert _snapshot(results) == before  # no record, earlier records intact
    assert not (tmp_path / "code-ran").exists()  # nothing in a pickle ever runs


# --- Hugging Face directories -------------------------------------------------------------------


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    return edit


def _edit_weights(key: str, shape: tuple[int, ...]) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        state = load_file(folder / "model.safetensors")
        state[key] = torch.zeros(shape)
        save_file(state, folder / "model.safetensors")

    return edit


def _write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        target = folder / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())

    return edit


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


LAYER0 = "encoder.layer.0"
HF_DIRS: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "missing-config": (_remove("config.json"), ("has no config.json",)),
    "config-not-json": (_write("config.json", "{hidden_size: 64"), ("is not valid JSON",)),
    "config-a-list": (_write("config.json", "[1, 2]"), ("must hold a JSON object",)),
    "other-model-type": (_edit_config(model_type="vit"), ("model_type is 'vit'",)),
    "no-weights": (_remove("model.safetensors"), ("no model.safetensors",)),
    "weights-not-safetensors": (
        _write("model.safetensors", b"\x05\x00\x00\x00\x00\x00\x00\x00{}"),
        ("not a readable safetensors file",),
    ),
    "wrong-shape": (
        _edit_weights(f"{LAYER0}.intermediate.dense.weight", (100, 64)),
        (f"wrong shape: {LAYER0}.intermediate.dense.weight is (100, 64), expected (160, 64)",),
    ),
    "wrong-shape-query": (
        _edit_weights(f"{LAYER0}.attention.attention.query.weight", (64, 32)),
        (f"{LAYER0}.attention.attention.query.weight has shape (64, 32), expected (64, 64)",),
    ),
    "wrong-shape-positions": (
        _edit_weights("embeddings.position_embeddings", (1, 15, 64)),
        ("embeddings.position_embeddings is (1, 15, 64), expected (1, 16, 64)",),
    ),
    "contradicts-hidden-size": (
        _edit_config(hidden_size=32, num_attention_heads=4),
        ("config.json: hidden_size is 32, but the weights are 64 wide",),
    ),
    "contradicts-layers": (
        _edit_config(num_hidden_layers=5),
        ("num_hidden_layers is 5, but the weights hold 2 layers",),
    ),
    "contradicts-mlp": (
        _edit_config(intermediate_size=128),
        ("intermediate_size is 128, but the weights have MLPs 160 wide",),
    ),
    "contradicts-patch-size": (
        _edit_config(patch_size=4),
        ("patch_size is 4, but the weights use 8×8 patches;",),
    ),
    "contradicts-image-size": (
        _edit_config(image_size=64),
        ("image_size is 64, but the weights hold position embeddings for 4×4 patches",),
    ),
    "contradicts-qkv-bias": (
        _edit_config(qkv_bias=False),
        ("qkv_bias is False, but the weights have attention biases",),
    ),
    "heads-do-not-divide": (
        _edit_config(num_attention_heads=5),
        ("num_attention_heads 5 does not divide hidden_size 64",),
    ),
    "negative-width": (_edit_config(hidden_size=-3), ("hidden_size must be ≥ 1, not -3",)),
    "zero-heads": (_edit_config(num_attention_heads=0), ("num_attention_heads must be ≥ 1",)),
    "text-heads": (_edit_config(num_attention_heads="x"), ("num_attention_heads must be int",)),
    "float-layers": (_edit_config(num_hidden_layers=2.5), ("num_hidden_layers must be int",)),
    "zero-eps": (_edit_config(layer_norm_eps=0), ("layer_norm_eps must be > 0, not 0",)),
    "image-not-multiple": (
        _edit_config(image_size=30),
        ("image_size 30 is not a multiple of patch_size 8",),
    ),
    "unknown-network": (
        _edit_config(ijepa_eval={"network": "predictor"}),
        ("ijepa_eval.network must be one of target_encoder, encoder",),
    ),
}


@pytest.mark.parametrize("case", list(HF_DIRS))
def test_malformed_hf_directory(case, hf_model, data, results, tmp_path):
    edit, needles = HF_DIRS[case]
    folder = tmp_path / "hf"
    shutil.copytree(hf_model, folder)
    edit(folder)
    before = _snapshot(results)
    run = ["run", "--tasks", "knn", "--data", str(data), "--results", str(results)]
    _fails_in_one_line(runner.invoke(app, [*run, "--ckpt", str(folder)]), *needles)
    assert _snapshot(results) == before


def test_the_unedited_hf_directory_loads(hf_model):
    """The table above fails for what each case changed, not for the model it starts from."""
    result = runner.invoke(app, ["info", "--ckpt", str(hf_model), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["num_heads"] == 4


# --- task YAML ----------------------------------------------------------------------------------

GOOD_TASK = """\
version: 1
name: mytask
description: k-NN on the folder.
protocol: a test task.
dataset: {train: train, select: none}
probe: {type: knn, params: {ks: [2]}}
metrics: [{name: top1_k2, higher_is_better: true}]
"""
TASK_YAMLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bad-yaml": ("name: [mytask\n", ("is not valid YAML",)),
    "a-list": ("- name: mytask\n", ("must be a mapping of fields",)),
    "unknown-key": (GOOD_TASK + "descripton: x\n", ("unknown field 'descripton'",)),
    "wrong-type": (GOOD_TASK.replace("version: 1", "version: one"), ("version must be int",)),
    "unknown-probe": (GOOD_TASK.replace("type: knn", "type: knnn"), ("knnn",)),
    # k-NN chooses nothing: a selection split would be ignored, and a fraction must be one
    "select-ignored": (GOOD_TASK.replace("select: none", "select: bogus"), ("ignored",)),
    "holdout-range": (GOOD_TASK.replace("select: none", "holdout: 1.5"), ("(0, 1), not 1.5",)),
}


@pytest.mark.parametrize("case", list(TASK_YAMLS))
def test_malformed_task_yaml(case, official_ckpt, data, results, tmp_path):
    text, needles = TASK_YAMLS[case]
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mytask.yaml").write_text(text)
    before = _snapshot(results)
    args = ["run", "--tasks", "mytask", "--include-path", str(tmp_path / "tasks")]
    args += ["--ckpt", str(official_ckpt), "--data", str(data), "--results", str(results)]
    _fails_in_one_line(runner.invoke(app, args), *needles)
    assert _snapshot(results) == before


# --- the user config file ($IJEPA_EVAL_CONFIG) --------------------------------------------------

USER_CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "data-not-mapping": ("data: 5\n", ("config.yaml: data must be a mapping, not 5",)),
    "path-a-number": ("data: {imagenet: 5}\n", ("data.imagenet must be a path, not 5",)),
    "path-a-list": ("data: {imagenet: [a, b]}\n", ("data.imagenet must be a path",)),
    "unknown-key": ("dta: {imagenet: /x}\n", ("unknown key 'dta'; did you mean 'data'?",)),
    "a-list": ("- data\n", ("config.yaml must hold a mapping",)),
    "bad-yaml": ("data: {imagenet: /x\n", ("config file", "is not valid YAML")),
}


@pytest.mark.parametrize("case", list(USER_CONFIGS))
def test_malformed_user_config(case, official_ckpt, results, tmp_path):
    text, needles = USER_CONFIGS[case]
    config = tmp_path / "config.yaml"
    config.write_text(text)
    before = _snapshot(results)
    args = ["run", "--tasks", "knn", "--ckpt", str(official_ckpt), "--results", str(results)]
    result = runner.invoke(app, args, env={"IJEPA_EVAL_CONFIG": str(config)})
    _fails_in_one_line(result, str(config), *needles)
    assert _snapshot(results) == before


# --- pretraining: config, overrides, output folder, resume checkpoint --------------------------

PRETRAIN_OVERRIDES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "negative-batch": (["data.batch_size=-4"], ("data.batch_size must be ≥ 1, not -4",)),
    "negative-workers": (["data.workers=-1"], ("data.workers must be ≥ 0, not -1",)),
    "zero-epochs": (["optimization.epochs=0"], ("optimization.epochs must be ≥ 1, not 0",)),
    "zero-lr": (["optimization.lr=0"], ("optimization.lr must be > 0, not 0.0",)),
    "nan-lr": (["optimization.lr=.nan"], ("optimization.lr must be > 0, not nan",)),
    "ema-above-one": (["optimization.ema=[0.9, 1.5]"], ("optimization.ema must be in [0, 1]",)),
    "ema-backwards": (["optimization.ema=[1.0, 0.9]"], ("low ≤ high, not [1.0, 0.9]",)),
    "crop-scale-zero": (["data.crop_scale=[0, 1]"], ("data.crop_scale must be in (0, 1]",)),
    "negative-seed": (["seed=-1"], ("seed must be ≥ 0, not -1",)),
    "zero-log-every": (["logging.log_every=0"], ("logging.log_every must be ≥ 1, not 0",)),
    "negative-min-keep": (["mask.min_keep=-1"], ("mask.min_keep must be ≥ 0, not -1",)),
    "zero-targets": (["mask.num_targets=0"], ("mask.num_targets must be ≥ 1, not 0",)),
    "zero-temperature": (["eval.temperature=0"], ("eval.temperature must be > 0",)),
    "width-not-multiple-of-4": (
        ["model.embed_dim=66", "model.num_heads=3"],
        ("model.embed_dim=66 must be a multiple of 4",),
    ),
    "heads-do-not-divide": (["model.num_heads=3"], ("model.num_heads=3 must divide",)),
    "unknown-key": (["optimization.lrr=1"], ("unknown config key 'optimization.lrr'",)),
    "wrong-type": (["data.batch_size=big"], ("data.batch_size must be int, not 'big'",)),
    "not-key-value": (["seed"], ("override 'seed' is not key=value",)),
}


def _pretrain(data: Path, out: Path, *extra: str, resume: bool = False):
    args = ["pretrain", "--config", "vit_tiny_synth", *TINY, f"data.root={data}", *extra]
    return runner.invoke(app, [*args, "--out", str(out), *(["--resume"] if resume else [])])


@pytest.mark.parametrize("case", list(PRETRAIN_OVERRIDES))
def test_malformed_pretraining_override(case, data, tmp_path):
    overrides, needles = PRETRAIN_OVERRIDES[case]
    _fails_in_one_line(_pretrain(data, tmp_path / "run", *overrides), *needles)
    assert not (tmp_path / "run").exists()  # stopped before anything was written


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("data: {batch_size: [unclosed\n", "is not valid YAML"),
        ("- data\n", "must hold a mapping of config sections"),
        ("data: {batch_size: 0}\n", "data.batch_size must be ≥ 1, not 0"),
        ("dataa: {}\n", "unknown config key 'dataa'; did you mean data"),
    ],
)
def test_malformed_pretraining_config_file(text, needle, data, tmp_path):
    config = tmp_path / "pretrain.yaml"
    config.write_text(text)
    args = ["pretrain", "--config", str(config), f"data.root={data}", "--out", str(tmp_path / "o")]
    _fails_in_one_line(runner.invoke(app, args), needle)
    assert not (tmp_path / "o").exists()


def _resume_from_random_bytes(latest: Path, official: Path) -> None:
    latest.write_bytes(random.Random(1).randbytes(2048))


def _resume_from_code(latest: Path, official: Path) -> None:
    torch.save({"encoder": {}, "payload": _Payload(latest.parent.parent / "code-ran")}, latest)


def _resume_from_official(latest: Path, official: Path) -> None:
    shutil.copyfile(official, latest)  # a real checkpoint, but not one `pretrain` wrote


RESUMES: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...]]] = {
    "random-bytes": (_resume_from_random_bytes, ("is not a readable checkpoint",)),
    "code": (_resume_from_code, ("refusing to load", "could run code")),
    "truncated": (_ckpt_truncated_zip, ("truncated or corrupt",)),
    "empty": (_ckpt_empty, ("empty (0 bytes)",)),
    "not-ours": (_resume_from_official, ("not written by ijepa-eval pretrain",)),
}


@pytest.mark.parametrize("case", list(RESUMES))
def test_malformed_resume_checkpoint(case, official_ckpt, data, tmp_path):
    make, needles = RESUMES[case]
    out = tmp_path / "run"
    out.mkdir()
    make(out / "latest.pth.tar", official_ckpt)
    before = _snapshot(out)
    _fails_in_one_line(_pretrain(data, out, resume=True), "latest.pth.tar", *needles)
    assert _snapshot(out) == before  # the checkpoint untouched, nothing else written
    assert not (tmp_path / "code-ran").exists()


# --- results inputs: reference rows and tolerances ----------------------------------------------

ONE_ROW = (
    "source: x\nrows:\n  - {model: m, results: [{task: t, metrics: %s, adaptation: frozen, "
    "where: w}]}\n"
)
REFERENCES: dict[str, tuple[str, str]] = {
    "bad-yaml": ("[1", "is not valid YAML"),
    "rows-not-list": ("source: x\nrows: 5\n", "'rows' must be a non-empty list"),
    "results-not-list": (
        "source: x\nrows:\n  - {model: m, results: 5}\n",
        "rows[].results must be a list",
    ),
    "metrics-not-mapping": (ONE_ROW % "[1, 2]", "t metrics must be a mapping"),
    "metric-not-number": (ONE_ROW % "{top1: high}", "t top1 = 'high' is no number"),
    "unknown-field": ("source: x\nrows: []\nsorce: y\n", "unknown field 'sorce'"),
    "bad-adaptation": (
        (ONE_ROW % "{top1: 1}").replace("frozen", "probed"),
        "adaptation must be frozen or fine-tuned",
    ),
}
TOLERANCES: dict[str, tuple[str, str]] = {
    "not-a-number": ("default: abc\n", "'default' must be a number ≥ 0 (0.5) or a percentage"),
    "negative": ("default: -1\n", "not -1"),
    "tasks-not-mapping": ("tasks: 5\n", "'tasks' must map task names"),
    "a-list": ("- 1\n", "use the keys 'default' and 'tasks'"),
}


@pytest.mark.parametrize("case", list(REFERENCES))
def test_malformed_reference_file(case, tmp_path):
    text, needle = REFERENCES[case]
    (tmp_path / "ref.yaml").write_text(text)
    args = ["leaderboard", "--results", str(FIXTURE_RUNS.parent), "--reference"]
    _fails_in_one_line(runner.invoke(app, [*args, str(tmp_path / "ref.yaml")]), needle)


@pytest.mark.parametrize("case", list(TOLERANCES))
def test_malformed_tolerance_file(case, tmp_path):
    text, needle = TOLERANCES[case]
    baseline = tmp_path / "baseline"
    shutil.copytree(FIXTURE_RUNS, baseline / "runs")
    (baseline / "tolerances.yaml").write_text(text)
    args = ["check", "--baseline", str(baseline), "--results", str(FIXTURE_RUNS.parent)]
    _fails_in_one_line(runner.invoke(app, args), "tolerances.yaml", needle)


# --- output paths: a file where a folder belongs ------------------------------------------------


def test_a_file_named_as_the_results_or_output_folder(official_ckpt, data, tmp_path):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder\n")
    run = ["run", "--tasks", "knn", "--ckpt", str(official_ckpt), "--data", str(data)]
    for args in (
        [*run, "--results", str(a_file)],
        ["leaderboard", "--results", str(a_file)],
        ["check", "--baseline", str(FIXTURE_RUNS.parent), "--results", str(a_file)],
        ["check", "--baseline", str(a_file), "--results", str(FIXTURE_RUNS.parent)],
    ):
        _fails_in_one_line(runner.invoke(app, args), str(a_file), "is a file")
    _fails_in_one_line(_pretrain(data, a_file), "--out", "is a file")
    assert a_file.read_text() == "not a folder\n"


def test_leaderboard_out_naming_a_folder(tmp_path):
    (tmp_path / "board").mkdir()
    args = ["leaderboard", "--results", str(FIXTURE_RUNS.parent), "--out", str(tmp_path / "board")]
    _fails_in_one_line(runner.invoke(app, args), "could not write the md leaderboard", "board")
    assert list((tmp_path / "board").iterdir()) == []


# --- a full disk --------------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_writing_the_leaderboard(monkeypatch, tmp_path):
    out = tmp_path / "leaderboard.md"
    out.write_text("the previous leaderboard\n")
    monkeypatch.setattr(os, "fsync", _disk_full)  # the atomic writer's flush to disk
    args = ["leaderboard", "--results", str(FIXTURE_RUNS.parent), "--out", str(out)]
    result = runner.invoke(app, args)
    _fails_in_one_line(
        result, f"could not write the md leaderboard to {out}: No space left on device"
    )
    assert "| model |" in result.stdout  # the table is not lost: it is printed instead
    assert out.read_text() == "the previous leaderboard\n"  # left as it was
    assert [p.name for p in tmp_path.iterdir()] == ["leaderboard.md"]  # no temporary file


def test_full_disk_while_writing_a_pretraining_checkpoint(monkeypatch, data, tmp_path):
    out = tmp_path / "run"
    real_save = torch.save
    saves = []

    def save_once_then_full(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) > 1:  # epoch 1 is written; the disk is full at epoch 2
            _disk_full()
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_once_then_full)
    line = _fails_in_one_line(
        _pretrain(data, out),
        f"could not write the checkpoint to {out / 'latest.pth.tar'}: No space left on device",
        "the previous one (epoch 1) is intact",
        "--resume",
    )
    assert "Traceback" not in line
    assert torch.load(out / "latest.pth.tar", weights_only=True)["epoch"] == 1  # intact
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    monkeypatch.setattr(torch, "save", real_save)  # space freed: the run resumes and finishes
    result = _pretrain(data, out, resume=True)
    assert result.exit_code == 0, result.output
    assert torch.load(out / "latest.pth.tar", weights_only=True)["epoch"] == 2
