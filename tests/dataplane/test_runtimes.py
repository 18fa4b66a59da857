"""The per-process LRU of loaded runtimes."""

import threading
import time

import pytest

from mlserving.dataplane.runtimes import ModelCache
from registry.entries import VersionEntry


def entry(version_id: int, sha: str = "s") -> VersionEntry:
    return VersionEntry(
        id=version_id,
        model="m",
        version=f"v{version_id}",
        artifact_path="x",
        sha256=sha,
        runtime="sklearn",
        status="ready",
        status_detail="",
        n_features=1,
        classes=(),
    )


class FakeRuntime:
    def __init__(self, version_id):
        self.version_id = version_id
        self.unloaded = False

    def unload(self):
        self.unloaded = True


def counting_loader(calls, delay=0.0):
    def load(e):
        calls.append(e.id)
        time.sleep(delay)
        return FakeRuntime(e.id)

    return load


def test_capacity_evicts_the_least_recently_used():
    calls = []
    cache = ModelCache(capacity=2, loader=counting_loader(calls))
    one = cache.get(entry(1))
    cache.get(entry(2))
    cache.get(entry(1))  # 1 is now most recent
    cache.get(entry(3))  # evicts 2
    assert [e.id for e in cache.loaded()] == [1, 3]
    assert not one.unloaded
    cache.get(entry(2))
    assert calls == [1, 2, 3, 2]


def test_pinned_active_versions_survive_eviction():
    cache = ModelCache(capacity=2, loader=counting_loader([]))
    cache.pin({1})
    cache.get(entry(1))
    cache.get(entry(2))
    cache.get(entry(3))
    assert [e.id for e in cache.loaded()] == [1, 3]


def test_eviction_unloads_the_runtime():
    cache = ModelCache(capacity=1, loader=counting_loader([]))
    first = cache.get(entry(1))
    cache.get(entry(2))
    assert first.unloaded


def test_concurrent_misses_load_once():
    calls = []
    cache = ModelCache(capacity=3, loader=counting_loader(calls, delay=0.2))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(entry(7))))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [7]
    assert len({id(r) for r in results}) == 1


def test_a_changed_digest_is_a_miss():
    calls = []
    cache = ModelCache(capacity=3, loader=counting_loader(calls))
    cache.get(entry(1, sha="a"))
    cache.get(entry(1, sha="b"))
    assert calls == [1, 1]


def test_a_failed_load_is_not_cached():
    def failing(e):
        raise RuntimeError("boom")

    cache = ModelCache(capacity=3, loader=failing)
    with pytest.raises(RuntimeError):
        cache.get(entry(1))
    assert cache.loaded() == []


def test_retain_drops_everything_else():
    cache = ModelCache(capacity=3, loader=counting_loader([]))
    for i in (1, 2, 3):
        cache.get(entry(i))
    cache.retain({2})
    assert [e.id for e in cache.loaded()] == [2]
