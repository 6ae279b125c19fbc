"""Malformed data, tried as a user would: every case goes through the CLI and must end in one
line on stderr, exit status 1, no traceback, nothing left behind and earlier results intact —
or in the documented recovery (``--skip-bad-images``, a file decoded by its content).

Input kinds: images, dataset layouts (imagefolder, CIFAR, CLEVR, NYU depth, depth folder,
Hugging Face datasets on disk) and CLEVR scenes JSON. Each case builds a tiny dataset (16 px, two
classes), damages one thing, and runs ``data info`` or ``run --tasks knn`` with the bundled
checkpoint; ``run`` cases write into a results folder that already holds a record.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ijepa_eval.cli import app

runner = CliRunner()
SIZE = 16


# --- tiny datasets ----------------------------------------------------------------------------


def _png(seed: int, size: int = SIZE) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def imagefolder(root: Path) -> Path:
    """``train`` with 3 images per class, ``val`` with 1: classes ``a`` and ``b``."""
    for split, n in (("train", 3), ("val", 1)):
        for c, cls in enumerate("ab"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}.png").write_bytes(_png(100 * c + 10 * (split == "val") + i))
    return root


def scene(index: int, depths: list[float], split: str = "val") -> dict:
    objects = [{"pixel_coords": [5, 5, d], "shape": "cube"} for d in depths]
    name = f"CLEVR_{split}_{index:06d}.png"
    return {"image_index": index, "image_filename": name, "split": split, "objects": objects}


def clevr(root: Path, scenes: object = None, raw: bytes | None = None) -> Path:
    """``CLEVR_v1.0`` with three images per split; ``scenes`` / ``raw`` replace val's JSON."""
    (root / "scenes").mkdir(parents=True)
    for split in ("train", "val"):
        good = [scene(i, [9.0 + i] * (3 + i), split) for i in range(3)]
        (root / "images" / split).mkdir(parents=True)
        for s in good:
            (root / "images" / split / s["image_filename"]).write_bytes(_png(s["image_index"]))
        doc = {"info": {"split": split}, "scenes": good}
        if split == "val" and scenes is not None:
            doc = scenes
        data = raw if raw is not None and split == "val" else json.dumps(doc).encode()
        (root / "scenes" / f"CLEVR_{split}_scenes.json").write_bytes(data)
    return root


def nyu(root: Path, *, depth_shape: tuple[int, ...] | None = None, depth_dtype=np.float32):
    """``nyu_depth_v2_labeled.mat`` (3 frames, 6x8) laid out as MATLAB v7.3 writes it."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(root / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = rng.integers(0, 256, (3, 3, 8, 6), dtype=np.uint8)
        f["depths"] = rng.uniform(0.5, 9, depth_shape or (3, 8, 6)).astype(depth_dtype)
    with h5py.File(root / "splits.mat", "w") as f:
        f["trainNdxs"], f["testNdxs"] = np.array([[1.0, 2.0]]), np.array([[3.0]])
    return root


def depth_folder(root: Path, depth_size: int = SIZE, depth_mode: str = "I;16") -> Path:
    """``<split>/rgb/NAME.png`` with ``<split>/depth/NAME.png`` (16-bit millimetres)."""
    for split, n in (("train", 4), ("val", 2)):
        for kind in ("rgb", "depth"):
            (root / split / kind).mkdir(parents=True)
        for i in range(n):
            (root / split / "rgb" / f"{i}.png").write_bytes(_png(i))
            mm = np.full((SIZE, SIZE), 2000 + 100 * i, dtype=np.uint16)
            Image.fromarray(mm).save(root / split / "depth" / f"{i}.png")
    bad = root / "train" / "depth" / "1.png"
    if depth_mode == "L":
        Image.new("L", (SIZE, SIZE), 40).save(bad)
    elif depth_size != SIZE:
        Image.fromarray(np.full((depth_size, depth_size), 2000, dtype=np.uint16)).save(bad)
    return root


def cifar10(root: Path, **replace: bytes) -> Path:
    """``cifar-10-batches-py`` with two images per batch; ``replace`` swaps a file's bytes."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = [f"c{i}" for i in range(10)]
    files = {"batches.meta": pickle.dumps({"label_names": names}, protocol=3)}
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [0, 1]}
        files[name] = pickle.dumps(batch, protocol=3)
    files.update(replace)
    for name, data in files.items():
        (base / name).write_bytes(data)
    return root


