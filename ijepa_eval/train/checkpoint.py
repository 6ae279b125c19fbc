"""Training checkpoints in the official layout, with our extras under one new key.

The official keys (``encoder``, ``predictor``, ``target_encoder`` with the DDP ``module.``
prefix, ``opt``, ``scaler``, ``epoch``, ``loss``, ``batch_size``, ``world_size``, ``lr``) mean
what they mean in facebookresearch/ijepa, so its ``load_checkpoint`` and every loader here read
our files. What resuming and loading also need sits under ``ijepa_eval``: the config, the global
step, the sampler epoch, elapsed time and the architecture (``arch``, which
`ijepa_eval.load_encoder` reads for what tensor shapes cannot tell, such as the head count).
Everything is tensors, plain dicts, lists and scalars: it loads with ``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ijepa_eval.errors import CheckpointError, UserError, writing
from ijepa_eval.models.safe_io import read_weights, write_weights

PREFIX = "module."
NETWORKS = ("encoder", "predictor", "target_encoder")


def native_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict as the official DDP-wrapped trainer saves it: every key ``module.``-prefixed."""
    return {PREFIX + k: v for k, v in net.state_dict().items()}


def plain_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix(PREFIX): v for k, v in state.items()}


def save(path: str | os.PathLike[str], payload: dict[str, Any], *, kept: str = "") -> None:
    """Write atomically: a crash or a full disk mid-write leaves the previous checkpoint intact.

    A write the system refuses is one `UserError` naming the file; ``kept`` says what survived.
    """
    with writing("the checkpoint", path, kept):
        write_weights(path, payload)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A training checkpoint, read with ``weights_only=True`` into memory (not mapped: its
    tensors are updated in place and the file is replaced while they are held)."""
    ckpt = read_weights(Path(path), mmap=False)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a training checkpoint")
    return ckpt


def restore(
    ckpt: dict[str, Any],
    path: Path,
    networks: dict[str, nn.Module],
    expected_arch: dict,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[int, int, float]:
    """Load ``networks`` (and ``optimizer``) from ``ckpt``, refusing a checkpoint of another
    architecture or one not written by `pretrain`; returns ``(epoch, step, elapsed seconds)``."""
    ours = ckpt.get("ijepa_eval") if isinstance(ckpt.get("ijepa_eval"), dict) else {}
    progress = (ckpt.get("epoch"), ours.get("step"), ours.get("elapsed"))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in progress):
        raise CheckpointError(
            f"cannot resume from {path}: it was not written by ijepa-eval pretrain (it lacks "
            "the epoch, step and elapsed time a resume needs); start a new logging.out"
        )
    saved_arch = ours.get("arch")
    if saved_arch is not None and saved_arch != expected_arch:
        diff = ", ".join(
            f"{k} {saved_arch.get(k)}→{v}"
            for k, v in expected_arch.items()
            if saved_arch.get(k) != v
        )
        raise UserError(
            f"cannot resume from {path}: it holds another architecture ({diff}); use the "
            "config it was trained with or a new logging.out"
        )
    for name, net in networks.items():
        if not isinstance(ckpt.get(name), dict):
            raise CheckpointError(f"cannot resume from {path}: it has no {name!r} state dict")
        state = plain_state(ckpt[name])
        own = net.state_dict()
        mismatched = sorted(
            set(state) ^ set(own)
            | {k for k in set(state) & set(own) if _shape(state[k]) != own[k].shape}
        )
        if mismatched:
            raise UserError(
                f"cannot resume from {path}: its {name} has another architecture "
                f"(differs at {', '.join(mismatched[:3])}); use the config it was trained with"
            )
        net.load_state_dict(state)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(ckpt.get("opt"))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise CheckpointError(
                f"cannot resume from {path}: its optimizer state does not fit ({exc})"
            ) from None
    epoch, step, elapsed = progress
    return int(epoch), int(step), float(elapsed)


def _shape(value: Any) -> tuple[int, ...] | None:
    return value.shape if isinstance(value, torch.Tensor) else None


def export_encoder(
    src: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    which: str = "target_encoder",
    dtype: torch.dtype = torch.float16,
) -> Path:
    """Keep one encoder of a training checkpoint, cast to ``dtype``, in the native layout.

    The result (``{which: {"module.…": tensor}, "epoch", "ijepa_eval": {arch, config, …}}``)
    is what `ijepa_eval.load_encoder` and the official loaders read; optimizer state and the
    other networks are dropped.
    """
    ckpt = load(src)
    if not isinstance(ckpt.get(which), dict):
        raise CheckpointError(f"{src} has no {which!r} to export")
    extras = ckpt.get("ijepa_eval")
    ours = {k: v for k, v in (extras or {}).items() if k in ("arch", "config", "step")}
    payload = {
        which: {k: v.to(dtype) if v.is_floating_point() else v for k, v in ckpt[which].items()},
        "epoch": ckpt.get("epoch"),
        "loss": ckpt.get("loss"),
        "ijepa_eval": {**ours, "exported_from": Path(src).name, "dtype": str(dtype)},
    }
    save(dest, payload)
    return Path(dest)
