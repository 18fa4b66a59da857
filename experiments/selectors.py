"""Reads of experiments: the running experiments for the serving catalog,
and the status, arm figures and statistics that /ab-test/status, the admin
and the dashboard show."""

import logging
import math
from datetime import datetime, timedelta

import orjson

from experiments import statistics
from experiments.entries import (
    HASH,
    WEIGHTED,
    ServingArm,
    ServingExperiment,
    ServingShadow,
    effective_shares,
)
from experiments.models import AuditEntry, Experiment
from experiments.strategies import HashAssigner, WeightedDraw
from monitoring.events import SHADOW_ARM
from monitoring.models import MetricRollup
from monitoring.totals import RollupTotals

logger = logging.getLogger(__name__)


def experiment_get_running(*, model_name: str) -> Experiment | None:
    return (
        Experiment.objects.filter(
            model__name=model_name, status=Experiment.Status.RUNNING
        )
        .select_related("model")
        .first()
    )


def experiment_get_current(*, model_name: str) -> Experiment | None:
    """The running experiment of a model, else its most recently changed
    one (what /ab-test/status reports)."""
    running = experiment_get_running(model_name=model_name)
    if running is not None:
        return running
    return (
        Experiment.objects.filter(model__name=model_name)
        .select_related("model")
        .order_by("-updated_at", "-id")
        .first()
    )


def _serving(experiment: Experiment, version_ids: set[int]) -> ServingExperiment | None:
    variants = list(experiment.variants.all())
    if not variants or any(v.version_id not in version_ids for v in variants):
        return None
    shares = effective_shares(
        weights=[current_weight(experiment, v) for v in variants],
        paused=[v.paused for v in variants],
    )
    total = sum(shares) or 1.0
    shares = [s / total for s in shares]
    arms = tuple(
        ServingArm(
            name=v.version.version,
            version_id=v.version_id,
            weight=v.weight,
            share=share,
            paused=v.paused,
        )
        for v, share in zip(variants, shares, strict=True)
    )
    hasher = draw = None
    if experiment.strategy == HASH:
        hasher = HashAssigner(
            salt=experiment.salt, layout=experiment.hash_layout["segments"]
        )
    else:
        draw = WeightedDraw(shares)
    shadows = tuple(
        ServingShadow(version_id=s.version_id, fraction=s.mirror_percent / 100)
        for s in experiment.shadows.all()
        if s.version_id in version_ids and s.mirror_percent > 0
    )
    return ServingExperiment(
        id=experiment.id,
        name=experiment.name,
        model=experiment.model.name,
        strategy=experiment.strategy,
        subject_key=experiment.subject_key,
        arms=arms,
        shadows=shadows,
        draw=draw,
        hasher=hasher,
    )


def experiments_serving(*, version_ids: set[int]) -> dict[str, ServingExperiment]:
    """The running experiment of each model, ready for assignment, by model
    name; `version_ids` are the versions the caller knows. An experiment
    that cannot be built (a broken layout) is logged and left out: its
    model serves by alias rather than failing."""
    running = (
        Experiment.objects.filter(status=Experiment.Status.RUNNING)
        .select_related("model")
        .prefetch_related("variants__version", "shadows")
    )
    entries = {}
    for experiment in running:
        try:
            entry = _serving(experiment, version_ids)
        except (ValueError, KeyError, TypeError):
            logger.exception("experiment %s cannot be routed", experiment.name)
            continue
        if entry is not None:
            entries[experiment.model.name] = entry
    return entries


# --- figures --------------------------------------------------------------


def arm_figures(
    *, experiment: Experiment, since: datetime | None = None
) -> dict[str, RollupTotals]:
    """Per-arm totals of an experiment from its rollups (since it started,
    or `since`), by arm name; the shadow versions under "shadow:<version>".
    """
    rollups = MetricRollup.objects.filter(
        model=experiment.model.name, experiment=experiment.name
    )
    since = since or experiment.started_at
    if since is not None:
        rollups = rollups.filter(minute__gte=since.replace(second=0, microsecond=0))
    figures: dict[str, RollupTotals] = {}
    for rollup in rollups:
        name = (
            f"{SHADOW_ARM}:{rollup.version}" if rollup.arm == SHADOW_ARM else rollup.arm
        )
        if name:
            figures.setdefault(name, RollupTotals()).add(rollup)
    return figures


