"""The registry's beat schedule: the periodic artifact check."""

from django.conf import settings

from mlserving.schedules import schedules_ensure


def defaults() -> dict[str, tuple[str, float]]:
    return {
        "registry: verify artifacts": (
            "registry.tasks.artifacts_verify_task",
            settings.ARTIFACT_VERIFY_INTERVAL,
        ),
    }


def registry_schedules_ensure() -> list[str]:
    return schedules_ensure(defaults())
