"""Celery tasks of monitoring: call a service, nothing more. Each is safe
to run twice and to die halfway (see monitoring.services), and beat sends
the next one seconds later, so they are acknowledged on receipt: a late
acknowledgement buys nothing here, and kombu's Redis transport can crash
the whole worker ("Unrecoverable error ... 'hostname'") when Redis drops
while a late ack is pending, seen in the Redis-outage test."""

from celery import shared_task

from monitoring import services


@shared_task(ignore_result=True, acks_late=False)
def rollup_task() -> int:
    """Beat-scheduled every ROLLUP_INTERVAL: events -> rollups -> push.
    Returns how many buckets were recomputed."""
    return services.rollup_run().buckets


@shared_task(ignore_result=True, acks_late=False)
def system_sample_task() -> None:
    services.system_sample()


@shared_task(ignore_result=True, acks_late=False)
def prune_task() -> int:
    return services.events_prune()
