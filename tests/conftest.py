"""Shared fixtures. Tests never reach the network and never touch the user's caches."""

from __future__ import annotations

import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported anywhere
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# rich fixes a console's width when it is created if COLUMNS is set then (pytest-xdist workers
# inherit one): unset, each CLI test's own COLUMNS decides, in a worker as in a single process
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import OFFICIAL  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):  # one worker per core: threads would only contend
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` skip cleanly where there is no CUDA device (CI has none)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test gets its own ijepa-eval cache and Hugging Face Hub cache."""
    root = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("IJEPA_EVAL_CACHE", str(root / "ijepa-eval"))
    monkeypatch.delenv("IJEPA_EVAL_REGISTRY", raising=False)
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(root / "hf-hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    yield root


@pytest.fixture(scope="module")
def one_thread():
    """One torch and BLAS thread: tiny tensors on a shared 2-core machine run several times
    faster alone than with intra-op threads waiting on each other (use with usefixtures)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def torchrun_two() -> list[str]:
    """``torchrun`` for two local processes whose rendezvous binds a port the OS picks (c10d on
    127.0.0.1:0): no fixed --master_port, so concurrent test runs never collide."""
    torchrun = Path(sys.executable).with_name("torchrun")
    return [str(torchrun), "--nnodes", "1", "--nproc_per_node", "2",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0"]  # fmt: skip


@pytest.fixture(scope="session")
def official_ckpt() -> Path:
    return OFFICIAL / "tiny-vit-p8-32px.pth.tar"


@pytest.fixture(scope="session")
def official_input() -> torch.Tensor:
    return torch.from_numpy(np.load(OFFICIAL / "input.npy"))


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `data synth-classes` set (3 classes, 12 + 4 images each, 16 px); test files
    that need another size define their own."""
    from ijepa_eval.data.synth import generate_classes

    return generate_classes(
        tmp_path_factory.mktemp("classes"),
        classes=3,
        per_class=12,
        size=16,
        val_per_class=4,
        progress=False,
    )
