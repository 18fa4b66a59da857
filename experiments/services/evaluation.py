"""After each rollup: check every running experiment's guardrails (pausing
breaching arms), update a weighted experiment's allocation when due, keep
the sequential test's running p-values, promote a declared winner when
auto_promote is on, and push the experiments to dashboards. Scheduled by
beat on its own (experiments/schedules.py): monitoring never calls it."""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from experiments import selectors
from experiments.entries import WEIGHTED
from experiments.models import AllocationRecord, AuditEntry, Experiment
from experiments.services.common import audit, save
from experiments.services.lifecycle import experiment_promote, winner_of
from experiments.strategies import ArmStats, thompson_allocation
from mlserving.conf import experiment_settings
from mlserving.errors import Conflict, ValidationFailed
from monitoring import broadcast
from monitoring.events import SHADOW_ARM
from monitoring.totals import RollupTotals
from registry.generation import registry_generation_bump

logger = logging.getLogger("experiments")


@dataclass
class EvaluationReport:
    experiments: int = 0
    paused_arms: list[str] = field(default_factory=list)
    allocations: dict = field(default_factory=dict)
    promoted: list[str] = field(default_factory=list)


def _breaches(experiment: Experiment, figures) -> list[tuple[str, str, dict]]:
    found = []
    for name, arm in figures.items():
        if name.startswith(SHADOW_ARM):
            continue
        if arm.count >= experiment.min_requests:
            if (
                experiment.max_error_rate is not None
                and arm.error_rate > experiment.max_error_rate
            ):
                found.append(
                    (
                        name,
                        f"error rate {arm.error_rate:.1%} > "
                        f"{experiment.max_error_rate:.1%}",
                        {"error_rate": arm.error_rate, "requests": arm.count},
                    )
                )
                continue
            p99 = arm.latency_percentile(99)
            if (
                experiment.max_p99_latency_ms is not None
                and p99 is not None
                and p99 > experiment.max_p99_latency_ms
            ):
                found.append(
                    (
                        name,
                        f"p99 latency {p99:.1f} ms > "
                        f"{experiment.max_p99_latency_ms:g} ms",
                        {"latency_p99_ms": p99},
                    )
                )
                continue
        if (
            experiment.min_accuracy is not None
            and arm.labels >= experiment.min_labels
            and arm.accuracy < experiment.min_accuracy
        ):
            found.append(
                (
                    name,
                    f"accuracy {arm.accuracy:.1%} < {experiment.min_accuracy:.1%} "
                    f"over {arm.labels} labels",
                    {"accuracy": arm.accuracy, "labels": arm.labels},
                )
            )
    return found


def _guardrails_check(experiment, now, report) -> bool:
    """Pause every non-control arm that breaches a guardrail over the
    guardrail window; an alert is recorded for any arm, control included
    (whose traffic has nowhere else to go). True if an arm was paused."""
    window = timedelta(minutes=experiment_settings.GUARDRAIL_WINDOW_MINUTES)
    since = max(filter(None, (experiment.started_at, now - window)))
    figures = selectors.arm_figures(experiment=experiment, since=since)
    variants = {
        v.version.version: v for v in experiment.variants.select_related("version")
    }
    control = min(variants.values(), key=lambda v: (v.position, v.id))
    paused = False
    for name, message, details in _breaches(experiment, figures):
        variant = variants.get(name)
        if variant is None or variant.paused:
            continue
        recent = experiment.audit.filter(
            kind=AuditEntry.Kind.GUARDRAIL, arm=name, at__gte=now - window
        )
        if variant.pk == control.pk:
            if not recent.exists():
                audit(
                    experiment,
                    AuditEntry.Kind.GUARDRAIL,
                    f"control {name}: {message} (the control is not paused)",
                    arm=name,
                    details=details,
                )
            continue
        variant.paused, variant.paused_reason = True, message[:300]
        save(variant, reason="guardrail")
        Experiment.objects.filter(pk=experiment.pk).update(weights_changed_at=now)
        audit(
            experiment,
            AuditEntry.Kind.GUARDRAIL,
            f"arm {name} paused: {message}; its traffic goes to {control.name}",
            arm=name,
            details=details,
        )
        report.paused_arms.append(f"{experiment.name}:{name}")
        logger.warning(
            "experiment %s: arm %s paused (%s)", experiment.name, name, message
        )
        paused = True
    return paused


