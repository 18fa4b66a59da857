"""Celery tasks of monitoring: call a service, nothing more. Each is safe
to run twice and to die halfway (see monitoring.services)."""

from celery import shared_task

from monitoring import services


@shared_task(ignore_result=True)
def rollup_task() -> int:
    """Beat-scheduled every ROLLUP_INTERVAL: events -> rollups -> push.
    Returns how many buckets were recomputed."""
    return services.rollup_run().buckets


@shared_task(ignore_result=True)
def system_sample_task() -> None:
    services.system_sample()


@shared_task(ignore_result=True)
def prune_task() -> int:
    return services.events_prune()
