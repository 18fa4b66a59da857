"""Celery tasks of experiments: call a service, nothing more."""

from celery import shared_task

from experiments.services import experiments_evaluate


@shared_task(ignore_result=True, acks_late=False)
def experiments_evaluate_task() -> int:
    """Beat-scheduled every ROLLUP_INTERVAL: the running experiments'
    guardrails, bandit allocations and sequential tests, from the rollups
    monitoring keeps. Safe to run twice (each experiment is evaluated
    under its row lock). Returns how many experiments ran."""
    return experiments_evaluate().experiments
