"""Reads of monitoring: the /metrics summary over a window, the snapshot a
dashboard gets on connect, and the JSON shape of rollups and samples."""

import os
import re
import time
from datetime import UTC, datetime, timedelta

import psutil
from django.utils import timezone

from mlserving.conf import monitoring_settings
from mlserving.errors import ValidationFailed
from monitoring.events import SHADOW_ARM, writer
from monitoring.models import MetricRollup, RollupState, SystemSample
from monitoring.totals import RollupTotals, rounded

# A whole number of seconds, minutes, hours or days up to 90 days: the
# pattern the OpenAPI schema documents for `window` is this one, so what
# the schema allows is exactly what is accepted.
WINDOW_PATTERN = (
    r"^(?:[1-9][0-9]{0,5}s?|[1-9][0-9]{0,4}m"
    r"|(?:[1-9][0-9]{0,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"
    r"|(?:[1-9]|[1-8][0-9]|90)d)$"
)
_WINDOW = re.compile(r"^([0-9]+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW_SECONDS = 90 * 86400


def window_parse(text: str | None) -> tuple[str, float]:
    """'15m', '1h', '7d', '90s' or plain seconds -> (label, seconds).
    ValidationFailed (422) for anything else or past 90 days."""
    label = monitoring_settings.METRICS_WINDOW if text is None else text
    match = _WINDOW.match(label) if re.match(WINDOW_PATTERN, label) else None
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]] if match else 0.0
    if not 0 < seconds <= MAX_WINDOW_SECONDS:
        raise ValidationFailed(
            f"window must be a duration like 15m, 1h or 7d, at most 90d; "
            f"got {label!r}.",
            details={"field": "window", "value": label},
        )
    return label, seconds


def epoch_ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


def rollup_dict(rollup: MetricRollup) -> dict:
    """A rollup as dashboards receive it."""
    ok = rollup.count - rollup.errors
    return {
        "minute": rollup.minute.isoformat(),
        "t": epoch_ms(rollup.minute),
        "model": rollup.model,
        "version": rollup.version,
        "experiment": rollup.experiment,
        "arm": rollup.arm,
        "count": rollup.count,
        "ok": ok,
        "errors": rollup.errors,
        "errors_by_code": rollup.errors_by_code,
        "rows": rollup.rows,
        "latency_ms": {
            "avg": (
                rounded(rollup.latency_sum_ms / rollup.count) if rollup.count else None
            ),
            "p50": rounded(rollup.latency_p50_ms),
            "p95": rounded(rollup.latency_p95_ms),
            "p99": rounded(rollup.latency_p99_ms),
            "max": rounded(rollup.latency_max_ms),
        },
        "mean_confidence": (
            rounded(rollup.confidence_sum / rollup.confidence_count, 4)
            if rollup.confidence_count
            else None
        ),
        "class_counts": rollup.class_counts,
        "labels": rollup.labels,
        "accuracy": (
            rounded(rollup.correct / rollup.labels, 4) if rollup.labels else None
        ),
        "conversions": rollup.conversions,
        "rewards": rollup.rewards,
        "reward_sum": rollup.reward_sum,
        "shadow": rollup.arm == SHADOW_ARM,
        "compared_rows": rollup.compared_rows,
        "agreed_rows": rollup.agreed_rows,
        "updated_at": rollup.updated_at.isoformat() if rollup.updated_at else None,
    }


def system_sample_dict(sample: SystemSample) -> dict:
    return {
        "t": epoch_ms(sample.sampled_at),
        "sampled_at": sample.sampled_at.isoformat(),
        "host": sample.host,
        "cpu_percent": sample.cpu_percent,
        "memory_percent": sample.memory_percent,
        "memory_used_bytes": sample.memory_used_bytes,
        "memory_total_bytes": sample.memory_total_bytes,
        "disk_percent": sample.disk_percent,
        "disk_used_bytes": sample.disk_used_bytes,
        "disk_total_bytes": sample.disk_total_bytes,
        "processes": sample.processes,
    }


def metrics_snapshot(*, minutes: int | None = None) -> dict:
    """What a dashboard gets when its websocket connects: the last minutes
    of rollups and system samples (the consumer adds the experiments)."""
    minutes = minutes or monitoring_settings.SNAPSHOT_MINUTES
    since = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes)
    rollups = MetricRollup.objects.filter(minute__gte=since).order_by("minute")
    samples = SystemSample.objects.filter(sampled_at__gte=since).order_by("sampled_at")
    return {
        "type": "snapshot",
        "window_minutes": minutes,
        "server_time": time.time(),
        "rollup_interval": monitoring_settings.ROLLUP_INTERVAL,
        "rollups": [rollup_dict(r) for r in rollups],
        "system": [system_sample_dict(s) for s in samples],
    }


