"""Benchmark tasks: YAML specs, a registry with plugins, and `evaluate` that runs one."""

from ijepa_eval.tasks.registry import all_tasks, get_task, task_registry
from ijepa_eval.tasks.runner import RunResult, evaluate
from ijepa_eval.tasks.spec import TaskSpec, TaskSpecError, load_task_file

__all__ = [
    "RunResult",
    "TaskSpec",
    "TaskSpecError",
    "all_tasks",
    "evaluate",
    "get_task",
    "load_task_file",
    "task_registry",
]
