"""The feature cache never serves damaged numbers, shares work between processes, and cleans
up after killed ones; extraction and probes stop on non-finite numbers."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SLOW_DATASET
from PIL import Image
from typer.testing import CliRunner

import ijepa_eval as ie
from ijepa_eval import atomic
from ijepa_eval.cli import app
from ijepa_eval.errors import CacheWarning
from ijepa_eval.features.store import FeatureStore

runner = CliRunner()


@pytest.fixture
def folder(tmp_path) -> Path:
    """An ImageFolder of 2 classes, 6 random 32×32 images each in train and 3 in val."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for split, count in (("train", 6), ("val", 3)):
        for c in range(2):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / f"c{c}" / f"{i}.png")
    return root


def _extract(enc, ds, cache, **kw):
    options = {"workers": 0, "shard_size": 4, "progress": False, "store_dtype": "float32"}
    return ie.extract(enc, ds, cache_dir=cache, **{**options, **kw})


def _arrays(entry_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(entry_dir)): p.read_bytes()
        for p in sorted(entry_dir.glob("shards/*/*.npy"))
    }


def _overwrite_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\x7f\x7f\x00\x01\xff\xfe\x12\x34"
    path.write_bytes(bytes(data))


def _bad_header(path: Path) -> None:
    path.write_bytes(b"\x93NUMPY garbage" + path.read_bytes()[14:])


# Each damages cache entry ``e``; ``s`` names the shard it aims at.
DAMAGE = {
    "bytes inside every array": lambda e, s: [_overwrite_middle(p) for p in e.rglob("*.npy")],
    "a corrupt .npy header": lambda e, s: [_bad_header(p) for p in (e / s).glob("*.npy")],
    "a truncated array": lambda e, s: [os.truncate(p, 100) for p in (e / s).glob("*.npy")],
    "a deleted array": lambda e, s: (e / s / "pooled.npy").unlink(),
    "a deleted shard": lambda e, s: shutil.rmtree(e / s),
    "a corrupt manifest.json": lambda e, s: (e / "manifest.json").write_text("{not json"),
    "a corrupt shard.json": lambda e, s: (e / s / "shard.json").write_text("[]"),
    "a corrupt entry.json": lambda e, s: (e / "entry.json").write_bytes(b"\x00" * 10),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_recomputed_never_used(damage, folder, tmp_path, official_ckpt):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    request = {"layers": "all", "tokens": "all"}
    clean = _extract(enc, ds, tmp_path / "c", **request)
    snapshot = _arrays(clean.entry.dir)
    expected = clean.pooled(), clean.tokens()[:]
    DAMAGE[damage](clean.entry.dir, "shards/00001")
    with pytest.warns(CacheWarning) as said:
        again = _extract(enc, ds, tmp_path / "c", **request)
    (line,) = [str(w.message) for w in said]
    assert "\n" not in line and ("damaged" in line or "unreadable" in line), line
    assert not again.hit
    assert torch.equal(again.pooled(), expected[0])
    assert torch.equal(again.tokens()[:], expected[1])
    assert _arrays(again.entry.dir) == snapshot  # byte for byte what the clean run committed
    assert again.entry.damage(remember=False) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # intact now: served without a word
        assert _extract(enc, ds, tmp_path / "c", **request).hit


def test_only_the_damaged_shards_are_recomputed(folder, tmp_path, official_ckpt):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    clean = _extract(enc, ds, tmp_path / "c")
    _overwrite_middle(clean.entry.dir / "shards/00001/pooled.npy")
    with pytest.warns(CacheWarning, match=r"shards/00001/pooled\.npy: checksum mismatch\): "):
        again = _extract(enc, ds, tmp_path / "c")
    assert again.computed == [1]


def test_a_request_for_fewer_blocks_repairs_the_entry_that_serves_it(
    folder, tmp_path, official_ckpt
):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    everything = _extract(enc, ds, tmp_path / "c", layers="all")
    _overwrite_middle(everything.entry.dir / "shards/00000/pooled.npy")
    with pytest.warns(CacheWarning):
        last = _extract(enc, ds, tmp_path / "c", layers="last")
    assert last.entry.dir == everything.entry.dir  # repaired, not a second entry made beside
    assert last.entry.spec.layers == (0, 1)
    assert len(FeatureStore(tmp_path / "c").entries()) == 1


def _run(folder: Path, tmp_path: Path, *extra: str):
    args = ["run", "--tasks", "knn", "--data", str(folder), "--workers", "0"]
    args += ["--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"), *extra]
    return runner.invoke(app, args)


