"""Writes of monitoring: rollups from raw events, pruning, system samples.

Rollups are recomputed, never incremented. Each run finds the events that
reached the database since the last run (by `ingested_at`, the database's
own clock, less a safety margin for transactions that commit out of
order), takes the span of minutes those events fall in, and recomputes
every (minute, model, version, experiment, arm) bucket of that span from
all of its raw events, then upserts the rows on their unique key. Running
a window twice gives the same rows; a run killed halfway leaves the
watermark where it was, so the next run redoes it. Runs hold a row lock on
RollupState and a check that no other run moved the watermark meanwhile,
so two workers never interleave their writes.
"""

import logging
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import psutil
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.utils import timezone

from mlserving.conf import monitoring_settings
from monitoring import broadcast, roles, selectors, stats
from monitoring.models import (
    Feedback,
    MetricRollup,
    PredictionEvent,
    RollupState,
    SystemSample,
)

logger = logging.getLogger(__name__)

# How far behind the watermark each run looks again: a batch whose
# transaction took its timestamp before the previous run read, but
# committed after, is still found.
SAFETY_MARGIN = timedelta(seconds=10)
# Minutes recomputed per query, which bounds memory on a large backlog.
CHUNK = timedelta(minutes=30)
MINUTE = timedelta(minutes=1)
_EVENT_FIELDS = (
    "created_at",
    "model",
    "version",
    "experiment",
    "arm",
    "latency_ms",
    "outcome",
    "rows",
    "predicted_class",
    "class_counts",
    "confidence",
    "cached",
    "agreed_rows",
    "primary_latency_ms",
)
_ROLLUP_KEY = ["minute", "model", "version", "experiment", "arm"]
_ROLLUP_VALUES = [
    "count",
    "errors",
    "errors_by_code",
    "rows",
    "cached",
    "latency_sum_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "latency_histogram",
    "confidence_sum",
    "confidence_count",
    "class_counts",
    "compared_rows",
    "agreed_rows",
    "primary_latency_sum_ms",
    "updated_at",
]
# Written by the feedback pass only; the event pass leaves them alone.
_FEEDBACK_VALUES = [
    "labels",
    "correct",
    "conversions",
    "conversion_trials",
    "rewards",
    "reward_sum",
    "reward_sq_sum",
    "updated_at",
]


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@dataclass
class _Bucket:
    latencies: list = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    rows: int = 0
    cached: int = 0
    confidence_sum: float = 0.0
    confidence_count: int = 0
    classes: Counter = field(default_factory=Counter)
    compared_rows: int = 0
    agreed_rows: int = 0
    primary_latency_sum_ms: float = 0.0

    def to_rollup(self, key: tuple) -> MetricRollup:
        minute, model, version, experiment, arm = key
        latencies = np.asarray(self.latencies, dtype=np.float64)
        p50, p95, p99 = stats.percentiles(latencies)
        return MetricRollup(
            minute=minute,
            model=model,
            version=version,
            experiment=experiment,
            arm=arm,
            count=len(latencies),
            errors=sum(self.errors.values()),
            errors_by_code=dict(sorted(self.errors.items())),
            rows=self.rows,
            cached=self.cached,
            latency_sum_ms=float(latencies.sum()),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
            latency_max_ms=float(latencies.max()),
            latency_histogram=stats.histogram(latencies),
            confidence_sum=self.confidence_sum,
            confidence_count=self.confidence_count,
            class_counts=dict(sorted(self.classes.items())),
            compared_rows=self.compared_rows,
            agreed_rows=self.agreed_rows,
            primary_latency_sum_ms=self.primary_latency_sum_ms,
        )


