"""The per-process LRU of loaded runtimes, bounded by MAX_MODELS_IN_MEMORY.

Only a cache: the database decides what is active. Loads are single-flight
(concurrent requests for the same cold version wait for one load), happen
outside the cache lock (a slow load never blocks hits on other versions),
and always go through `artifacts.read_verified`, so a file that changed
since registration is never unpickled.
"""

import logging
import threading
from collections import OrderedDict

from mlserving.conf import app_settings
from registry import artifacts
from registry.catalog import VersionEntry
from registry.runtimes import ModelRuntime, runtime_class

logger = logging.getLogger("registry")


def load_runtime(entry: VersionEntry) -> ModelRuntime:
    """Read, verify and load one version's artifact (no caching). `entry`
    may be a catalog VersionEntry or a ModelVersion row."""
    payload = artifacts.read_verified(entry.artifact_path, entry.sha256)
    runtime = runtime_class(entry.runtime)(payload)
    runtime.load()
    return runtime


class ModelCache:
    def __init__(self, *, capacity: int | None = None, loader=load_runtime):
        self._capacity = capacity
        self._loader = loader
        self._items: OrderedDict[int, tuple[VersionEntry, ModelRuntime]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}
        self._pinned: frozenset[int] = frozenset()

    @property
    def capacity(self) -> int:
        if self._capacity is not None:
            return self._capacity
        return max(1, app_settings.MAX_MODELS_IN_MEMORY)

    def get(self, entry: VersionEntry) -> ModelRuntime:
        """The loaded runtime for `entry`, loading it on a miss. Raises the
        registry's ArtifactError subclasses when it cannot be loaded."""
        item = self._items.get(entry.id)
        if item is not None and item[0].sha256 == entry.sha256:
            with self._lock:
                if entry.id in self._items:
                    self._items.move_to_end(entry.id)
            return item[1]
        return self._load(entry)

    def _load(self, entry: VersionEntry) -> ModelRuntime:
        with self._lock:
            gate = self._loading.setdefault(entry.id, threading.Lock())
        with gate:
            item = self._items.get(entry.id)
            if item is not None and item[0].sha256 == entry.sha256:
                return item[1]
            try:
                runtime = self._loader(entry)
            finally:
                with self._lock:
                    self._loading.pop(entry.id, None)
            with self._lock:
                self._items[entry.id] = (entry, runtime)
                self._items.move_to_end(entry.id)
                evicted = self._evict()
            for old in evicted:
                old.unload()
            logger.info(
                "loaded %s:%s (%d in memory)",
                entry.model,
                entry.version,
                len(self._items),
            )
            return runtime

    def _evict(self) -> list[ModelRuntime]:
        """Drop least recently used runtimes past capacity, sparing the
        active (pinned) versions while anything else can go. Caller holds
        the lock."""
        evicted = []
        while len(self._items) > self.capacity:
            victim = next(
                (k for k in self._items if k not in self._pinned),
                next(iter(self._items)),
            )
            evicted.append(self._items.pop(victim)[1])
        return evicted

    def pin(self, version_ids) -> None:
        self._pinned = frozenset(version_ids)

    def retain(self, keep) -> None:
        """Unload every runtime whose version is not in `keep` (ids)."""
        with self._lock:
            gone = [k for k in self._items if k not in keep]
            dropped = [self._items.pop(k)[1] for k in gone]
        for runtime in dropped:
            runtime.unload()

    def loaded(self) -> list[VersionEntry]:
        with self._lock:
            return [entry for entry, _ in self._items.values()]

    def clear(self) -> None:
        self.retain(set())
