"""Benchmark tasks: YAML specs, a registry with plugins, and the pipeline that runs one."""

from ijepa_eval.lazy import lazy_exports

__all__ = lazy_exports(
    __name__,
    {
        "ijepa_eval.tasks.curve": ("CurveResult", "curve"),
        "ijepa_eval.tasks.pipeline": (
            "ExtractOptions",
            "Job",
            "RunResult",
            "evaluate",
            "prepare",
            "prepare_tasks",
            "run_job",
        ),
        "ijepa_eval.tasks.record": ("RunRecord",),
        "ijepa_eval.tasks.registry": ("all_tasks", "get_task", "task_registry"),
        "ijepa_eval.tasks.spec": ("TaskSpec", "TaskSpecError", "load_task_file"),
        "ijepa_eval.tasks.sweep": ("SweepResult", "sweep"),
    },
)
