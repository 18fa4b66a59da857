"""The per-process view of the registry that the prediction path reads.

A `Snapshot` is an immutable picture of every model, version, active
alias and running experiment, composed from the registry's and the
experiments' selectors. `Catalog.snapshot()` returns the current one and,
at most every REGISTRY_POLL_INTERVAL seconds (or at once after a registry
write this process committed), asks the database for the registry
generation (one indexed single-row read); only when it moved does it
rebuild. So in steady state a prediction touches neither the database nor
Redis, and an activation made by any process is seen by every process
within one poll interval.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.db import DatabaseError

from experiments.entries import ServingExperiment
from experiments.selectors import experiments_serving
from mlserving.conf import app_settings
from registry import generation
from registry.entries import ModelEntry, VersionEntry
from registry.selectors import serving_models

logger = logging.getLogger("mlserving.dataplane")


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int
    models: dict[str, ModelEntry] = field(default_factory=dict)
    default_model: str | None = None
    versions: dict[int, VersionEntry] = field(default_factory=dict)
    # The running experiment of each model that has one, by model name.
    experiments: dict[str, ServingExperiment] = field(default_factory=dict)

    def serving_ids(self) -> set[int]:
        """Versions that serve: active ones, and the arms and shadows of
        running experiments (the runtime cache keeps them longest)."""
        ids = {m.active.id for m in self.models.values() if m.active}
        for experiment in self.experiments.values():
            ids |= experiment.version_ids()
        return ids

    def servable_ids(self) -> set[int]:
        return {e.id for e in self.versions.values() if e.servable}


EMPTY = Snapshot(generation=-1)


def snapshot_build(generation_number: int) -> Snapshot:
    """Everything the prediction path needs, read now (a handful of
    queries)."""
    models, default = serving_models(
        alias=app_settings.ALIAS, default_name=app_settings.DEFAULT_MODEL_NAME
    )
    versions = {e.id: e for m in models.values() for e in m.versions.values()}
    return Snapshot(
        generation=generation_number,
        models=models,
        default_model=default,
        versions=versions,
        experiments=experiments_serving(version_ids=set(versions)),
    )


class Catalog:
    def __init__(self, *, clock=time.monotonic):
        self._clock = clock
        self._snapshot = EMPTY
        self._next_check = 0.0
        self._local_seen = -1
        self._failing = False
        self._lock = threading.Lock()
        self._listeners = []

    def on_change(self, listener) -> None:
        """Call `listener(old, new)` after each rebuild (in the rebuilding
        thread)."""
        self._listeners.append(listener)

    @property
    def current(self) -> Snapshot:
        """The snapshot as it is, never touching the database."""
        return self._snapshot

    @property
    def empty(self) -> bool:
        return self._snapshot is EMPTY

    def local_pending(self) -> bool:
        """Whether this process committed a registry write the snapshot
        may not hold yet."""
        return generation.local_commits() != self._local_seen

    def due(self) -> bool:
        """Whether the generation should be checked now: the poll interval
        passed, or this process committed a registry write since."""
        return self._clock() >= self._next_check or self.local_pending()

    def overdue(self) -> bool:
        """Whether the last check is more than two intervals old: nothing
        asked for the snapshot for a while (an idle process), so it may be
        far behind the registry."""
        return self._clock() >= (self._next_check + app_settings.REGISTRY_POLL_INTERVAL)

    def snapshot(self) -> Snapshot:
        """The current snapshot; checks the generation when it is due.
        DatabaseError only when there is no snapshot yet."""
        if self.due():
            self.poll()
        return self._snapshot

    def invalidate(self) -> None:
        """Check the generation on the next call."""
        self._next_check = 0.0

    def reset(self) -> None:
        """Forget everything (tests, and after a fork)."""
        with self._lock:
            self._snapshot = EMPTY
            self._next_check = 0.0
            self._local_seen = -1

    def poll(self, *, wait: bool = False) -> None:
        """Check the generation and rebuild if it moved. One thread polls;
        the others keep serving the current snapshot, unless they `wait`
        for it (always when there is none yet)."""
        if not self._lock.acquire(blocking=wait or self._snapshot is EMPTY):
            return
        try:
            local = generation.local_commits()
            if self._clock() < self._next_check and local == self._local_seen:
                return
            try:
                number = generation.registry_generation()
                if number != self._snapshot.generation:
                    self._swap(snapshot_build(number))
            except DatabaseError as exc:
                if self._snapshot is EMPTY:
                    raise
                # Keep serving what we know; try again next interval (said
                # once per outage, not at every poll).
                if not self._failing:
                    logger.warning(
                        "registry poll failed, serving the last snapshot: %s", exc
                    )
                self._failing = True
            else:
                if self._failing:
                    logger.warning("registry poll works again")
                self._failing = False
            self._local_seen = local
            self._next_check = self._clock() + app_settings.REGISTRY_POLL_INTERVAL
        finally:
            self._lock.release()

    def _swap(self, new: Snapshot) -> None:
        old, self._snapshot = self._snapshot, new
        for listener in self._listeners:
            try:
                listener(old, new)
            except Exception:
                logger.exception("catalog listener failed")
