"""Benchmark tasks: YAML specs, a registry with plugins, and `evaluate` that runs one."""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.tasks.registry": ("all_tasks", "get_task", "task_registry"),
        "ijepa_eval.tasks.runner": ("RunResult", "evaluate"),
        "ijepa_eval.tasks.spec": ("TaskSpec", "TaskSpecError", "load_task_file"),
    },
)