def hf(root: Path, rows: dict[str, list] | None = None) -> Path:
    """A ``save_to_disk`` DatasetDict with ``train`` (3 per class) and ``val`` (1 per class)."""
    import datasets

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}
    )

    def table(n: int, seed: int) -> datasets.Dataset:
        images = [{"bytes": _png(seed + i), "path": None} for i in range(2 * n)]
        return datasets.Dataset.from_dict(
            {"image": images, "label": [0] * n + [1] * n}, features=features
        )

    splits = {"train": table(3, 0), "val": table(1, 50)}
    if rows is not None:
        splits["train"] = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(root))
    return root


# --- damage -----------------------------------------------------------------------------------


def _bomb_png() -> bytes:
    """A valid PNG header claiming 100,000 x 100,000 pixels (Pillow refuses to decode it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class _RunsCode:
    """Pickles as a call to ``os.getcwd``: harmless, but a general unpickler would call it."""

    def __reduce__(self):
        return (os.getcwd, ())


# --- the cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """``make(tmp)`` builds the damaged input and returns the CLI arguments (``{results}`` and
    ``{cache}`` are filled in); ``says`` must be in the one error line (or, for a recovery
    with ``exit_code`` 0, in the output)."""

    make: Callable[[Path], list[str]]
    says: str
    exit_code: int = 1
    run: bool = field(default=False)  # a `run` whose results folder already holds a record


def _run(data: str, *extra: str, task: str = "knn") -> list[str]:
    return [
        "run", "--tasks", task, "--data", data, "--ckpt", "ijepa_tiny_synth",
        "--results", "{results}", "--cache-dir", "{cache}", "--workers", "0", *extra,
    ]  # fmt: skip


def _info(spec: str, *extra: str) -> list[str]:
    return ["data", "info", spec, *extra]


def _image_case(damage: Callable[[Path], None], *extra: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        root = imagefolder(tmp / "data")
        damage(root / "train" / "a")
        return _run(str(root), *extra)

    return make


def _folder_case(
    damage: Callable[[Path], None], command: Callable[[Path], list[str]]
) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        root = imagefolder(tmp / "data")
        damage(root)
        return command(root)

    return make


def _scenes_case(doc: object = None, raw: bytes | None = None, adapter: str = "clevr_count"):
    def make(tmp: Path) -> list[str]:
        return _info(f"{adapter}:{clevr(tmp / 'CLEVR', doc, raw)}", "--split", "val")

    return make


def _scenes_with(change: Callable[[list[dict]], object], adapter: str = "clevr_count"):
    """The good scenes, changed by ``change`` (which edits them in place or returns a doc)."""
    scenes = [scene(i, [9.0 + i] * (3 + i)) for i in range(3)]
    doc = change(scenes)
    return _scenes_case({"scenes": scenes} if doc is None else doc, adapter=adapter)


def _clevr_run_case(change: Callable[[list[dict]], None]):
    """``run --tasks clevr_count``: train reads well, then val's scenes stop the run."""

    def make(tmp: Path) -> list[str]:
        scenes = [scene(i, [9.0 + i] * (3 + i)) for i in range(3)]
        change(scenes)
        return _run(f"clevr_count:{clevr(tmp / 'CLEVR', {'scenes': scenes})}", task="clevr_count")

    return make


def _clevr_files_case(damage: Callable[[Path], None]):
    def make(tmp: Path) -> list[str]:
        root = clevr(tmp / "CLEVR")
        damage(root)
        return _info(f"clevr_count:{root}", "--split", "val")

    return make