def _figures_of(figures: dict[str, RollupTotals], name: str) -> RollupTotals:
    return figures.get(name) or RollupTotals()


def current_weight(experiment: Experiment, variant) -> float:
    """The share an arm is meant to get now: the bandit's allocation for a
    weighted experiment (once computed), else the configured weight."""
    if experiment.strategy == WEIGHTED and variant.allocation is not None:
        return variant.allocation
    return variant.weight


def _round(value, digits=6):
    return None if value is None else round(value, digits)


def experiment_statistics(
    *, experiment: Experiment, figures: dict[str, RollupTotals]
) -> dict:
    """The statistics block: per arm, versus the control, and the sample
    ratio check (experiments.statistics)."""
    arms = []
    for v in experiment.variants.select_related("version"):
        if v.paused:
            continue  # its traffic goes to the control now
        f = _figures_of(figures, v.version.version)
        arms.append(
            statistics.ArmCounts(
                name=v.version.version,
                weight=current_weight(experiment, v),
                assigned=f.count,
                conversions=f.conversions,
                conversion_trials=f.ok,
                correct=f.correct,
                labelled=f.labels,
                msprt_previous_p=v.sequential_p,
            )
        )
    if not arms:
        return {}
    result = statistics.experiment_statistics(arms=arms)
    result["sample_ratio_mismatch"] = _ratio_check(experiment, arms)
    return result


def _ratio_check(experiment: Experiment, arms: list) -> dict:
    """The sample-ratio check over the assignments made under the current
    weights: those of the whole minutes since they last changed."""
    if experiment.strategy == WEIGHTED:
        return {
            "applicable": False,
            "flagged": False,
            "reason": "weights move (bandit)",
        }
    if experiment.variants.filter(paused=True).exists():
        # the control takes the paused arm's traffic
        return {"applicable": False, "flagged": False, "reason": "an arm is paused"}
    since = experiment.started_at
    changed = experiment.weights_changed_at
    if since is None:
        return {"applicable": False, "flagged": False, "reason": "not started"}
    if changed is not None and changed > since:
        # rollups are per minute: count from the first whole minute after
        since = changed.replace(second=0, microsecond=0) + timedelta(minutes=1)
    figures = arm_figures(experiment=experiment, since=since)
    counts = [_figures_of(figures, a.name).count for a in arms]
    check = statistics.sample_ratio_mismatch(
        counts=counts, weights=[a.weight for a in arms]
    )
    return {
        "applicable": True,
        "since": since.isoformat(),
        "counts": counts,
        "chi2": check.statistic if math.isfinite(check.statistic) else None,
        "p_value": check.p_value,
        "threshold": statistics.SRM_P_THRESHOLD,
        "flagged": check.p_value < statistics.SRM_P_THRESHOLD,
    }


def experiment_status(*, model_name: str, history: bool = False) -> dict:
    """The body of GET /ab-test/status for one model (with the change
    `history` when asked)."""
    experiment = experiment_get_current(model_name=model_name)
    if experiment is None:
        return {
            "enabled": False,
            "model": model_name,
            "experiment": None,
            "strategy": None,
            "split_ratio": None,
            "models": [],
            "arms": [],
            "statistics": {},
            "shadows": [],
            "alerts": [],
            "allocations": [],
            **({"history": []} if history else {}),
        }
    report = experiment_report(experiment=experiment)
    if history:
        report["history"] = experiment_history(experiment=experiment)
    return report


