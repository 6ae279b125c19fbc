"""Finding tasks: the bundled ``tasks/*.yaml``, installed plugins, and ``--include-path`` dirs.

A plugin package exposes task YAMLs through the ``ijepa_eval.tasks`` entry-point group; the
entry point's object is a directory (or a list of directories/files) of task YAMLs::

    [project.entry-points."ijepa_eval.tasks"]
    my_tasks = "my_package:TASK_DIR"

A task's name is its file's stem (files starting with ``_`` are include-only bases); a name
found twice is an error, never a silent override.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

from ijepa_eval.errors import UserError
from ijepa_eval.paths import resource_path
from ijepa_eval.registry import Registry
from ijepa_eval.tasks.spec import TaskSpec, TaskSpecError, load_task_file

ENTRY_POINT_GROUP = "ijepa_eval.tasks"


def task_registry(include_paths: Iterable[str | os.PathLike[str]] = ()) -> Registry:
    """Every known task name → its YAML file."""
    tasks = Registry("task", UserError)
    for source in [resource_path("tasks"), *_plugin_paths(), *map(Path, include_paths)]:
        for path in _yaml_files(Path(source)):
            tasks.register(path.stem, path)
    return tasks


def get_task(name: str, include_paths: Iterable[str | os.PathLike[str]] = ()) -> TaskSpec:
    path = task_registry(include_paths).get(name)
    spec = load_task_file(path)
    if spec.name != name:
        raise TaskSpecError(f"task YAML {path}: its name field {spec.name!r} differs from {name!r}")
    return spec


def all_tasks(include_paths: Iterable[str | os.PathLike[str]] = ()) -> list[TaskSpec]:
    registry = task_registry(include_paths)
    return [get_task(name, include_paths) for name in registry.names()]


def _yaml_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UserError(f"task path {source} does not exist")
    return sorted(p for p in source.glob("*.yaml") if not p.name.startswith("_"))


def _plugin_paths() -> list[Path]:
    found: list[Path] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
        except Exception as exc:  # a broken plugin should say so, not break every command
            raise UserError(f"task plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        items = target if isinstance(target, list | tuple) else [target]
        found += [Path(item) for item in items]
    return found
