"""Loaded runtimes of this process: an LRU bounded by MAX_MODELS_IN_MEMORY,
and the memory of versions that failed to load.

Only a cache: the database decides what is active. Loads are single-flight
(concurrent requests for the same cold version wait for one load), happen
outside the cache lock (a slow load never blocks hits on other versions),
and always go through `registry.runtimes.runtime_load`, so a file that
changed since registration is never unpickled. A version whose artifact
cannot be loaded is marked in the database (every process then stops
routing to it) and not retried here on every request while it stays so;
one whose file is only missing on this host (not in its cache or
artifacts root, and the shared store could not provide it) is reported by
this process alone and tried again after ARTIFACT_MISS_RETRY seconds.
"""

import logging
import threading
import time
from collections import OrderedDict

from django.db import DatabaseError

from mlserving.conf import app_settings
from registry import services as registry_services
from registry.entries import VersionEntry
from registry.errors import ArtifactError, ArtifactMissing, unservable_error
from registry.runtimes import ModelRuntime, runtime_load

logger = logging.getLogger("mlserving.dataplane")


class ModelCache:
    def __init__(self, *, capacity: int | None = None, loader=runtime_load):
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

    def peek(self, entry: VersionEntry) -> ModelRuntime | None:
        """The loaded runtime for `entry` (marked as recently used), or
        None: never loads."""
        item = self._items.get(entry.id)
        if item is None or item[0].sha256 != entry.sha256:
            return None
        with self._lock:
            if entry.id in self._items:
                self._items.move_to_end(entry.id)
        return item[1]

    def get(self, entry: VersionEntry) -> ModelRuntime:
        """The loaded runtime for `entry`, loading it on a miss. Raises the
        registry's ArtifactError subclasses when it cannot be loaded."""
        runtime = self.peek(entry)
        return runtime if runtime is not None else self._load(entry)

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
            logger.info("loaded %s (%d in memory)", entry.label, len(self._items))
            return runtime

    def _evict(self) -> list[ModelRuntime]:
        """Drop least recently used runtimes past capacity, sparing the
        serving (pinned) versions while anything else can go. Caller holds
        the lock."""
        evicted = []
        while len(self._items) > self.capacity:
            victim = next(
                (k for k in self._items if k not in self._pinned),
                next(iter(self._items)),
            )
            evicted.append(self._items.pop(victim)[1])
        return evicted

    def pin(self, version_ids, labels=()) -> None:
        """The versions that serve (active, experiment arms, shadows): kept
        longest. More of them than the capacity means every request to
        the ones that do not fit reloads from disk: said once per change."""
        pinned = frozenset(version_ids)
        if pinned != self._pinned and len(pinned) > self.capacity:
            logger.warning(
                "%d versions must stay loaded (active versions, experiment "
                "arms and shadows: %s) but MAX_MODELS_IN_MEMORY is %d: requests "
                "to the ones that do not fit reload them from disk; raise "
                "MAX_MODELS_IN_MEMORY to at least %d",
                len(pinned),
                ", ".join(sorted(labels)) or "-",
                self.capacity,
                len(pinned),
            )
        self._pinned = pinned

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


class Runtimes:
    """The runtime of a version, as the prediction path asks for it."""

    def __init__(self, cache: ModelCache | None = None):
        self.cache = cache or ModelCache()
        # Versions this process failed to load, by id -> (sha256, error,
        # when: time.monotonic()).
        self._failures: dict[int, tuple[str, ArtifactError, float]] = {}
        self._lock = threading.Lock()

    def loaded(self, entry: VersionEntry) -> ModelRuntime | None:
        """The runtime if it can be had from memory, None if it must be
        loaded. Raises ArtifactError for a version that cannot serve (its
        status says so, or this process already failed to load it)."""
        if not entry.servable:
            raise unservable_error(
                label=entry.label,
                version=entry.version,
                status=entry.status,
                detail=entry.status_detail,
                path=entry.artifact_path,
            )
        failed = self._failures.get(entry.id)
        if failed is not None and failed[0] == entry.sha256:
            local_miss = isinstance(failed[1], ArtifactMissing)
            if not local_miss or (
                time.monotonic() - failed[2] < app_settings.ARTIFACT_MISS_RETRY
            ):
                raise failed[1]
        return self.cache.peek(entry)

    def get(self, entry: VersionEntry) -> ModelRuntime:
        """The loaded runtime for one version, loading it when needed (file
        I/O and unpickling: not for an event loop). ArtifactError if it
        cannot be served; the failure is recorded on the version."""
        runtime = self.loaded(entry)
        if runtime is not None:
            return runtime
        try:
            runtime = self.cache.get(entry)
        except ArtifactError as error:
            self._report(entry, error)
            raise
        with self._lock:
            self._failures.pop(entry.id, None)
        return runtime

    def _report(self, entry: VersionEntry, error: ArtifactError) -> None:
        with self._lock:
            self._failures[entry.id] = (entry.sha256, error, time.monotonic())
        logger.error("cannot load %s: %s", entry.label, error)
        if isinstance(error, ArtifactMissing):
            return  # this host's problem, reported by its /health alone
        try:
            registry_services.model_version_mark_failed_by_id(
                version_id=entry.id, error=error
            )
        except DatabaseError:
            logger.exception("could not record the failure of %s", entry.label)

    def failures(self) -> dict[int, ArtifactError]:
        return {k: v[1] for k, v in self._failures.items()}

    def catalog_changed(
        self, *, serving: set[int], servable: set[int], labels=()
    ) -> None:
        """Keep the serving versions longest (`labels` name them), unload
        versions that can no longer serve, forget failures of versions that
        left."""
        self.cache.pin(serving, labels)
        self.cache.retain(servable)
        with self._lock:
            for version_id in list(self._failures):
                if version_id not in servable:
                    self._failures.pop(version_id)

    def clear(self) -> None:
        self.cache.clear()
        self.cache.pin(())
        with self._lock:
            self._failures.clear()