def experiment_report(*, experiment: Experiment) -> dict:
    """Configuration, per-arm traffic and metrics, statistics, shadows,
    guardrail alerts and allocation history of one experiment."""
    variants = list(experiment.variants.select_related("version"))
    figures = arm_figures(experiment=experiment)
    total = sum(_figures_of(figures, v.version.version).count for v in variants)
    arms = []
    for index, v in enumerate(variants):
        f = _figures_of(figures, v.version.version)
        arms.append(
            {
                "arm": v.version.version,
                "version": v.version.version,
                "control": index == 0,
                "weight": v.weight,
                "allocation": v.allocation,
                "paused": v.paused,
                "paused_reason": v.paused_reason,
                "requests": f.count,
                "share": _round(f.count / total) if total else None,
                "errors": f.errors,
                "error_rate": _round(f.error_rate),
                "latency_avg_ms": _round(f.latency_avg, 3),
                "latency_p99_ms": _round(f.latency_percentile(99), 3),
                "conversions": f.conversions,
                "conversion_rate": _round(f.conversions / f.ok) if f.ok else None,
                "labels": f.labels,
                "accuracy": _round(f.accuracy),
                "rewards": f.rewards,
                "reward_mean": _round(f.reward_sum / f.rewards) if f.rewards else None,
            }
        )
    shadows = []
    for shadow in experiment.shadows.select_related("version"):
        f = _figures_of(figures, f"{SHADOW_ARM}:{shadow.version.version}")
        shadows.append(
            {
                "version": shadow.version.version,
                "mirror_percent": shadow.mirror_percent,
                "requests": f.count,
                "errors": f.errors,
                "compared_rows": f.compared_rows,
                "agreement_rate": _round(f.agreement_rate),
                "latency_avg_ms": _round(f.latency_avg, 3),
                "latency_p99_ms": _round(f.latency_percentile(99), 3),
                "primary_latency_avg_ms": _round(
                    f.primary_latency_sum / f.compared_rows, 3
                )
                if f.compared_rows
                else None,
            }
        )
    split_ratio = variants[0].weight if len(variants) == 2 else None
    return {
        "enabled": experiment.status == Experiment.Status.RUNNING,
        "model": experiment.model.name,
        "experiment": experiment.name,
        "status": experiment.status,
        "strategy": experiment.strategy,
        "split_ratio": split_ratio,
        "models": [v.version.version for v in variants],
        "subject_key": experiment.subject_key,
        "started_at": experiment.started_at,
        "stopped_at": experiment.stopped_at,
        "guardrails": {
            "max_error_rate": experiment.max_error_rate,
            "max_p99_latency_ms": experiment.max_p99_latency_ms,
            "min_accuracy": experiment.min_accuracy,
            "min_labels": experiment.min_labels,
            "min_requests": experiment.min_requests,
            "auto_promote": experiment.auto_promote,
        },
        "arms": arms,
        "total_requests": total,
        "statistics": experiment_statistics(experiment=experiment, figures=figures),
        "shadows": shadows,
        "alerts": [
            audit_dict(entry)
            for entry in experiment.audit.filter(kind=AuditEntry.Kind.GUARDRAIL)[:20]
        ],
        "allocations": [
            {"at": record.computed_at, "shares": record.shares}
            for record in experiment.allocations.all()[:50]
        ],
    }


def audit_dict(entry: AuditEntry) -> dict:
    return {
        "at": entry.at,
        "kind": entry.kind,
        "arm": entry.arm,
        "message": entry.message,
        "details": entry.details,
        "actor": entry.actor,
    }


def experiment_history(*, experiment: Experiment, limit: int = 50) -> list[dict]:
    """The experiment's recorded changes (django-simple-history), newest
    first."""
    rows = []
    for record in experiment.history.all()[:limit]:
        rows.append(
            {
                "at": record.history_date,
                "type": {"+": "created", "~": "changed", "-": "deleted"}[
                    record.history_type
                ],
                "status": record.status,
                "strategy": record.strategy,
                "by": str(record.history_user) if record.history_user else "",
                "reason": record.history_change_reason or "",
            }
        )
    return rows


def experiments_overview() -> list[dict]:
    """The status of every model's current experiment, as plain JSON types
    (the channel layer and the websocket carry no datetimes)."""
    names = (
        Experiment.objects.exclude(status=Experiment.Status.DRAFT)
        .values_list("model__name", flat=True)
        .distinct()
    )
    statuses = [experiment_status(model_name=name) for name in sorted(set(names))]
    return orjson.loads(orjson.dumps(statuses))
