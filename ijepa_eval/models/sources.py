"""From a checkpoint spec to the state dicts it holds, in our layout.

Spec forms, tried in this order: ``timm:<name>``; an existing file (native ``.pth.tar``/``.pth``/
``.pt``, a bare state dict, ``.safetensors``); an existing directory (Hugging Face format); a
registry name or the file name of a registry download; a Hub id ``owner/name``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ijepa_eval.download import download
from ijepa_eval.errors import CheckpointError, UserError
from ijepa_eval.models import registry
from ijepa_eval.models.arch import HfArchConfig, VitArch
from ijepa_eval.models.formats import StateDict, to_timm_layout
from ijepa_eval.models.safe_io import read_weights
from ijepa_eval.paths import cache_dir
from ijepa_eval.schema import build

ENCODER_NETWORKS = ("target_encoder", "encoder")
UNLABELLED = "unlabelled"
HF_CONTEXT_NOTE = (
    "Hugging Face I-JEPA weights (facebook/ijepa_*) were converted from the context encoder "
    "('encoder'), not the target encoder the paper evaluates; for the paper's protocol use a "
    "native checkpoint (e.g. ijepa_vith14_in1k)"
)
_WEIGHT_SUFFIXES = (".pth", ".pt", ".tar", ".bin", ".safetensors", ".ckpt")


@dataclass
class Checkpoint:
    """Everything a source holds, before a network is chosen."""

    spec: str
    source_format: str  # native | hf | timm | state_dict
    path: Path  # the weights file that is hashed and recorded
    networks: dict[str, StateDict]  # encoder networks, timm layout
    others: list[str] = field(default_factory=list)  # other networks present (predictor)
    # What the source's own metadata says of the shape (config.json, or the arch our writers
    # store): VitArch field → (its key there, its value there, its value as a VitArch field).
    stated_arch: dict[str, tuple[str, Any, Any]] = field(default_factory=dict)
    stated_in: str = ""  # that metadata's file, for messages
    declared_normalization: dict[str, Any] | None = None
    epoch: int | None = None
    registry_entry: registry.RegistryEntry | None = None
    notes: list[str] = field(default_factory=list)


def open_checkpoint(spec: str | os.PathLike[str]) -> Checkpoint:
    spec_str = str(spec)
    if spec_str.startswith("timm:"):
        return _open_timm(spec_str)
    path = Path(spec_str).expanduser()
    if path.is_file():
        return _open_file(path, spec_str)
    if path.is_dir():
        return _open_hf_dir(path, spec_str)
    entry = registry.lookup(spec_str)
    if entry is not None:
        return _open_registry(entry, spec_str)
    if _looks_like_path(spec_str):
        raise UserError(f"{spec_str}: no such file or directory; check the path")
    if spec_str.count("/") == 1 and all(spec_str.split("/")):
        return _open_hf_dir(_hub_snapshot(spec_str), spec_str)
    hint = registry.suggest(spec_str)
    did_you_mean = f"; did you mean {' or '.join(hint)}?" if hint else ""
    raise UserError(
        f"unknown checkpoint {spec_str!r}: not a file, a directory, a registry name or a Hub id"
        f"{did_you_mean} (`ijepa-eval models` lists the registry)"
    )


def _looks_like_path(spec: str) -> bool:
    """A Hub id is ``owner/name``; anything with a suffix, a leading ./~// or deeper is a path."""
    return (
        spec.endswith(_WEIGHT_SUFFIXES) or spec.startswith((".", "~", "/")) or spec.count("/") > 1
    )


def _open_file(path: Path, spec: str) -> Checkpoint:
    obj = read_weights(path)
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a state dict or checkpoint"
        )
    trained = {k: v for k, v in obj.items() if k in (*ENCODER_NETWORKS, "predictor")}
    if trained:
        return _native_training_checkpoint(path, spec, obj)
    for wrapper in ("state_dict", "model"):  # common wrappers around a bare state dict
        if isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    tensors = _tensors_only(obj, path)
    return Checkpoint(spec, "state_dict", path, {UNLABELLED: _in_our_layout(tensors, path)})


def _native_training_checkpoint(path: Path, spec: str, obj: dict[str, Any]) -> Checkpoint:
    networks = {
        name: _in_our_layout(_tensors_only(obj[name], path, name), path)
        for name in ENCODER_NETWORKS
        if isinstance(obj.get(name), dict)
    }
    others = [k for k in ("predictor",) if isinstance(obj.get(k), dict)]
    if not networks:
        raise CheckpointError(
            f"{path} holds only a {', '.join(others) or 'nothing usable'}, no encoder or "
            "target_encoder: there is nothing to evaluate; use the full training checkpoint"
        )
    epoch = obj.get("epoch")
    ours = obj.get("ijepa_eval")  # written by our convert / trainer: the architecture we knew
    arch = ours.get("arch") if isinstance(ours, dict) else None
    return Checkpoint(
        spec,
        "native",
        path,
        networks,
        others=others,
        stated_arch=_stated_native_arch(arch, path) if arch is not None else {},
        stated_in=f"{path} (ijepa_eval.arch)",
        epoch=int(epoch) if isinstance(epoch, int | float) else None,
    )


