"""CIFAR adapters: the released Python-2 pickle format, read without a general unpickler."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from ijepa_eval.data import load_dataset
from ijepa_eval.data.safe_pickle import load_array_pickle
from ijepa_eval.errors import DataError


class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the CIFAR release: ``bytes`` as Python 2 ``str``
    (BINSTRING), so array data needs no ``_codecs.encode`` global."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # The release names numpy's array rebuilder by its numpy 1.x module path.
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def batch(n: int, labels_key: str, rng: np.random.Generator) -> dict:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(x) for x in rng.integers(0, 10, n)]
    return {b"batch_label": b"fake batch", b"data": data, labels_key.encode(): labels}


def write_cifar10(root: Path, n: int = 4) -> list[dict]:
    rng = np.random.default_rng(0)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    (base / "batches.meta").write_bytes(py2_pickle({b"label_names": names, b"num_vis": 3072}))
    batches = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        b = batch(n, "labels", rng)
        (base / name).write_bytes(py2_pickle(b))
        batches.append(b)
    return batches


def test_release_format_needs_only_numpy_globals(tmp_path: Path) -> None:
    raw = py2_pickle(batch(2, "labels", np.random.default_rng(0)))
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"_codecs" not in raw


def test_cifar10_reads_images_and_labels(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path)
    train = load_dataset("cifar10", tmp_path, "train")
    test = load_dataset("cifar10", tmp_path / "cifar-10-batches-py", "test")
    assert len(train) == 20 and len(test) == 4 and train.num_classes == 10
    assert train.classes[:2] == ["airplane", "automobile"]
    image, label = train[5]  # batch 2, row 1
    expected = batches[1][b"data"][1].reshape(3, 32, 32).transpose(1, 2, 0)
    assert image.size == (32, 32) and np.array_equal(np.asarray(image), expected)
    assert label == batches[1][b"labels"][1]
    assert test.targets == batches[5][b"labels"]


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    meta = {
        b"fine_label_names": [f"f{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"c{i}".encode() for i in range(20)],
    }
    (base / "meta").write_bytes(py2_pickle(meta))
    for split in ("train", "test"):
        b = {**batch(3, "fine_labels", rng), b"coarse_labels": [1, 2, 19]}
        (base / split).write_bytes(py2_pickle(b))
    fine = load_dataset("cifar100", tmp_path, "test")
    coarse = load_dataset("cifar100", tmp_path, "test", label="coarse")
    assert fine.num_classes == 100 and coarse.num_classes == 20
    assert coarse.targets == [1, 2, 19]


class _Boom:
    """Unpickling this calls os.system: a stand-in for a malicious file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    base = tmp_path / "cifar-10-batches-py"
    write_cifar10(tmp_path)
    (base / "data_batch_3").write_bytes(pickle.dumps({"data": _Boom(marker)}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_3 is not a safe CIFAR batch.*refusing global"):
        load_dataset("cifar10", tmp_path, "train")
    assert not marker.exists()
    # A general unpickler would have run it: the file really is malicious.
    pickle.loads((base / "data_batch_3").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(eval, protocol=2),  # builtins.eval
        b"cbuiltins\nexec\n(Vprint(1)\ntR.",  # protocol 0 REDUCE
        pickle.dumps(np.array([1, "x"], dtype=object), protocol=2),
    ],
)
def test_other_dangerous_pickles_are_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "evil"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="evil"):
        load_array_pickle(path)


def test_missing_batch_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"data_batch_4 is missing"):
        load_dataset("cifar10", tmp_path, "train")