def metrics_summary(*, window_seconds: float, model: str | None = None) -> dict:
    """Totals, per version and per experiment arm over the rollups of the
    last `window_seconds` (whole minutes: the minute the window starts in
    is included)."""
    now = timezone.now()
    since = (now - timedelta(seconds=window_seconds)).replace(second=0, microsecond=0)
    rollups = MetricRollup.objects.filter(minute__gte=since)
    if model:
        rollups = rollups.filter(model=model)
    overall = RollupTotals()
    by_version: dict[tuple[str, str], RollupTotals] = {}
    by_arm: dict[tuple[str, str, str], RollupTotals] = {}
    shadows: dict[tuple[str, str, str], RollupTotals] = {}
    for r in rollups.order_by("minute"):
        if r.arm == SHADOW_ARM:
            # Mirrored copies: not requests anyone made.
            shadows.setdefault((r.model, r.experiment, r.version), RollupTotals()).add(
                r
            )
            continue
        overall.add(r)
        if r.version:
            by_version.setdefault((r.model, r.version), RollupTotals()).add(r)
        if r.experiment:
            by_arm.setdefault((r.experiment, r.arm, r.version), RollupTotals()).add(r)
    served = sum(t.count for t in by_version.values())
    arms_total: dict[str, int] = {}
    for (experiment, _, _), totals in by_arm.items():
        arms_total[experiment] = arms_total.get(experiment, 0) + totals.count
    latency = overall.latency()
    return {
        "scope": "all processes",
        "since": since.isoformat(),
        "until": now.isoformat(),
        "total_requests": overall.count,
        "successful_predictions": overall.count - overall.errors,
        "failed_predictions": overall.errors,
        **overall.rates(),
        "rows_predicted": overall.rows,
        "cache_hits": overall.cached,
        "avg_processing_time_ms": latency["avg"],
        "max_processing_time_ms": latency["max"],
        "processing_time_ms": latency,
        "errors_by_code": dict(sorted(overall.errors_by_code.items())),
        "class_counts": dict(sorted(overall.class_counts.items())),
        "by_version": [
            {
                "model": name,
                "model_version": version,
                "predictions": totals.count,
                "successful_predictions": totals.count - totals.errors,
                "failed_predictions": totals.errors,
                "share": rounded(totals.count / served, 4) if served else None,
                **totals.rates(),
                "avg_processing_time_ms": totals.latency()["avg"],
                "processing_time_ms": totals.latency(),
                "errors_by_code": dict(sorted(totals.errors_by_code.items())),
                "class_counts": dict(sorted(totals.class_counts.items())),
            }
            for (name, version), totals in sorted(by_version.items())
        ],
        "ab_distribution": [
            {
                "experiment": experiment,
                "arm": arm,
                "model_version": version,
                "requests": totals.count,
                "share": rounded(totals.count / arms_total[experiment], 4),
                **totals.rates(),
            }
            for (experiment, arm, version), totals in sorted(by_arm.items())
        ],
        "shadow": [
            {
                "model": name,
                "experiment": experiment,
                "model_version": version,
                "predictions": totals.count,
                "failed_predictions": totals.errors,
                "agreement_rate": rounded(totals.agreement_rate, 4),
                "processing_time_ms": totals.latency(),
            }
            for (name, experiment, version), totals in sorted(shadows.items())
        ],
    }


def pipeline_status(*, writer_stats: dict) -> dict:
    """How fresh the rollups are, and this process's event buffer."""
    state = RollupState.objects.filter(pk=1).first()
    last_run = state.last_run_at if state else None
    return {
        "rollup_interval_seconds": monitoring_settings.ROLLUP_INTERVAL,
        "last_rollup_at": last_run.isoformat() if last_run else None,
        "seconds_since_last_rollup": (
            rounded((timezone.now() - last_run).total_seconds()) if last_run else None
        ),
        "last_rollup_seconds": rounded(state.last_run_seconds) if state else None,
        "events_buffered_here": writer_stats["buffered"],
        "events_written_here": writer_stats["written"],
        "events_dropped_here": writer_stats["dropped"],
        "event_write_error": writer_stats["last_error"],
        "event_ingest": writer_stats["ingest"],
        "pid": os.getpid(),
    }


def system_latest() -> dict | None:
    sample = SystemSample.objects.order_by("-sampled_at").first()
    return system_sample_dict(sample) if sample else None


def metrics_report(
    *, window: str | None, model: str | None, models_loaded: list[str]
) -> dict:
    """The body of GET /metrics; `models_loaded` are the versions loaded
    in the answering process. ValidationFailed for a bad window."""
    label, seconds = window_parse(window)
    return {
        "window": label,
        "window_seconds": seconds,
        **metrics_summary(window_seconds=seconds, model=model),
        "pipeline": pipeline_status(writer_stats=writer.stats()),
        "models_loaded": models_loaded,
        # live readings of the host that answered
        "system": {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": psutil.virtual_memory().percent,
            "process_rss_bytes": psutil.Process().memory_info().rss,
        },
        "system_sampled": system_latest(),
    }


def websocket_url(*, host: str, secure: bool) -> str:
    """Where a browser that loaded the page from `host` finds /ws/metrics/:
    WEBSOCKET_URL when set (behind a proxy that routes it elsewhere), else
    the page's own origin (one server answers HTTP and websockets)."""
    if monitoring_settings.WEBSOCKET_URL:
        return monitoring_settings.WEBSOCKET_URL
    return f"{'wss' if secure else 'ws'}://{host}/ws/metrics/"