def _records(tmp_path: Path) -> list[dict]:
    paths = sorted((tmp_path / "r" / "runs" / "knn").glob("*.json"), key=os.path.getmtime)
    return [json.loads(p.read_text()) for p in paths]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_run_after_damage_reports_the_clean_metrics(damage, folder, tmp_path):
    first = _run(folder, tmp_path)
    assert first.exit_code == 0, first.output
    for entry in FeatureStore(tmp_path / "c").entries():  # the train and the val entry
        DAMAGE[damage](entry.dir, "shards/00000")
    second = _run(folder, tmp_path)
    assert second.exit_code == 0 and "Traceback" not in second.output, second.output
    said = [line for line in second.output.splitlines() if "cache entry" in line]
    assert len(said) == 2  # one line per damaged entry
    clean, repaired = _records(tmp_path)
    assert repaired["metrics"] == clean["metrics"]
    assert not any(e["cache_hit"] for e in repaired["features"]["entries"])
    assert sum("cache entry" in note for note in repaired["notes"]) == 2


def test_run_refresh_extracts_again(folder, tmp_path):
    assert _run(folder, tmp_path).exit_code == 0
    assert _run(folder, tmp_path).exit_code == 0
    refreshed = _run(folder, tmp_path, "--refresh")
    assert refreshed.exit_code == 0, refreshed.output
    first, hit, fresh = _records(tmp_path)
    assert all(e["cache_hit"] for e in hit["features"]["entries"])
    assert not any(e["cache_hit"] for e in fresh["features"]["entries"])
    assert fresh["metrics"] == first["metrics"]


def test_cache_commands_work_on_damaged_entries(folder, tmp_path, official_ckpt):
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    cache = tmp_path / "c"
    broken = _extract(enc, ds, cache, layers="last").entry
    damaged = _extract(enc, ds, cache, layers="all").entry
    (broken.dir / "entry.json").write_text("{")
    _overwrite_middle(damaged.dir / "shards/00002/pooled.npy")
    opt = ["--cache-dir", str(cache)]
    listing = runner.invoke(app, ["cache", "ls", *opt], env={"COLUMNS": "250"})
    assert listing.exit_code == 0 and "entry.json is unreadable" in listing.output
    verify = runner.invoke(app, ["cache", "verify", *opt])
    assert verify.exit_code == 1 and "Traceback" not in verify.output
    assert "entry.json is unreadable" in verify.output
    assert "shards/00002/pooled.npy: checksum mismatch" in verify.output
    repair = runner.invoke(app, ["cache", "verify", "--repair", *opt])
    assert repair.exit_code == 0, repair.output
    assert not broken.dir.exists() and not (damaged.dir / "shards/00002").exists()
    after = runner.invoke(app, ["cache", "verify", *opt])
    assert after.exit_code == 0 and "incomplete, 1 shard(s) to go" in after.output
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what was dropped is simply extracted again
        assert _extract(enc, ds, cache, layers="all").computed == [2]
    (damaged.dir / "entry.json").write_text("not json")
    removed = runner.invoke(app, ["cache", "rm", damaged.short_key, *opt])
    assert removed.exit_code == 0 and FeatureStore(cache).all_entries() == []


# --- concurrent extraction ---------------------------------------------------------------


def _held_elsewhere(folder, tmp_path, official_ckpt, shard: int):
    """An extraction started in a thread while ``shard`` is locked as by another process;
    returns once it has done every other shard (and waits for that one)."""
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    lone = _extract(enc, ds, tmp_path / "lone")
    meta = {"key_fields": lone.entry.meta["key_fields"], "made_from": {}}
    entry = FeatureStore(tmp_path / "c").open(
        lone.entry.dir.parent.name, lone.entry.spec, meta, len(ds), 4
    )
    claim = entry.shard_lock(shard)
    claim.acquire()
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(fs=_extract(enc, ds, tmp_path / "c")))
    thread.start()
    deadline = time.time() + 60
    while entry.missing_shards() != [shard] and time.time() < deadline:
        time.sleep(0.02)
    assert entry.missing_shards() == [shard] and thread.is_alive()  # the rest done, it waits
    return lone, entry, claim, thread, out


def test_a_shard_claimed_by_another_process_is_waited_for_not_computed(
    folder, tmp_path, official_ckpt
):
    lone, entry, claim, thread, out = _held_elsewhere(folder, tmp_path, official_ckpt, 0)
    arrays = {"pooled": np.load(lone.entry.shard_dir(0) / "pooled.npy")}
    entry.commit_shard(0, arrays)  # the other process finishes its shard
    claim.release()
    thread.join(60)
    assert out["fs"].computed == [1, 2]
    assert _arrays(entry.dir) == _arrays(lone.entry.dir)