def _nyu_case(damage: Callable[[Path], None] | None = None, split: str = "train", **kw):
    def make(tmp: Path) -> list[str]:
        root = nyu(tmp / "nyu", **kw)
        if damage is not None:
            damage(root)
        return _info(f"nyu_depth_v2:{root}", "--split", split)

    return make


def _cifar_case(split: str = "train", **replace: bytes):
    def make(tmp: Path) -> list[str]:
        return _info(f"cifar10:{cifar10(tmp / 'cifar', **replace)}", "--split", split)

    return make


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _set_index(value: object) -> Callable[[list[dict]], None]:
    return lambda scenes: scenes[1].__setitem__("image_index", value)


def _pop(key: str, i: int = 1) -> Callable[[list[dict]], None]:
    def change(scenes: list[dict]) -> None:
        del scenes[i][key]

    return change


def _set(key: str, value: object, i: int = 1) -> Callable[[list[dict]], None]:
    return lambda scenes: scenes[i].__setitem__(key, value)


def _coords(value: object) -> Callable[[list[dict]], None]:
    return lambda scenes: scenes[0]["objects"][0].__setitem__("pixel_coords", value)


def _frame_9_in_test(root: Path) -> None:
    with h5py.File(root / "splits.mat", "w") as f:
        f["trainNdxs"], f["testNdxs"] = np.array([[1.0]]), np.array([[9.0]])


def _unpaired(root: Path) -> Path:
    (root / "train" / "rgb" / "3.png").unlink()
    return root


def _without_batch(root: Path) -> Path:
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    return root


def _hf_with_bad_row(root: Path) -> Path:
    images = [{"bytes": _png(i) if i != 1 else b"not a png", "path": None} for i in range(6)]
    return hf(root, rows={"image": images, "label": [0, 0, 0, 1, 1, 1]})


def _damage_hf_index(root: Path) -> Path:
    (root / "dataset_dict.json").write_text('{"splits": ')
    return root


def _no_name(scenes: list[dict]) -> None:
    del scenes[1]["image_index"], scenes[1]["image_filename"]


_MALICIOUS = pickle.dumps({"data": _RunsCode(), "labels": [0]}, protocol=3)

