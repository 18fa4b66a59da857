"""Celery tasks of the registry: fetch, call a service, nothing more."""

from celery import shared_task

from registry.services import artifacts_verify


@shared_task(ignore_result=True)
def artifacts_verify_task() -> int:
    """Beat-scheduled: re-check every artifact; returns how many failed.
    Idempotent: it only sets each version's status to what it finds."""
    report = artifacts_verify()
    return sum(1 for _, status, _ in report if status != "ready")