def _buckets_between(start: datetime, end: datetime) -> list[MetricRollup]:
    """Rollups of every bucket with events in [start, end)."""
    buckets: dict[tuple, _Bucket] = {}
    events = (
        PredictionEvent.objects.filter(created_at__gte=start, created_at__lt=end)
        .values_list(*_EVENT_FIELDS)
        .iterator(chunk_size=20_000)
    )
    for (
        created_at,
        model,
        version,
        experiment,
        arm,
        latency_ms,
        outcome,
        rows,
        predicted_class,
        class_counts,
        confidence,
        cached,
        agreed_rows,
        primary_latency_ms,
    ) in events:
        key = (
            created_at.replace(second=0, microsecond=0),
            model,
            version,
            experiment,
            arm,
        )
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket()
        bucket.latencies.append(latency_ms)
        if outcome != "ok":
            bucket.errors[outcome] += 1
            continue
        bucket.rows += rows
        bucket.cached += cached
        if confidence is not None:
            bucket.confidence_sum += confidence * rows
            bucket.confidence_count += rows
        if predicted_class:
            bucket.classes[predicted_class] += 1
        elif class_counts:
            bucket.classes.update(class_counts)
        if agreed_rows is not None:
            bucket.compared_rows += rows
            bucket.agreed_rows += agreed_rows
            bucket.primary_latency_sum_ms += primary_latency_ms or 0.0
    return [bucket.to_rollup(key) for key, bucket in buckets.items()]


@dataclass
class RollupReport:
    events: int = 0
    buckets: int = 0
    seconds: float = 0.0
    # True when another run committed first: this one stored nothing, and
    # the next run picks its events up again.
    superseded: bool = False
    # Buckets whose feedback columns were recomputed.
    feedback: int = 0
    broadcast: bool | None = None
    rollups: list[MetricRollup] = field(default_factory=list)


def rollup_run(*, now: datetime | None = None, push: bool = True) -> RollupReport:
    """Recompute the rollups touched by events that arrived since the last
    run, then (when `push`) broadcast the recent ones to dashboards. Safe
    to run any number of times, concurrently or after a crash.

    The reading happens outside any transaction, so event writers never
    wait for it (SQLite has one writer at a time); only the upsert and the
    watermark move take a short transaction, and only if no other run has
    moved the watermark meanwhile."""
    started = time.perf_counter()
    now = now or timezone.now()
    oldest_kept = now - timedelta(hours=monitoring_settings.EVENT_RETENTION_HOURS)
    report = RollupReport()
    state, _ = RollupState.objects.get_or_create(pk=1)
    read_from = state.watermark
    new = PredictionEvent.objects.all()
    if read_from is not None:
        new = new.filter(ingested_at__gt=read_from - SAFETY_MARGIN)
    span = new.aggregate(
        first=Min("created_at"),
        last=Max("created_at"),
        seen=Max("ingested_at"),
        events=Count("id"),
    )
    report.events = span["events"]
    rollups: list[MetricRollup] = []
    if report.events:
        # Minutes older than the retention may have lost raw events to
        # pruning; recomputing them would shrink their rollups.
        start = max(_floor_minute(span["first"]), _floor_minute(oldest_kept) + MINUTE)
        end = _floor_minute(span["last"]) + MINUTE
        while start < end:
            chunk_end = min(start + CHUNK, end)
            rollups.extend(_buckets_between(start, chunk_end))
            start = chunk_end
    feedback_from = state.feedback_watermark
    feedback_rollups, feedback_seen = _feedback_buckets(since=feedback_from)
    with transaction.atomic():
        state = RollupState.objects.select_for_update().get(pk=1)
        if state.watermark != read_from or state.feedback_watermark != feedback_from:
            report.superseded = True
            report.seconds = time.perf_counter() - started
            return report
        MetricRollup.objects.bulk_create(
            rollups,
            batch_size=500,
            update_conflicts=True,
            unique_fields=_ROLLUP_KEY,
            update_fields=_ROLLUP_VALUES,
        )
        MetricRollup.objects.bulk_create(
            feedback_rollups,
            batch_size=500,
            update_conflicts=True,
            unique_fields=_ROLLUP_KEY,
            update_fields=_FEEDBACK_VALUES,
        )
        if span["seen"] is not None:
            state.watermark = span["seen"]
        if feedback_seen is not None:
            state.feedback_watermark = feedback_seen
        state.last_run_at = now
        state.last_run_events = report.events
        state.last_run_buckets = report.buckets = len(rollups)
        state.last_run_seconds = time.perf_counter() - started
        state.save()
    report.feedback = len(feedback_rollups)
    report.seconds = time.perf_counter() - started
    recent = now - _snapshot_span()
    touched = {r.minute for r in (*rollups, *feedback_rollups) if r.minute >= recent}
    if touched:
        # Read back: the event pass and the feedback pass each hold only
        # their own columns.
        report.rollups = list(
            MetricRollup.objects.filter(minute__in=touched).order_by("minute", "id")
        )
    if push and report.rollups:
        report.broadcast = broadcast.metrics_broadcast(
            {
                "type": "rollups",
                "rollups": [selectors.rollup_dict(r) for r in report.rollups],
            }
        )
    return report