def test_a_shard_committed_by_another_writer_mid_commit_is_kept(
    folder, tmp_path, official_ckpt, monkeypatch
):
    """Without working locks (some network filesystems) two writers can race to one shard's
    final name: the loser keeps the winner's shard and goes on (it used to exit 1)."""
    enc = ie.load_encoder(official_ckpt)
    ds = ie.load_dataset("imagefolder", folder, "train")
    entry = _extract(enc, ds, tmp_path / "c").entry
    theirs = (entry.shard_dir(0) / "pooled.npy").read_bytes()
    arrays = {"pooled": np.zeros_like(np.load(entry.shard_dir(0) / "pooled.npy"))}
    looks = iter([False, True])  # free when checked, taken by the time of the rename
    monkeypatch.setattr(type(entry), "is_committed", lambda self, i: next(looks))
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # the winner's stays
    entry.commit_shard(0, arrays)
    assert (entry.shard_dir(0) / "pooled.npy").read_bytes() == theirs


def test_a_shard_whose_owner_died_is_computed(folder, tmp_path, official_ckpt):
    lone, entry, claim, thread, out = _held_elsewhere(folder, tmp_path, official_ckpt, 1)
    claim.release()  # its owner died: the kernel frees the lock, nothing was committed
    thread.join(60)
    assert sorted(out["fs"].computed) == [0, 1, 2]
    assert _arrays(entry.dir) == _arrays(lone.entry.dir)


_TWIN = (
    SLOW_DATASET
    + """
import json, sys
from pathlib import Path
import ijepa_eval as ie

ckpt, root, cache, ready, me = sys.argv[1:6]
enc = ie.load_encoder(ckpt)
ds = Slow(ie.load_dataset("imagefolder", root, "train"), 0.05)
Path(ready, me).touch()
while len(list(Path(ready).iterdir())) < 2:  # start together
    time.sleep(0.01)
fs = ie.extract(enc, ds, cache_dir=cache, store_dtype="float32", shard_size=2, workers=0,
                progress=False)
print(json.dumps(fs.computed))
"""
)


@pytest.mark.slow
def test_two_processes_share_one_entry(folder, tmp_path, official_ckpt):
    script = tmp_path / "twin.py"
    script.write_text(textwrap.dedent(_TWIN))
    (tmp_path / "ready").mkdir()
    cmd = [sys.executable, str(script), str(official_ckpt), str(folder), str(tmp_path / "c")]
    procs = [
        subprocess.Popen([*cmd, str(tmp_path / "ready"), me], stdout=subprocess.PIPE, text=True)
        for me in ("a", "b")
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    a, b = (json.loads(out.strip().splitlines()[-1]) for out in outs)
    assert a and b and not set(a) & set(b)  # both worked, no shard twice
    assert sorted(a + b) == list(range(6))
    enc = ie.load_encoder(official_ckpt)
    lone = _extract(enc, ie.load_dataset("imagefolder", folder, "train"), tmp_path / "lone")
    (shared,) = FeatureStore(tmp_path / "c").entries()
    lone_2 = _extract(
        enc, ie.load_dataset("imagefolder", folder, "train"), tmp_path / "lone2", shard_size=2
    )
    assert shared.complete and _arrays(shared.dir) == _arrays(lone_2.entry.dir)
    assert torch.equal(ie.features.FeatureSet(shared, (1,)).pooled(), lone.pooled())


# --- temporaries left by killed processes --------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _planted(path: Path, age_s: float = 0.0) -> Path:
    """A leftover temporary: a directory if it is a shard's, else a file; ``age_s`` old."""
    if path.name.startswith((".0", ".tmp-")):
        (path / "pooled.npy").parent.mkdir(parents=True)
    else:
        path.write_text("partial")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    host, dead = atomic._HOST, _dead_pid()
    folder = tmp_path / "f"
    folder.mkdir()
    stale = [
        _planted(folder / f".latest.pth.tar.{host}.{dead}.0123abcd.tmp"),  # owner gone
        _planted(folder / f".00003.{host}.{dead}.89abcdef.tmp"),  # a shard's directory
        _planted(folder / ".run.json.otherhost.42.0123abcd.tmp", 7200),  # old, elsewhere
        _planted(folder / ".record-ab_cd123.tmp", 7200),  # names of earlier versions
        _planted(folder / ".latest.pth.tar.k2j_x9qa.tmp", 7200),
        _planted(folder / ".tmp-00001-0123abcd", 7200),
    ]
    kept = [
        _planted(folder / f".x.json.{host}.{os.getppid()}.0123abcd.tmp"),  # its writer runs
        _planted(folder / ".y.json.otherhost.42.0123abcd.tmp"),  # elsewhere, may be writing
        _planted(folder / ".record-ab_cd123.tmp.keep", 7200),  # not a name we make
        _planted(folder / ".notes.tmp", 7200),
        _planted(folder / "results.json", 7200),
    ]
    atomic.write_text(folder / "new.txt", "hello")
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in kept)
    assert (folder / "new.txt").read_text() == "hello"


