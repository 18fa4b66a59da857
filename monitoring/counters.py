"""Per-process prediction counters behind GET /metrics.

Counted in memory under a lock (about 0.1 µs uncontended), so the hot path
never waits on the database or Redis. Each server process has its own;
/metrics says which process answered. The monitoring issue replaces this
with durable events and Celery rollups.
"""

import os
import threading
import time


class ProcessCounters:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.started_at = time.time()
            self.requests = 0
            self.succeeded = 0
            self.rows = 0
            self.cache_hits = 0
            self.errors: dict[str, int] = {}
            self.latency_ms_total = 0.0
            self.latency_ms_max = 0.0
            self.confidence_total = 0.0
            self.confidence_count = 0
            self.by_version: dict[tuple[str, str], list] = {}

    def record_success(
        self,
        *,
        model: str,
        version: str,
        latency_ms: float,
        rows: int,
        confidence_sum: float | None,
        cached: bool,
    ) -> None:
        with self._lock:
            self.requests += 1
            self.succeeded += 1
            self.rows += rows
            self.cache_hits += cached
            self.latency_ms_total += latency_ms
            if latency_ms > self.latency_ms_max:
                self.latency_ms_max = latency_ms
            if confidence_sum is not None:
                self.confidence_total += confidence_sum
                self.confidence_count += rows
            stats = self.by_version.get((model, version))
            if stats is None:
                stats = self.by_version[(model, version)] = [0, 0.0, 0.0, 0]
            stats[0] += 1
            stats[1] += latency_ms
            if confidence_sum is not None:
                stats[2] += confidence_sum
                stats[3] += rows

    def record_error(self, *, code: str, latency_ms: float) -> None:
        with self._lock:
            self.requests += 1
            self.errors[code] = self.errors.get(code, 0) + 1
            self.latency_ms_total += latency_ms

    def snapshot(self) -> dict:
        with self._lock:
            failed = sum(self.errors.values())
            versions = [
                {
                    "model": model,
                    "model_version": version,
                    "predictions": count,
                    "avg_processing_time_ms": round(total / count, 3),
                    "avg_confidence": (
                        round(conf / conf_rows, 4) if conf_rows else None
                    ),
                    "share": round(count / self.succeeded, 4),
                }
                for (model, version), (count, total, conf, conf_rows) in sorted(
                    self.by_version.items()
                )
            ]
            return {
                "scope": "process",
                "pid": os.getpid(),
                "since": self.started_at,
                "uptime_seconds": round(time.time() - self.started_at, 3),
                "total_requests": self.requests,
                "successful_predictions": self.succeeded,
                "failed_predictions": failed,
                "success_rate": (
                    round(self.succeeded / self.requests, 4) if self.requests else None
                ),
                "rows_predicted": self.rows,
                "cache_hits": self.cache_hits,
                "avg_processing_time_ms": (
                    round(self.latency_ms_total / self.requests, 3)
                    if self.requests
                    else None
                ),
                "max_processing_time_ms": round(self.latency_ms_max, 3),
                "avg_confidence": (
                    round(self.confidence_total / self.confidence_count, 4)
                    if self.confidence_count
                    else None
                ),
                "errors_by_code": dict(sorted(self.errors.items())),
                "by_version": versions,
            }


counters = ProcessCounters()
