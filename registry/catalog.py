"""The per-process view of the registry that the prediction path reads.

A `Snapshot` is an immutable picture of every model, version and active
alias. `Catalog.snapshot()` returns the current one and, at most every
REGISTRY_POLL_INTERVAL seconds, asks the database for the registry's
generation number (one indexed single-row read); only when it moved does it
rebuild. So in steady state a prediction touches neither the database nor
Redis, and an activation made by any process is seen by every process
within one poll interval.
"""

import logging
import threading
import time
from dataclasses import dataclass, field

from django.db import DatabaseError

from mlserving.conf import app_settings

logger = logging.getLogger("registry")


@dataclass(frozen=True, slots=True)
class VersionEntry:
    id: int
    model: str
    version: str
    artifact_path: str
    sha256: str
    runtime: str
    status: str
    status_detail: str
    n_features: int | None
    classes: tuple

    @property
    def servable(self) -> bool:
        return self.status == "ready"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    alias: str
    active: VersionEntry | None
    # Versions the alias pointed at before, newest first: what serves when
    # the active version's artifact cannot be loaded.
    previous: tuple[VersionEntry, ...]
    versions: dict[str, VersionEntry]


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int
    models: dict[str, ModelEntry] = field(default_factory=dict)
    default_model: str | None = None
    # The running experiment of each model that has one, by model name
    # (experiments.routing.ExperimentEntry).
    experiments: dict = field(default_factory=dict)

    def active_ids(self) -> set[int]:
        """Versions that serve: active ones, and the arms and shadows of
        running experiments (the model cache keeps them longest)."""
        ids = {m.active.id for m in self.models.values() if m.active}
        for experiment in self.experiments.values():
            ids.update(arm.version.id for arm in experiment.arms)
            ids.update(shadow.version.id for shadow in experiment.shadows)
        return ids


EMPTY = Snapshot(generation=-1)


class Catalog:
    def __init__(self, *, clock=time.monotonic):
        self._clock = clock
        self._snapshot = EMPTY
        self._next_check = 0.0
        self._lock = threading.Lock()
        self._listeners = []

    def on_change(self, listener) -> None:
        """Call `listener(old, new)` after each rebuild (in the rebuilding
        thread)."""
        self._listeners.append(listener)

    def snapshot(self) -> Snapshot:
        """The current snapshot; checks the generation when it is due."""
        if self._clock() >= self._next_check:
            self._poll()
        return self._snapshot

    def invalidate(self) -> None:
        """Check the generation on the next call (after a local write)."""
        self._next_check = 0.0

    def reset(self) -> None:
        """Forget everything (tests, and after a fork)."""
        with self._lock:
            self._snapshot = EMPTY
            self._next_check = 0.0

    def _poll(self) -> None:
        # One thread polls; the others keep serving the current snapshot.
        if not self._lock.acquire(blocking=self._snapshot is EMPTY):
            return
        try:
            if self._clock() < self._next_check:
                return
            from registry import selectors

            try:
                generation = selectors.registry_generation()
            except DatabaseError:
                if self._snapshot is EMPTY:
                    raise
                # Keep serving what we know; try again next interval.
                logger.warning("registry poll failed; serving last snapshot")
                self._next_check = self._clock() + app_settings.REGISTRY_POLL_INTERVAL
                return
            if generation != self._snapshot.generation:
                old = self._snapshot
                self._snapshot = selectors.catalog_snapshot(
                    generation=generation,
                    alias=app_settings.ALIAS,
                    default_name=app_settings.DEFAULT_MODEL_NAME,
                )
                for listener in self._listeners:
                    try:
                        listener(old, self._snapshot)
                    except Exception:
                        logger.exception("catalog listener failed")
            self._next_check = self._clock() + app_settings.REGISTRY_POLL_INTERVAL
        finally:
            self._lock.release()