def test_killed_writers_litter_is_cleared_by_the_next_run(folder, tmp_path, official_ckpt):
    host, dead = atomic._HOST, _dead_pid()
    assert _run(folder, tmp_path).exit_code == 0
    runs = tmp_path / "r" / "runs" / "knn"
    (entry,) = FeatureStore(tmp_path / "c").entries()[:1]
    litter = [
        _planted(runs / f".x.json.{host}.{dead}.0123abcd.tmp"),
        _planted(runs / ".record-abcd1234.tmp", 7200),
        _planted(entry.dir / "shards" / f".00000.{host}.{dead}.0123abcd.tmp"),
        _planted(entry.dir / "shards" / ".tmp-00001-0123abcd", 7200),
    ]
    assert _run(folder, tmp_path).exit_code == 0  # from the cache: reads, writes a record
    assert [p for p in litter if p.exists()] == []


def test_a_pretraining_checkpoint_write_clears_a_killed_ones_temporary(tmp_path):
    from ijepa_eval.train import checkpoint

    temp = tmp_path / f".latest.pth.tar.{atomic._HOST}.{_dead_pid()}.0123abcd.tmp"
    temp.write_bytes(b"\x00" * 1000)
    checkpoint.save(tmp_path / "latest.pth.tar", {"epoch": 1})
    assert not temp.exists() and (tmp_path / "latest.pth.tar").is_file()


# --- finite numbers or nothing -------------------------------------------------------------


def test_features_beyond_float16_stop_extraction(folder, tmp_path, official_ckpt):
    ckpt = torch.load(official_ckpt, map_location="cpu", weights_only=True)
    ckpt["target_encoder"]["module.norm.weight"].mul_(1e6)  # finite, but past float16's range
    torch.save(ckpt, tmp_path / "loud.pth.tar")
    args = ["extract", "--ckpt", str(tmp_path / "loud.pth.tar"), "--data", str(folder)]
    args += ["--workers", "0", "--cache-dir", str(tmp_path / "c")]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    (line,) = refused.stderr.strip().splitlines()
    assert "non-finite pooled features" in line and "--store float32" in line
    assert not list((tmp_path / "c").rglob("shard.json"))  # nothing cached
    assert runner.invoke(app, [*args, "--store", "float32"]).exit_code == 0


def test_a_diverged_configuration_is_left_out_and_all_diverged_stops(folder, tmp_path):
    from ijepa_eval.probes import LinearGridConfig, linear_grid

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 8, generator=gen), torch.arange(40) % 2
    x[:, 0] += 3 * y  # learnable
    x *= 1e3  # unnormalised features: a huge lr overflows the weights
    config = LinearGridConfig(  # raw coordinates: whitened, these features would not overflow
        lrs=(0.01, 1e37), weight_decays=(0.0,), heads=("linear",), min_steps=50, whiten=(False,)
    )
    with pytest.warns(UserWarning, match=r"1 of 2 configurations diverged .*lr 1e\+37"):
        grid = linear_grid({"x": x}, y, {"x": x}, y, num_classes=2, config=config)
    assert grid.best["lr"] == 0.01
    assert grid.rows[1]["diverged"] and grid.rows[1]["val_top1"] is None
    everything = replace(config, lrs=(1e37,))
    with pytest.raises(ie.UserError, match="diverged .* every configuration"):
        linear_grid({"x": x}, y, {"x": x}, y, num_classes=2, config=everything)
    args = ["run", "--tasks", "linprobe", "--data", str(folder), "--workers", "0"]
    args += ["--results", str(tmp_path / "r"), "-p", "lrs=[1e300]", "-p", "min_steps=20"]
    stopped = runner.invoke(app, args)
    assert stopped.exit_code == 1 and "Traceback" not in stopped.output
    (line,) = stopped.stderr.strip().splitlines()
    assert "linear probe: training diverged" in line
    assert not (tmp_path / "r" / "runs").exists() or not any((tmp_path / "r").rglob("*.json"))


# --- one line, not a traceback ------------------------------------------------------------


def test_a_corrupt_image_read_by_a_loader_worker_is_one_line(folder, tmp_path):
    (folder / "train" / "c0" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    args = ["extract", "--data", str(folder), "--workers", "1", "--cache-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert "3.png" in line and "Original" not in line


def test_a_full_disk_still_prints_the_metrics_and_keeps_nothing_partial(
    folder, tmp_path, monkeypatch
):
    assert _run(folder, tmp_path).exit_code == 0  # an earlier result, to be kept intact
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}

    def full(dest, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "create_new", full)
    result = _run(folder, tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "top1_k10" in result.stdout  # the numbers were shown
    (line,) = result.stderr.strip().splitlines()
    assert "No space left on device" in line and str(tmp_path / "r") in line
    after = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    assert after == before  # no head or predictions without their record; earlier run intact
