"""The periodic tasks beat runs, stored by django-celery-beat so staff can
edit them in the admin (Periodic tasks). Missing ones are created after
every `migrate` with the intervals from settings; existing ones are left
as staff set them."""

from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from mlserving.conf import monitoring_settings


def _defaults() -> dict[str, tuple[str, float]]:
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
        "registry: verify artifacts": (
            "registry.tasks.artifacts_verify_task",
            settings.ARTIFACT_VERIFY_INTERVAL,
        ),
    }


def schedules_ensure() -> list[str]:
    """Create the missing periodic tasks; the names created."""
    created = []
    for name, (task, seconds) in _defaults().items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        every = max(1, round(seconds))
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=every, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.create(
            name=name,
            task=task,
            interval=interval,
            # A run that could not be delivered in time is skipped, not
            # queued up behind the next one (e.g. while Redis is down).
            expire_seconds=max(5, every * 5),
        )
        created.append(name)
    return created
