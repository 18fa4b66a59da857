"""Rollups: exact per-minute aggregates, recomputed (so idempotent), late
events folded in, pruning that never shrinks a rollup, and a broadcast
that may fail without failing the rollup."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from monitoring import services, stats
from monitoring.events import Event, events_store
from monitoring.models import MetricRollup, RollupState

MINUTE = timedelta(minutes=1)


def store(events: list[Event]) -> None:
    events_store(events)


def event(at: datetime, version="v1.0", latency=1.0, outcome="ok", label=1, p=0.9):
    ok = outcome == "ok"
    return Event(
        created=at.timestamp(),
        request_id="r",
        model="default",
        version=version,
        latency_ms=latency,
        outcome=outcome,
        status_code=200 if ok else 422,
        labels=np.array([label]) if ok else None,
        proba=np.array([[1 - p, p]]) if ok else None,
    )


@pytest.fixture
def minute():
    """The start of the minute before this one (complete, recent)."""
    return timezone.now().replace(second=0, microsecond=0) - MINUTE


def rollup_rows() -> dict:
    return {(r.minute, r.version): r for r in MetricRollup.objects.all()}


def test_a_minute_per_version_with_exact_figures(db, minute):
    rng = np.random.default_rng(7)
    latencies = rng.lognormal(0, 1, 200)
    store(
        [
            event(minute + timedelta(seconds=i % 60), latency=v, label=i % 2)
            for i, v in enumerate(latencies)
        ]
    )
    store([event(minute + timedelta(seconds=5), outcome="invalid_features")] * 3)
    store([event(minute + MINUTE, version="v2.0", latency=4.0, p=0.7)] * 10)

    report = services.rollup_run(push=False)

    assert report.events == 213 and report.buckets == 2
    rows = rollup_rows()
    v1 = rows[(minute, "v1.0")]
    assert (v1.count, v1.errors, v1.rows) == (203, 3, 200)
    assert v1.errors_by_code == {"invalid_features": 3}
    with_errors = np.concatenate([latencies, [1.0, 1.0, 1.0]])
    assert v1.latency_p50_ms == pytest.approx(np.percentile(with_errors, 50))
    assert v1.latency_p95_ms == pytest.approx(np.percentile(with_errors, 95))
    assert v1.latency_p99_ms == pytest.approx(np.percentile(with_errors, 99))
    assert v1.latency_sum_ms == pytest.approx(with_errors.sum())
    assert v1.class_counts == {"0": 100, "1": 100}
    assert v1.confidence_sum / v1.confidence_count == pytest.approx(0.9)
    assert sum(v1.latency_histogram.values()) == 203
    v2 = rows[(minute + MINUTE, "v2.0")]
    assert (v2.count, v2.errors, v2.latency_p99_ms) == (10, 0, 4.0)


def test_running_twice_or_from_scratch_gives_the_same_rows(db, minute):
    store([event(minute + timedelta(seconds=s), latency=s + 0.5) for s in range(60)])
    services.rollup_run(push=False)
    first = list(MetricRollup.objects.values())
    services.rollup_run(push=False)
    RollupState.objects.update(watermark=None)  # as if the state were lost
    services.rollup_run(push=False)
    again = list(MetricRollup.objects.values())
    for row in first + again:
        row.pop("updated_at")
    assert again == first
    assert MetricRollup.objects.count() == 1


def test_a_late_event_is_folded_into_its_own_minute(db, minute):
    old = minute - 5 * MINUTE
    store([event(old)] * 4)
    services.rollup_run(push=False)
    # an event from that minute reaches the database only now (a retried
    # batch after a database outage)
    store([event(old + timedelta(seconds=30), version="v1.0")])
    services.rollup_run(push=False)
    assert MetricRollup.objects.get(minute=old).count == 5


def test_pruning_keeps_rollups_and_old_minutes_are_not_recomputed(db, minute, settings):
    settings.MONITORING = {**settings.MONITORING, "EVENT_RETENTION_HOURS": 1}
    old = minute - timedelta(hours=2)
    store([event(old)] * 3 + [event(minute)] * 2)
    RollupState.objects.create(pk=1, watermark=None)
    # the old minute is past the retention: its events are pruned, and a
    # late one arriving now must not shrink its rollup from 3 to 1
    MetricRollup.objects.create(
        minute=old,
        model="default",
        version="v1.0",
        count=3,
        errors=0,
        rows=3,
        latency_sum_ms=3,
        latency_p50_ms=1,
        latency_p95_ms=1,
        latency_p99_ms=1,
        latency_max_ms=1,
    )
    assert services.events_prune() == 3
    store([event(old + timedelta(seconds=1))])
    services.rollup_run(push=False)
    assert MetricRollup.objects.get(minute=old).count == 3
    assert MetricRollup.objects.get(minute=minute).count == 2


def test_a_failed_broadcast_does_not_fail_the_rollup(db, minute, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # nothing listens there
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    store([event(timezone.now())])
    report = services.rollup_run()
    assert report.broadcast is False
    assert MetricRollup.objects.get().count == 1


def test_merged_histogram_percentiles_are_within_five_percent():
    rng = np.random.default_rng(3)
    minutes = [rng.lognormal(0.5, 0.8, 500) for _ in range(30)]
    merged = stats.merge_histograms(stats.histogram(m) for m in minutes)
    everything = np.concatenate(minutes)
    for q in (50, 95, 99):
        exact = np.percentile(everything, q)
        assert stats.histogram_percentile(merged, q) == pytest.approx(exact, rel=0.05)


def test_minutes_are_utc_wall_clock_minutes(db):
    at = datetime(2026, 11, 27, 10, 15, 42, tzinfo=UTC)
    store([event(at)])
    services.rollup_run(push=False, now=at + timedelta(seconds=5))
    assert MetricRollup.objects.get().minute == datetime(
        2026, 11, 27, 10, 15, tzinfo=UTC
    )


def test_a_run_overtaken_by_another_stores_nothing_and_loses_nothing(db, minute):
    from unittest import mock

    store([event(minute)] * 3)
    real = services._buckets_between
    overtaken = []

    def slow_read(start, end):
        rollups = real(start, end)
        if not overtaken:
            # while this run reads, another run and more events go through
            overtaken.append(True)
            store([event(minute)] * 2)
            services.rollup_run(push=False)
        return rollups

    with mock.patch.object(services, "_buckets_between", slow_read):
        report = services.rollup_run(push=False)
    assert report.superseded is True
    assert MetricRollup.objects.get().count == 5  # the other run's result
    services.rollup_run(push=False)
    assert MetricRollup.objects.get().count == 5
