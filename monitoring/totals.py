"""Sums over rollups (of one version, one arm, or all): what /metrics, the
experiments' statistics and their guardrails read. Percentiles come from
the rollups' merged histograms (within about 5 %)."""

from monitoring import stats
from monitoring.models import MetricRollup


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class RollupTotals:
    """Sums over rollups (of one version, one arm, or all); percentiles
    from their merged histograms."""

    def __init__(self):
        self.count = self.errors = self.rows = self.cached = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.confidence_sum = 0.0
        self.confidence_count = 0
        self.labels = self.correct = 0
        self.conversions = self.conversion_trials = 0
        self.rewards = 0
        self.reward_sum = self.reward_sq_sum = 0.0
        self.compared_rows = self.agreed_rows = 0
        self.primary_latency_sum = 0.0
        self.errors_by_code: dict[str, int] = {}
        self.class_counts: dict[str, int] = {}
        self.histograms: list[dict] = []

    def add(self, r: MetricRollup) -> None:
        self.count += r.count
        self.errors += r.errors
        self.rows += r.rows
        self.cached += r.cached
        self.latency_sum += r.latency_sum_ms
        self.latency_max = max(self.latency_max, r.latency_max_ms)
        self.confidence_sum += r.confidence_sum
        self.confidence_count += r.confidence_count
        self.labels += r.labels
        self.correct += r.correct
        self.conversions += r.conversions
        self.conversion_trials += r.conversion_trials
        self.rewards += r.rewards
        self.reward_sum += r.reward_sum
        self.reward_sq_sum += r.reward_sq_sum
        self.compared_rows += r.compared_rows
        self.agreed_rows += r.agreed_rows
        self.primary_latency_sum += r.primary_latency_sum_ms
        for code, n in r.errors_by_code.items():
            self.errors_by_code[code] = self.errors_by_code.get(code, 0) + n
        for label, n in r.class_counts.items():
            self.class_counts[label] = self.class_counts.get(label, 0) + n
        self.histograms.append(r.latency_histogram)

    @property
    def ok(self) -> int:
        return self.count - self.errors

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.count if self.count else None

    @property
    def latency_avg(self) -> float | None:
        return self.latency_sum / self.count if self.count else None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labels if self.labels else None

    @property
    def agreement_rate(self) -> float | None:
        """Shadow rollups: rows that agreed with the primary's answer."""
        return self.agreed_rows / self.compared_rows if self.compared_rows else None

    def latency_percentile(self, q: float) -> float | None:
        value = stats.histogram_percentile(stats.merge_histograms(self.histograms), q)
        # a bucket's middle may lie past the largest value seen
        return None if value is None else min(value, self.latency_max)

    def latency(self) -> dict:
        return {
            "avg": rounded(self.latency_avg),
            "p50": rounded(self.latency_percentile(50)),
            "p95": rounded(self.latency_percentile(95)),
            "p99": rounded(self.latency_percentile(99)),
            "max": rounded(self.latency_max) if self.count else None,
        }

    def rates(self) -> dict:
        ok = self.ok
        return {
            "success_rate": rounded(ok / self.count, 4) if self.count else None,
            "error_rate": rounded(self.error_rate, 4),
            "avg_confidence": (
                rounded(self.confidence_sum / self.confidence_count, 4)
                if self.confidence_count
                else None
            ),
            "accuracy": rounded(self.accuracy, 4),
            "labels": self.labels,
            "conversions": self.conversions,
            # Conversions per successful prediction (exposure), as the
            # experiments' statistics count them.
            "conversion_rate": (rounded(self.conversions / ok, 4) if ok else None),
        }
