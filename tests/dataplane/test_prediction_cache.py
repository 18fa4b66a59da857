"""The per-process prediction cache: bounded by bytes as well as entries
(least recently used out first), entries expire after the TTL."""

import json
import tracemalloc

import numpy as np
import pytest

from mlserving.conf import app_settings
from mlserving.dataplane.prediction_cache import (
    ENTRY_OVERHEAD_BYTES,
    PredictionCache,
    entry_bytes,
)
from tests.conftest import SEED_FEATURES

MIB = 1024 * 1024


@pytest.fixture
def cache_settings(settings):
    def apply(**values):
        settings.MLSERVING = {**settings.MLSERVING, **values}

    apply(PREDICTION_CACHE_TTL=60)
    return apply


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(rows: np.ndarray):
    """What a classifier returns for `rows`: labels and 2-class proba."""
    labels = (rows[:, 0] > 0).astype(np.int64)
    proba = np.column_stack([1.0 - rows[:, 1], rows[:, 1]])
    return labels, proba


def entry(cache: PredictionCache, seed: int, n_rows: int = 1, n_features: int = 10):
    rows = np.random.default_rng(seed).random((n_rows, n_features))
    return cache.key(1, "ab" * 32, rows), answer(rows)


def test_the_default_budget_is_64_mib():
    assert app_settings.PREDICTION_CACHE_MAX_BYTES == 64 * MIB


def test_bytes_stay_under_the_limit_with_300_distinct_1000_row_batches(
    cache_settings,
):
    # given: a budget of 4 MiB; one 1,000-row batch holds ~100 KB
    cache_settings(PREDICTION_CACHE_MAX_BYTES=4 * MIB)
    cache = PredictionCache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        # when
        for seed in range(300):
            cache.put(*entry(cache, seed, n_rows=1000))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # then: the count and the memory really held stay within the budget
    assert cache.nbytes <= 4 * MIB
    assert held <= 4 * MIB * 1.05, held
    assert 30 <= len(cache) < 300
    newest, oldest = entry(cache, 299, 1000), entry(cache, 0, 1000)
    assert cache.get(newest[0]) is not None
    assert cache.get(oldest[0]) is None


def test_the_count_covers_what_small_entries_really_hold(cache_settings):
    cache = PredictionCache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for seed in range(2000):
            cache.put(*entry(cache, seed))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == 2000
    assert held <= cache.nbytes, (held / 2000, cache.nbytes / 2000)


def test_least_recently_used_entries_go_first(cache_settings):
    # given: room for exactly three one-row entries
    probe = PredictionCache()
    size = entry_bytes(*entry(probe, 0))
    cache_settings(PREDICTION_CACHE_MAX_BYTES=3 * size)
    cache = PredictionCache()
    a, b, c, d = (entry(cache, seed) for seed in range(4))
    for key, value in (a, b, c):
        cache.put(key, value)
    # when: a is used, then d arrives
    assert cache.get(a[0]) is not None
    cache.put(*d)
    # then: b, the least recently used, made room
    assert cache.get(b[0]) is None
    assert [cache.get(k) is not None for k, _ in (a, c, d)] == [True] * 3
    assert cache.nbytes == 3 * size


def test_the_entry_limit_still_holds(cache_settings):
    cache_settings(PREDICTION_CACHE_SIZE=2)
    cache = PredictionCache()
    entries = [entry(cache, seed) for seed in range(3)]
    for key, value in entries:
        cache.put(key, value)
    assert len(cache) == 2
    assert cache.get(entries[0][0]) is None


def test_an_entry_larger_than_the_budget_is_not_cached(cache_settings):
    cache_settings(PREDICTION_CACHE_MAX_BYTES=64 * 1024)
    cache = PredictionCache()
    small = entry(cache, 1)
    cache.put(*small)
    big = entry(cache, 2, n_rows=1000)
    cache.put(*big)
    assert cache.get(big[0]) is None
    assert cache.get(small[0]) is not None  # nothing was evicted for it
    assert cache.nbytes == entry_bytes(*small)


def test_putting_a_key_again_counts_it_once(cache_settings):
    cache = PredictionCache()
    key, value = entry(cache, 1)
    cache.put(key, value)
    cache.put(key, value)
    assert len(cache) == 1
    assert cache.nbytes == entry_bytes(key, value)


def test_the_count_covers_rows_arrays_and_overhead():
    rows = np.zeros((1000, 10))
    labels, proba = answer(rows)
    key = PredictionCache.key(1, "ab" * 32, rows)
    assert entry_bytes(key, (labels, proba)) == (
        ENTRY_OVERHEAD_BYTES + 80_000 + 64 + labels.nbytes + proba.nbytes
    )
    # a view keeps its whole base alive
    base = np.zeros((1000, 2))
    assert entry_bytes(key, (labels, base[:10])) >= 80_000 + base.nbytes


def test_entries_expire_after_the_ttl(cache_settings):
    cache_settings(PREDICTION_CACHE_TTL=30)
    clock = Clock()
    cache = PredictionCache(clock=clock)
    key, value = entry(cache, 1)
    cache.put(key, value)
    clock.now += 29
    assert cache.get(key) is value
    clock.now += 2
    assert cache.get(key) is None
    assert len(cache) == 0 and cache.nbytes == 0


def test_a_ttl_of_zero_caches_nothing(cache_settings):
    cache_settings(PREDICTION_CACHE_TTL=0)
    cache = PredictionCache()
    key, value = entry(cache, 1)
    cache.put(key, value)
    assert cache.get(key) is None and len(cache) == 0


def test_predict_does_not_cache_an_answer_over_the_budget(
    client, two_versions, cache_settings
):
    # given: a budget smaller than one batch answer
    cache_settings(PREDICTION_CACHE_MAX_BYTES=1024)
    body = json.dumps({"features": [SEED_FEATURES] * 50})

    def post():
        return client.post("/predict", data=body, content_type="application/json")

    # when / then: the same batch twice is computed twice
    assert post().json()["cached"] is False
    assert post().json()["cached"] is False
    # a one-row answer fits and is cached
    cache_settings(PREDICTION_CACHE_MAX_BYTES=64 * 1024)
    one = json.dumps({"features": SEED_FEATURES})
    client.post("/predict", data=one, content_type="application/json")
    again = client.post("/predict", data=one, content_type="application/json")
    assert again.json()["cached"] is True