def _bandit_update(experiment, figures, now, report, rng) -> bool:
    last = experiment.allocations.values_list("computed_at", flat=True).first()
    interval = experiment_settings.BANDIT_UPDATE_INTERVAL
    if last is not None and (now - last).total_seconds() < interval:
        return False
    variants = list(experiment.variants.select_related("version"))
    continuous = experiment.reward == Experiment.Reward.CONTINUOUS
    arms = []
    inputs = {}
    for v in variants:
        f = figures.get(v.version.version) or RollupTotals()
        stats = ArmStats(
            trials=f.rewards if continuous else f.ok,
            successes=0 if continuous else min(f.conversions, f.ok),
            reward_sum=f.reward_sum,
            reward_sq_sum=f.reward_sq_sum,
            requests=f.count,
            errors=f.errors,
            latency_ms=f.latency_avg or 0.0,
            paused=v.paused,
        )
        arms.append(stats)
        inputs[v.version.version] = {
            "trials": stats.trials,
            "successes": stats.successes,
            "reward_sum": stats.reward_sum,
            "requests": stats.requests,
            "errors": stats.errors,
        }
    shares = thompson_allocation(
        arms=arms,
        rng=rng,
        floor=experiment.min_share,
        reward=experiment.reward,
        error_penalty=experiment.error_penalty,
        latency_penalty_per_ms=experiment.latency_penalty_per_ms,
    )
    for v, share in zip(variants, shares, strict=True):
        v.allocation = float(share)
        save(v, reason="bandit allocation", update_fields=["allocation"])
    record = {
        v.version.version: round(s, 6) for v, s in zip(variants, shares, strict=True)
    }
    AllocationRecord.objects.create(experiment=experiment, shares=record, inputs=inputs)
    report.allocations[experiment.name] = record
    return True


def _sequential_update(experiment, statistics: dict) -> None:
    """Keep each arm's always-valid p-value as a running minimum."""
    by_name = {arm["name"]: arm for arm in statistics.get("arms", [])}
    for v in experiment.variants.select_related("version"):
        versus = (by_name.get(v.version.version) or {}).get("versus_control") or {}
        p = versus.get("msprt_p_value")
        if p is not None and p < v.sequential_p:
            v.sequential_p = p
            v.save(update_fields=["sequential_p"])


def experiments_evaluate(
    *,
    now: datetime | None = None,
    rng: np.random.Generator | None = None,
    push: bool = True,
) -> EvaluationReport:
    """For every running experiment: check guardrails (pausing breaching
    arms), update a weighted experiment's allocation when it is due, keep
    the sequential test's running p-values, promote a declared winner when
    auto_promote is on; then broadcast the experiments to dashboards.
    Called after each rollup."""
    now = now or timezone.now()
    rng = rng or np.random.default_rng()
    report = EvaluationReport()
    running = Experiment.objects.filter(
        status=Experiment.Status.RUNNING
    ).select_related("model")
    for experiment in running:
        report.experiments += 1
        changed = False
        with transaction.atomic():
            # Two workers evaluating at once take turns per experiment.
            experiment = (
                Experiment.objects.select_for_update()
                .select_related("model")
                .get(pk=experiment.pk)
            )
            if experiment.status != Experiment.Status.RUNNING:
                continue
            if _guardrails_check(experiment, now, report):
                changed = True
            figures = selectors.arm_figures(experiment=experiment)
            if experiment.strategy == WEIGHTED and _bandit_update(
                experiment, figures, now, report, rng
            ):
                changed = True
            statistics = selectors.experiment_statistics(
                experiment=experiment, figures=figures
            )
            _sequential_update(experiment, statistics)
            if changed:
                registry_generation_bump()
        winner = winner_of(statistics) if experiment.auto_promote else None
        if winner is not None:
            try:
                experiment_promote(
                    experiment=experiment, arm=winner, reason="auto-promote"
                )
                report.promoted.append(experiment.name)
            except (Conflict, ValidationFailed) as exc:
                logger.warning("auto-promote of %s: %s", experiment.name, exc)
    if push and report.experiments:
        experiments_broadcast()
    return report


def experiments_broadcast() -> bool:
    """Push every model's experiment status to dashboards (best effort)."""
    return broadcast.metrics_broadcast(
        {"type": "experiments", "experiments": selectors.experiments_overview()}
    )
