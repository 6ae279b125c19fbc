"""The registry of known checkpoints (``checkpoints/registry.yaml``).

Entries are data, like timm's pretrained configs: where the weights live and what they are,
never how to build the model. Users add their own entries without forking by listing extra YAML
files in ``IJEPA_EVAL_REGISTRY`` (``os.pathsep``-separated); a name defined twice is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ijepa_eval.errors import UserError
from ijepa_eval.paths import resource_path
from ijepa_eval.registry import Registry
from ijepa_eval.yaml_file import read_yaml


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    source: Literal["native", "hub", "bundled"]
    arch: str
    patch_size: int
    resolution: int
    pretrain_data: str
    epochs: int
    networks: tuple[str, ...]
    license: str
    url: str | None = None
    hub_id: str | None = None
    sha256: str | None = None
    file: str | None = None  # bundled: a file beside the registry YAML that lists it
    default: bool = False  # the checkpoint commands use when --ckpt is not given
    base_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        return self.base_dir / self.file if self.file and self.base_dir else None

    @property
    def filename(self) -> str | None:
        return self.url.rsplit("/", 1)[-1] if self.url else None


def registry_files() -> list[Path]:
    extra = os.environ.get("IJEPA_EVAL_REGISTRY", "")
    return [resource_path("checkpoints/registry.yaml")] + [
        Path(p).expanduser() for p in extra.split(os.pathsep) if p
    ]


def checkpoint_registry() -> Registry:
    """Every entry of `registry_files`, in file order; a name defined twice is an error."""
    registry = Registry("checkpoint", UserError)
    for path in registry_files():
        for name, raw in _read(path).items():
            if name in registry:  # said before judging the entry, and naming the second file
                raise UserError(f"checkpoint name {name!r} is defined twice (again in {path})")
            registry.register(name, _entry(name, raw, path))
    return registry


def load_registry() -> dict[str, RegistryEntry]:
    """Name → entry, in the order the registry files list them."""
    return dict(checkpoint_registry().items())


def lookup(spec: str) -> RegistryEntry | None:
    """The entry named ``spec``, or whose download file name is ``spec``; None if neither."""
    registry = checkpoint_registry()
    if spec in registry:
        return registry.get(spec)
    return next((e for _, e in registry.items() if e.filename == spec), None)


def suggest(spec: str) -> list[str]:
    """Known checkpoint names close to ``spec``, for a did-you-mean."""
    return checkpoint_registry().suggest(spec, cutoff=0.5)


def _read(path: Path) -> dict[str, Any]:
    data = read_yaml(path, "checkpoint registry")
    checkpoints = (data or {}).get("checkpoints") if isinstance(data, dict) else None
    if not isinstance(checkpoints, dict):
        raise UserError(f"checkpoint registry {path} has no 'checkpoints:' mapping")
    return checkpoints


def _entry(name: str, raw: Any, path: Path) -> RegistryEntry:
    known = set(RegistryEntry.__dataclass_fields__) - {"name", "extra", "base_dir"}
    if not isinstance(raw, dict):
        raise UserError(f"registry entry {name!r} in {path} is not a mapping")
    try:
        fields = {k: v for k, v in raw.items() if k in known}
        fields["networks"] = tuple(fields.get("networks", ()))
        entry = RegistryEntry(
            name=name,
            **fields,
            base_dir=path.parent,
            extra={k: v for k, v in raw.items() if k not in known},
        )
    except TypeError as exc:
        raise UserError(f"registry entry {name!r} in {path} is incomplete: {exc}") from exc
    needs = {"native": entry.url, "hub": entry.hub_id, "bundled": entry.file}
    if not needs.get(entry.source):
        raise UserError(
            f"registry entry {name!r} in {path} needs source native + url, hub + hub_id, "
            "or bundled + file"
        )
    return entry


def default_checkpoint() -> str:
    """The name of the registry's default checkpoint (the bundled reference model)."""
    defaults = [name for name, e in load_registry().items() if e.default]
    if len(defaults) != 1:
        raise UserError(f"the registry marks {len(defaults)} checkpoints as default; pass --ckpt")
    return defaults[0]
