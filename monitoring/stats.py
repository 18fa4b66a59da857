"""Latency statistics: exact percentiles for one bucket of events, and a
fixed log-spaced histogram so that percentiles over many minutes can be
merged from stored rollups (to within half a bucket, about 5%)."""

import math

import numpy as np

# Bucket i holds latencies in (BASE * RATIO**(i-1), BASE * RATIO**i]
# milliseconds; bucket 0 holds everything up to BASE, the last everything
# above the top (about 2 minutes).
BASE_MS = 0.01
RATIO = 1.1
BUCKETS = 172
_LOG_RATIO = math.log(RATIO)


def bucket_upper_ms(index: int) -> float:
    return BASE_MS * RATIO**index


def histogram(latencies_ms: np.ndarray) -> dict[str, int]:
    """Sparse {bucket index (as a string, for JSON): count}."""
    if latencies_ms.size == 0:
        return {}
    scaled = np.maximum(latencies_ms, BASE_MS) / BASE_MS
    index = np.ceil(np.log(scaled) / _LOG_RATIO - 1e-9).astype(np.int64)
    np.clip(index, 0, BUCKETS - 1, out=index)
    keys, counts = np.unique(index, return_counts=True)
    return {str(int(k)): int(c) for k, c in zip(keys, counts, strict=True)}


def merge_histograms(histograms) -> dict[int, int]:
    merged: dict[int, int] = {}
    for hist in histograms:
        for key, count in hist.items():
            merged[int(key)] = merged.get(int(key), 0) + count
    return merged


def histogram_percentile(merged: dict[int, int], q: float) -> float | None:
    """The q-th percentile (0-100) of a merged histogram: the geometric
    middle of the bucket holding that rank."""
    total = sum(merged.values())
    if not total:
        return None
    rank = max(1, math.ceil(total * q / 100.0))
    seen = 0
    for index in sorted(merged):
        seen += merged[index]
        if seen >= rank:
            if index == 0:
                return BASE_MS
            return math.sqrt(bucket_upper_ms(index - 1) * bucket_upper_ms(index))
    return bucket_upper_ms(max(merged))


def percentiles(latencies_ms: np.ndarray) -> tuple[float, float, float]:
    """Exact p50, p95, p99 (linear interpolation, numpy's default)."""
    p50, p95, p99 = np.percentile(latencies_ms, (50, 95, 99))
    return float(p50), float(p95), float(p99)
