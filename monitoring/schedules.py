"""Monitoring's beat schedules: rollups, system samples, pruning."""

from mlserving.conf import monitoring_settings
from mlserving.schedules import schedules_ensure


def defaults() -> dict[str, tuple[str, float]]:
    return {
        "monitoring: rollups": (
            "monitoring.tasks.rollup_task",
            monitoring_settings.ROLLUP_INTERVAL,
        ),
        "monitoring: system sample": (
            "monitoring.tasks.system_sample_task",
            monitoring_settings.SYSTEM_SAMPLE_INTERVAL,
        ),
        "monitoring: prune raw events": ("monitoring.tasks.prune_task", 600),
    }


def monitoring_schedules_ensure() -> list[str]:
    return schedules_ensure(defaults())