def _feedback_buckets(
    *, since: datetime | None
) -> tuple[list[MetricRollup], datetime | None]:
    """The feedback columns of every bucket that received feedback since
    `since` (less the safety margin), recomputed from all of that bucket's
    feedback; and the newest change seen."""
    changed = Feedback.objects.all()
    if since is not None:
        changed = changed.filter(changed_at__gt=since - SAFETY_MARGIN)
    seen = changed.aggregate(seen=Max("changed_at"))["seen"]
    if seen is None:
        return [], None
    minutes = set(changed.values_list("minute", flat=True).distinct())
    groups = (
        Feedback.objects.filter(minute__in=minutes)
        .values(*_ROLLUP_KEY)
        .order_by()
        .annotate(
            labels=Count("id", filter=Q(correct__isnull=False)),
            correct=Count("id", filter=Q(correct=True)),
            conversions=Count("id", filter=Q(converted=True)),
            conversion_trials=Count("id", filter=Q(converted__isnull=False)),
            rewards=Count("id", filter=Q(reward__isnull=False)),
            reward_sum=Sum("reward", default=0.0),
            reward_sq_sum=Sum(F("reward") * F("reward"), default=0.0),
        )
    )
    empty = {
        "count": 0,
        "errors": 0,
        "rows": 0,
        "latency_sum_ms": 0.0,
        "latency_p50_ms": 0.0,
        "latency_p95_ms": 0.0,
        "latency_p99_ms": 0.0,
        "latency_max_ms": 0.0,
    }
    return [MetricRollup(**empty, **group) for group in groups], seen


def _snapshot_span() -> timedelta:
    return timedelta(minutes=monitoring_settings.SNAPSHOT_MINUTES)


def events_prune(*, now: datetime | None = None, batch: int = 10_000) -> int:
    """Delete raw events past EVENT_RETENTION_HOURS and system samples
    past SYSTEM_RETENTION_HOURS, in batches; how many events went."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=monitoring_settings.EVENT_RETENTION_HOURS)
    deleted = 0
    while True:
        ids = list(
            PredictionEvent.objects.filter(created_at__lt=cutoff).values_list(
                "id", flat=True
            )[:batch]
        )
        if not ids:
            break
        deleted += PredictionEvent.objects.filter(id__in=ids).delete()[0]
    samples_cutoff = now - timedelta(hours=monitoring_settings.SYSTEM_RETENTION_HOURS)
    SystemSample.objects.filter(sampled_at__lt=samples_cutoff).delete()
    return deleted


def system_sample(*, push: bool = True) -> SystemSample:
    """Read CPU, memory and disk of this host and the RSS of each process
    role; store it, and broadcast it to dashboards."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(settings.VAR_DIR))
    processes = {
        role: {"count": entry["count"], "rss_bytes": entry["rss_bytes"]}
        for role, entry in sorted(roles.role_processes().items())
    }
    sample, _ = SystemSample.objects.update_or_create(
        host=socket.gethostname(),
        sampled_at=timezone.now().replace(microsecond=0),
        defaults={
            # Over a short interval: a worker process has no earlier call
            # to measure from.
            "cpu_percent": psutil.cpu_percent(interval=0.2),
            "memory_percent": memory.percent,
            "memory_used_bytes": memory.total - memory.available,
            "memory_total_bytes": memory.total,
            "disk_percent": disk.percent,
            "disk_used_bytes": disk.used,
            "disk_total_bytes": disk.total,
            "processes": processes,
        },
    )
    if push:
        broadcast.metrics_broadcast(
            {"type": "system", "system": [selectors.system_sample_dict(sample)]}
        )
    return sample
