"""Beat schedules kept in the database (django-celery-beat), so staff can
edit them in the admin (Periodic tasks). Each app declares its own and
creates the missing ones after every `migrate` (its AppConfig); existing
ones are left as staff set them."""

from django_celery_beat.models import IntervalSchedule, PeriodicTask


def schedules_ensure(defaults: dict[str, tuple[str, float]]) -> list[str]:
    """Create the periodic tasks of `defaults` ({name: (task, seconds)})
    that do not exist yet; the names created."""
    created = []
    for name, (task, seconds) in defaults.items():
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
