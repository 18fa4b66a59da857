"""Experiments' beat schedule: the evaluation of running experiments
(guardrails, bandit, sequential test), as often as rollups run, since it
reads them."""

from mlserving.conf import monitoring_settings
from mlserving.schedules import schedules_ensure


def defaults() -> dict[str, tuple[str, float]]:
    return {
        "experiments: evaluate": (
            "experiments.tasks.experiments_evaluate_task",
            monitoring_settings.ROLLUP_INTERVAL,
        ),
    }


def experiments_schedules_ensure() -> list[str]:
    return schedules_ensure(defaults())