def _stated_native_arch(arch: Any, path: Path) -> dict[str, tuple[str, Any, Any]]:
    """The architecture our trainer and ``convert`` store beside the weights, checked."""
    if not isinstance(arch, dict):
        raise CheckpointError(f"{path}: ijepa_eval.arch must be a mapping, not {arch!r:.60}")
    known = [f for f in VitArch.__dataclass_fields__ if f in arch]
    try:
        checked = build(VitArch, {k: arch[k] for k in known}, prefix="ijepa_eval.arch.")
    except UserError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return {k: (f"ijepa_eval.arch.{k}", v, v) for k, v in checked.to_dict().items()}


def _in_our_layout(state: dict[str, torch.Tensor], path: Path) -> StateDict:
    """`to_timm_layout`, its errors naming the file."""
    try:
        return to_timm_layout(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _tensors_only(obj: dict[str, Any], path: Path, where: str = "") -> dict[str, torch.Tensor]:
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad or not obj:
        inside = f" under '{where}'" if where else ""
        shown = ", ".join(map(str, bad[:5])) if bad else "none"
        raise CheckpointError(
            f"{path}: expected a state dict of tensors{inside}; non-tensor entries: {shown}"
        )
    return obj


def _open_hf_dir(directory: Path, spec: str) -> Checkpoint:
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"{directory} has no config.json: not a Hugging Face model directory "
            "(for a native checkpoint pass the .pth.tar file itself)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} must hold a JSON object, not {config!r:.60}")
    if config.get("model_type") != "ijepa":
        raise CheckpointError(
            f"{config_path}: model_type is {config.get('model_type')!r}, expected 'ijepa'"
        )
    if config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(
            f"{config_path}: hidden_act {config['hidden_act']!r} is not supported"
        )
    stated = HfArchConfig.read(config, str(config_path)).stated()
    ours = config.get("ijepa_eval")  # written by our convert: which network this is
    network = ours.get("network", "encoder") if isinstance(ours, dict) else "encoder"
    if network not in ENCODER_NETWORKS:
        raise CheckpointError(
            f"{config_path}: ijepa_eval.network must be one of {', '.join(ENCODER_NETWORKS)}, "
            f"not {network!r}"
        )
    path, state = _read_hf_weights(directory)
    notes = [] if network == "target_encoder" else [HF_CONTEXT_NOTE]
    return Checkpoint(
        spec,
        "hf",
        path,
        {network: _in_our_layout(state, path)},
        stated_arch=stated,
        stated_in=str(config_path),
        declared_normalization=_read_normalization(directory / "preprocessor_config.json"),
        notes=notes,
    )


def _read_hf_weights(directory: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return directory / name, read_weights(directory / name)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(
                set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            )
        except (ValueError, OSError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"{index} is not a safetensors index (a JSON object with a 'weight_map'): {exc}"
            ) from None
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(read_weights(directory / shard))
        return index, state
    raise CheckpointError(
        f"{directory} has config.json but no model.safetensors or pytorch_model.bin"
    )


def _read_normalization(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        proc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None
    stats = [proc.get(k) if isinstance(proc, dict) else None for k in ("image_mean", "image_std")]
    if not all(isinstance(v, list) and len(v) == 3 for v in stats):
        return None  # only ever a note beside I-JEPA's own normalisation: nothing to stop for
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for v in stats for x in v):
        return None
    return {"mean": stats[0], "std": stats[1], "from": path.name}


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = ["config.json", "preprocessor_config.json", "*.safetensors", "*.json", "*.bin"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached"
        raise UserError(
            f"cannot get {repo_id} from the Hugging Face Hub: {why} and it is not in the local "
            f"Hub cache. Where there is network run `hf download {repo_id} --local-dir DIR`, "
            "then pass --ckpt DIR (if you meant a local path: it does not exist)"
        ) from exc


def _open_registry(entry: registry.RegistryEntry, spec: str) -> Checkpoint:
    if entry.source == "hub":
        checkpoint = _open_hf_dir(_hub_snapshot(entry.hub_id or entry.name), spec)
    elif entry.source == "bundled":
        assert entry.path is not None
        checkpoint = _open_file(entry.path, spec)
    else:
        assert entry.url and entry.filename
        dest = cache_dir() / "checkpoints" / entry.filename
        checkpoint = _open_file(download(entry.url, dest, entry.sha256), spec)
    checkpoint.registry_entry = entry
    return checkpoint


def _open_timm(spec: str) -> Checkpoint:
    """``timm:<arch>.<tag>``: timm's pretrained config says where the weights are."""
    import timm

    name = spec.removeprefix("timm:")
    matches = timm.list_pretrained(name) or timm.list_pretrained(f"{name}.*")  # tag optional
    if not matches:
        known = ", ".join(timm.list_pretrained("*ijepa*"))
        raise UserError(f"timm has no pretrained weights {name!r}; its I-JEPA tags: {known}")
    name = matches[0]
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg.hf_hub_id:
        from huggingface_hub import hf_hub_download

        repo = cfg.hf_hub_id if cfg.hf_hub_id != "timm/" else f"timm/{name}"
        path = Path(hf_hub_download(repo, "model.safetensors"))
    elif cfg.url:
        path = download(cfg.url, cache_dir() / "checkpoints" / cfg.url.rsplit("/", 1)[-1])
    else:
        raise UserError(f"timm's tag {name!r} names no download source")
    checkpoint = _open_file(path, spec)
    checkpoint.source_format = "timm"
    checkpoint.declared_normalization = {
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "from": "timm",
    }
    return checkpoint
