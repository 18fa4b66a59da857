"""Process-wide serving state: the catalog, the runtime LRU and the
prediction cache, and the rule for which loaded runtime answers.

If the active version's artifact cannot be loaded (changed on disk,
missing, broken), the version is marked in the database and the versions
the alias held before, newest first, serve instead; the response says so.
"""

import logging
import threading

import numpy as np
from django.db import DatabaseError

from mlserving.errors import ApplicationError
from registry.cache import ModelCache
from registry.catalog import Catalog, ModelEntry, Snapshot, VersionEntry
from registry.errors import ArtifactError, NoActiveVersion, unservable_error
from registry.prediction_cache import PredictionCache
from registry.runtimes import ModelRuntime

logger = logging.getLogger("registry")

catalog = Catalog()
model_cache = ModelCache()
prediction_cache = PredictionCache()

# Versions this process failed to load, by id -> (sha256, error): not
# retried on every request while the database still says "ready".
_failures: dict[int, tuple[str, ArtifactError]] = {}
_failures_lock = threading.Lock()


def _on_catalog_change(old: Snapshot, new: Snapshot) -> None:
    model_cache.pin(new.active_ids())
    servable = {
        entry.id
        for model in new.models.values()
        for entry in model.versions.values()
        if entry.servable
    }
    model_cache.retain(servable)
    with _failures_lock:
        for version_id in list(_failures):
            if version_id not in servable:
                _failures.pop(version_id)


catalog.on_change(_on_catalog_change)


def _report_failure(entry: VersionEntry, error: ArtifactError) -> None:
    with _failures_lock:
        _failures[entry.id] = (entry.sha256, error)
    logger.error("cannot load %s:%s: %s", entry.model, entry.version, error)
    from registry import services

    try:
        services.model_version_mark_failed_by_id(version_id=entry.id, error=error)
    except DatabaseError:
        logger.exception("could not record the failure of %s", entry.version)


def runtime_get(entry: VersionEntry) -> ModelRuntime:
    """The loaded runtime for one version. ArtifactError if it cannot be
    served; the failure is recorded on the version."""
    if not entry.servable:
        raise unservable_error(
            label=f"{entry.model}:{entry.version}",
            version=entry.version,
            status=entry.status,
            detail=entry.status_detail,
            path=entry.artifact_path,
        )
    failed = _failures.get(entry.id)
    if failed is not None and failed[0] == entry.sha256:
        raise failed[1]
    try:
        return model_cache.get(entry)
    except ArtifactError as error:
        _report_failure(entry, error)
        raise


def active_runtime(
    model: ModelEntry,
) -> tuple[VersionEntry, ModelRuntime, dict]:
    """The version serving `model`'s alias, its runtime and the routing
    note for the response. NoActiveVersion, or the last ArtifactError when
    neither the active nor any earlier version can be loaded."""
    if model.active is None:
        raise NoActiveVersion(
            f"Model {model.name!r} has no active version; activate one with "
            "POST /models/{version}/activate.",
            details={"model": model.name},
        )
    last_error: ArtifactError | None = None
    for entry in (model.active, *model.previous):
        try:
            runtime = runtime_get(entry)
        except ArtifactError as error:
            last_error = error
            continue
        if entry is model.active:
            return entry, runtime, {"reason": "alias", "alias": model.alias}
        return (
            entry,
            runtime,
            {
                "reason": "fallback",
                "alias": model.alias,
                "wanted": model.active.version,
                "error": (last_error.code if last_error else None),
            },
        )
    assert last_error is not None
    raise last_error


def failures() -> dict[int, ArtifactError]:
    return {k: v[1] for k, v in _failures.items()}


def warmup() -> list[str]:
    """Load every model's active version, and the arms and shadows of
    running experiments, now, so the first request is not slow. Returns
    what was loaded; failures are logged, not raised."""
    loaded = []
    try:
        from experiments.services import experiments_from_settings

        # AB_TEST_ENABLED: the initial experiment, if none was ever made.
        if experiments_from_settings() is not None:
            catalog.invalidate()
    except (DatabaseError, ApplicationError):
        logger.exception("the experiment from settings could not be created")
    try:
        snapshot = catalog.snapshot()
    except DatabaseError:
        logger.exception("warm-up skipped: the registry is unreachable")
        return loaded
    targets = []
    for model in snapshot.models.values():
        try:
            entry, runtime, _ = active_runtime(model)
        except ApplicationError as exc:
            logger.warning("warm-up of %s: %s", model.name, exc.message)
            continue
        targets.append((entry, runtime))
    # The arms and shadow versions of running experiments serve too.
    for experiment in snapshot.experiments.values():
        for entry in (
            *(arm.version for arm in experiment.arms),
            *(shadow.version for shadow in experiment.shadows),
        ):
            if any(entry is done for done, _ in targets):
                continue
            try:
                targets.append((entry, runtime_get(entry)))
            except ApplicationError as exc:
                logger.warning("warm-up of %s: %s", entry.version, exc.message)
    for entry, runtime in targets:
        if entry.n_features:
            # The first call into a model imports and caches code paths
            # (tens of ms for scikit-learn); pay that here, not per client.
            try:
                runtime.infer(np.zeros((1, entry.n_features)))
            except Exception:
                logger.exception("warm-up inference of %s failed", entry.version)
        loaded.append(f"{entry.model}:{entry.version}")
    return loaded


def warmup_in_background() -> threading.Thread:
    """warmup() in a thread that closes its database connection after."""

    def run() -> None:
        from django.db import connections

        try:
            warmup()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="model-warmup", daemon=True)
    thread.start()
    return thread


def reset() -> None:
    """Forget all per-process state (tests)."""
    catalog.reset()
    model_cache.clear()
    model_cache.pin(())
    prediction_cache.clear()
    with _failures_lock:
        _failures.clear()