CASES: dict[str, Case] = {
    # images: a run stops on the first unreadable one, naming it
    "image/corrupt bytes": Case(
        _image_case(lambda a: (a / "0.png").write_bytes(os.urandom(300))),
        "cannot read image",
        run=True,
    ),
    "image/truncated png": Case(
        _image_case(lambda a: _truncate(a / "1.png")), "a/1.png: image file is truncated", run=True
    ),
    "image/zero-byte jpg": Case(
        _image_case(lambda a: (a / "empty.jpg").write_bytes(b"")), "a/empty.jpg", run=True
    ),
    "image/text named .jpg": Case(
        _image_case(lambda a: (a / "notes.jpg").write_text("not a picture")),
        "cannot identify image file",
        run=True,
    ),
    "image/decompression bomb": Case(
        _image_case(lambda a: (a / "huge.png").write_bytes(_bomb_png())),
        "exceeds limit",
        run=True,
    ),
    "image/dangling symlink": Case(
        _image_case(lambda a: os.symlink(a / "gone.png", a / "link.png")),
        "a/link.png",
        run=True,
    ),
    "image/corrupt, --skip-bad-images": Case(
        _image_case(lambda a: (a / "0.png").write_bytes(b"junk"), "--skip-bad-images"),
        "left out 1 unreadable sample(s) of split 'train' (skip_bad_images): a/0.png",
        exit_code=0,
        run=True,
    ),
    "image/png named .jpg is read by its content": Case(
        _folder_case(
            lambda r: (r / "train" / "a" / "0.png").rename(r / "train" / "a" / "0.jpg"),
            lambda r: _info(str(r), "--split", "train", "--skip-bad-images", "--json"),
        ),
        '"skipped": []',
        exit_code=0,
    ),
    # image-folder layouts
    "imagefolder/empty class folder": Case(
        _folder_case(
            lambda r: (r / "train" / "c").mkdir(), lambda r: _info(str(r), "--split", "train")
        ),
        "train/c holds no images",
    ),
    "imagefolder/class folder of non-images": Case(
        _folder_case(
            lambda r: _write(r / "train" / "c" / "README.txt", b"hi"),
            lambda r: _info(str(r), "--split", "train"),
        ),
        "train/c holds no images",
    ),
    "imagefolder/no classes": Case(
        _folder_case(
            lambda r: [shutil.rmtree(p) for p in (r / "train").iterdir()],
            lambda r: _info(f"imagefolder:{r}", "--split", "train"),
        ),
        "has no class folders",
    ),
    "imagefolder/missing split (run)": Case(
        _folder_case(lambda r: shutil.rmtree(r / "val"), lambda r: _run(str(r))),
        "val does not exist (splits in",
        run=True,
    ),
    "imagefolder/missing split (info)": Case(
        _folder_case(lambda r: None, lambda r: _info(str(r), "--split", "test")),
        "test does not exist (splits in",
    ),
    "imagefolder/root is a file": Case(
        _folder_case(lambda r: _write(r / "x.txt", b""), lambda r: _info(str(r / "x.txt"))),
        "not a dataset format we read",
    ),
    "imagefolder/root does not exist": Case(
        _folder_case(lambda r: None, lambda r: _info(f"imagefolder:{r / 'nothing'}")),
        "nothing: it does not exist",
    ),
    # CLEVR scenes JSON
    "scenes/image_index a string": Case(_scenes_with(_set_index("1")), 'image_index "1";'),
    "scenes/image_index a string (run)": Case(
        _clevr_run_case(_set_index("1")), 'image_index "1";', run=True
    ),
    "scenes/image_index a fraction": Case(_scenes_with(_set_index(1.5)), "image_index 1.5;"),
    "scenes/image_index null": Case(_scenes_with(_set_index(None)), "image_index null;"),
    "scenes/image_index negative": Case(_scenes_with(_set_index(-1)), "expected a whole number"),
    "scenes/image_index a boolean": Case(_scenes_with(_set_index(True)), "image_index true;"),
    "scenes/no image name or index": Case(
        _scenes_with(_no_name),
        "scene 1 has neither image_filename nor image_index",
    ),
    "scenes/image_filename a path": Case(
        _scenes_with(_set("image_filename", "../CLEVR_val_000001.png")),
        'image_filename "../CLEVR_val_000001.png"',
    ),
    "scenes/image_filename a number": Case(
        _scenes_with(_set("image_filename", 7)), "image_filename 7"
    ),
    "scenes/no 'scenes' key": Case(_scenes_case({"info": {}}), "found keys 'info'"),
    "scenes/'scenes' not a list": Case(_scenes_case({"scenes": {}}), "'scenes' is an object"),
    "scenes/no scenes": Case(_scenes_case({"scenes": []}), "holds no scenes"),
    "scenes/top level a list": Case(_scenes_case([]), "found a list"),
    "scenes/a scene not an object": Case(
        _scenes_with(lambda s: {"scenes": [*s, 5]}), "scene 3 is a number, not an object"
    ),
    "scenes/objects not a list": Case(_scenes_with(_set("objects", {})), "no 'objects' list"),
    "scenes/objects missing": Case(_scenes_with(_pop("objects")), "no 'objects' list"),
    "scenes/too few objects": Case(
        _scenes_with(_set("objects", [{}, {}])), "has 2 objects; the count task needs 3–10"
    ),
    "scenes/pixel_coords a string": Case(
        _scenes_with(_coords("1234"), adapter="clevr_dist"), "pixel_coords = [x, y, depth]"
    ),
    "scenes/pixel_coords too short": Case(
        _scenes_with(_coords([1, 2]), adapter="clevr_dist"), "found [1, 2]"
    ),
    "scenes/pixel_coords a boolean depth": Case(
        _scenes_with(_coords([1, 2, True]), adapter="clevr_dist"), "found [1, 2, true]"
    ),
    "scenes/depth NaN": Case(
        _scenes_with(_coords([1, 2, float("nan")]), adapter="clevr_dist"),
        "closest depth nan is outside VTAB's range",
    ),
    "scenes/invalid JSON": Case(_scenes_case(raw=b'{"scenes": [}'), "not valid JSON"),
    "scenes/empty file": Case(_scenes_case(raw=b""), "it is empty"),
    "scenes/not UTF-8": Case(_scenes_case(raw=b'{"scenes": "\xff\xfe\xfa"}'), "not valid JSON"),
    "scenes/nested too deep": Case(_scenes_case(raw=b"[" * 200_000), "not valid JSON"),
    "scenes/describes a missing image": Case(
        _clevr_files_case(lambda r: (r / "images/val/CLEVR_val_000002.png").unlink()),
        "1 described image(s) are missing: CLEVR_val_000002.png",
    ),
    "scenes/image without a scene": Case(
        _clevr_files_case(lambda r: _write(r / "images/val/CLEVR_val_000009.png", _png(9))),
        "1 image(s) have no scene: CLEVR_val_000009.png",
    ),
    "scenes/an image described twice": Case(
        _scenes_with(_set("image_filename", "CLEVR_val_000000.png")),
        "describes some images more than once",
    ),
    "clevr/no scenes file": Case(
        _clevr_files_case(lambda r: (r / "scenes/CLEVR_val_scenes.json").unlink()),
        "CLEVR_val_scenes.json does not exist",
    ),
    "clevr/no image folder": Case(
        _clevr_files_case(lambda r: shutil.rmtree(r / "images/val")), "images/val does not exist"
    ),
    # NYU Depth v2
    "nyu/not HDF5": Case(
        _nyu_case(lambda r: (r / "nyu_depth_v2_labeled.mat").write_bytes(b"MATLAB 5.0" * 50)),
        "is not MATLAB v7.3 (HDF5)",
    ),
    "nyu/truncated HDF5": Case(
        _nyu_case(lambda r: _truncate(r / "nyu_depth_v2_labeled.mat", 0.3)), "cannot read"
    ),
    "nyu/depth maps of another shape": Case(
        _nyu_case(depth_shape=(3, 8, 5)), "images (3, 3, 8, 6) and depths (3, 8, 5)"
    ),
    "nyu/depths in integer millimetres": Case(
        _nyu_case(depth_dtype=np.uint16), "float depths in metres"
    ),
    "nyu/no splits.mat": Case(
        _nyu_case(lambda r: (r / "splits.mat").unlink()), "splits.mat does not exist"
    ),
    "nyu/splits.mat truncated": Case(
        _nyu_case(lambda r: (r / "splits.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(60))),
        "cannot read",
    ),
    "nyu/split frame out of range": Case(
        _nyu_case(_frame_9_in_test, split="test"), "testNdxs must hold 1-based frame numbers"
    ),
    # depth folder
    "depth_folder/depth map of another shape": Case(
        lambda tmp: _info(
            f"depth_folder:{depth_folder(tmp / 'd', depth_size=8)}", "--skip-bad-images"
        ),
        "depth map",  # the recovery: left out with a note, listed by data info
        exit_code=0,
    ),
    "depth_folder/depth map of another shape (run)": Case(
        lambda tmp: _run(str(depth_folder(tmp / "d", depth_size=8)), task="depth_synth"),
        "is 8x8 but its image 1.png is 16x16",
        run=True,
    ),
    "depth_folder/8-bit depth map": Case(
        lambda tmp: _info(
            f"depth_folder:{depth_folder(tmp / 'd', depth_mode='L')}", "--skip-bad-images"
        ),
        "is mode L; expected 16-bit mm",
        exit_code=0,
    ),
    "depth_folder/depth map without an image": Case(
        lambda tmp: _info(f"depth_folder:{_unpaired(depth_folder(tmp / 'd'))}", "--split", "train"),
        "1 file(s) have no partner",
    ),
    # CIFAR
    "cifar/missing batch": Case(
        lambda tmp: _info(f"cifar10:{_without_batch(cifar10(tmp / 'c'))}", "--split", "train"),
        "data_batch_3 is missing",
    ),
    "cifar/pickle that runs code": Case(
        _cifar_case(data_batch_2=_MALICIOUS), "refusing global posix.getcwd"
    ),
    "cifar/truncated pickle": Case(
        _cifar_case(data_batch_1=pickle.dumps({"data": [1] * 100}, protocol=3)[:40]),
        "is not a safe CIFAR batch file",
    ),
    "cifar/not a dict": Case(
        _cifar_case(test_batch=pickle.dumps([1, 2], protocol=3), split="test"), "holds a list"
    ),
    "cifar/wrong image shape": Case(
        _cifar_case(
            data_batch_1=pickle.dumps(
                {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, protocol=3
            )
        ),
        "not uint8 (N, 3072)",
    ),
    "cifar/label outside the classes": Case(
        _cifar_case(
            test_batch=pickle.dumps(
                {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, protocol=3
            ),
            split="test",
        ),
        "labels fall outside the 10 classes",
    ),
    # Hugging Face datasets on disk
    "hf/corrupt image in a row": Case(
        lambda tmp: _run(f"hf:{_hf_with_bad_row(tmp / 'hf')}"),
        "split 'train' row 1",
        run=True,
    ),
    "hf/missing split": Case(
        lambda tmp: _info(f"hf:{hf(tmp / 'hf')}", "--split", "test"),
        "has no split 'test'; its splits are: train, val",
    ),
    "hf/no such image column": Case(
        lambda tmp: _info(f"hf:{hf(tmp / 'hf')}", "-o", "image_column=img"),
        "has no image column 'img'; its columns are: image, label",
    ),
    "hf/damaged dataset_dict.json": Case(
        lambda tmp: _info(f"hf:{_damage_hf_index(hf(tmp / 'hf'))}"),
        "cannot read Hugging Face dataset",
    ),
}


# --- the checks -------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (links not followed) and a digest of its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return found


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A results folder holding one good record, and the cache it used."""
    tmp = tmp_path_factory.mktemp("earlier")
    data = imagefolder(tmp / "good")
    args = _run(str(data))
    results, cache = tmp / "results", tmp / "cache"
    filled = [a.format(results=results, cache=cache) for a in args]
    result = runner.invoke(app, filled)
    assert result.exit_code == 0, result.output
    assert len(list((results / "runs" / "knn").glob("*.json"))) == 1
    return results, cache


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_data_ends_in_one_line(
    name: str, tmp_path: Path, earlier: tuple[Path, Path]
) -> None:
    case = CASES[name]
    results, _ = earlier
    cache = tmp_path / "cache"
    args = [a.format(results=results, cache=cache) for a in case.make(tmp_path / "in")]
    before_inputs, before_results = _snapshot(tmp_path / "in"), _snapshot(results)

    result = runner.invoke(app, args, env={"COLUMNS": "200"})

    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == case.exit_code, result.output
    assert _snapshot(tmp_path / "in") == before_inputs  # the data are only read
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers
    after_results = _snapshot(results)
    assert {k: after_results[k] for k in before_results} == before_results  # earlier intact
    new = sorted(set(after_results) - set(before_results))
    if case.exit_code:
        (line,) = [line for line in result.stderr.splitlines() if line.strip()]
        assert line.startswith("error: ") and case.says in line, line
        assert not new, new  # no record, nothing partial
    else:
        assert case.says in result.output, result.output
        if case.run:  # the recovery wrote one complete record, with the note in it
            (record,) = [k for k in new if k.endswith(".json")]
            doc = json.loads((results / record).read_text())
            assert any(case.says in note for note in doc["notes"])
            assert doc["data"]["datasets"]["train"]["skipped"] == 1
            for path in new:  # the recovery's own files: one run, later cases must not see
                (results / path).unlink()
