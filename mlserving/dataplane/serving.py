"""This process's serving state: the catalog, the loaded runtimes, the
prediction cache, the shadow runner and the batcher, wired together;
warm-up and the status /health and /models report."""

import logging
import time

import numpy as np
from django.db import DatabaseError

from experiments.services import experiments_from_settings
from mlserving.dataplane.batching import Batcher
from mlserving.dataplane.catalog import Catalog, Snapshot
from mlserving.dataplane.offload import Freshness, InferenceCosts
from mlserving.dataplane.prediction_cache import PredictionCache
from mlserving.dataplane.routing import choose, resolve
from mlserving.dataplane.runtimes import Runtimes
from mlserving.dataplane.shadow import ShadowRunner
from mlserving.errors import ApplicationError
from registry.entries import VersionEntry

logger = logging.getLogger("mlserving.dataplane")

catalog = Catalog()
runtimes = Runtimes()
_warmed = False
prediction_cache = PredictionCache()
shadow_runner = ShadowRunner(runtimes.get)
# For the event loop of the HTTP front (mlserving/front.py).
freshness = Freshness(catalog)
costs = InferenceCosts()
# Stacks concurrent inference-thread calls per version (BATCHING).
batcher = Batcher(costs)


def _on_catalog_change(old: Snapshot, new: Snapshot) -> None:
    servable = new.servable_ids()
    serving = new.serving_ids()
    runtimes.catalog_changed(
        serving=serving,
        servable=servable,
        labels=[new.versions[i].label for i in serving if i in new.versions],
    )
    costs.forget(servable)


catalog.on_change(_on_catalog_change)


def warmup() -> list[str]:
    """Load every model's active version, and the arms and shadows of
    running experiments, now, so the first request is not slow (and run
    each once: the first call into a model imports and caches code paths,
    tens of ms for scikit-learn). Creates the experiment of
    AB_TEST_ENABLED when there never was one. Returns what was loaded;
    failures are logged, not raised."""
    global _warmed
    _warmed = True
    try:
        if experiments_from_settings() is not None:
            catalog.invalidate()
    except (DatabaseError, ApplicationError):
        logger.exception("the experiment from settings could not be created")
    try:
        snapshot = catalog.snapshot()
    except DatabaseError:
        logger.exception("warm-up skipped: the registry is unreachable")
        return []
    targets: list[VersionEntry] = []
    for name in snapshot.models:
        # what a request naming the model alone gets from its alias
        try:
            choice = choose(
                snapshot,
                model=name,
                version=None,
                use_experiment=False,
                body={},
                request_id="warm-up",
                subject_header=None,
            )
            targets.append(resolve(choice, runtimes.get).version)
        except ApplicationError as exc:
            logger.warning("warm-up of %s: %s", name, exc.message)
    # The arms and shadow versions of running experiments serve too.
    for experiment in snapshot.experiments.values():
        for version_id in sorted(experiment.version_ids()):
            entry = snapshot.versions[version_id]
            if entry in targets:
                continue
            try:
                runtimes.get(entry)
                targets.append(entry)
            except ApplicationError as exc:
                logger.warning("warm-up of %s: %s", entry.label, exc.message)
    for entry in targets:
        if entry.n_features:
            try:
                _warm_and_time(entry)
            except Exception:
                logger.exception("warm-up inference of %s failed", entry.label)
    return [entry.label for entry in targets]


def _warm_and_time(entry: VersionEntry) -> None:
    """A first call pays one-time costs; the next ones tell the front how
    long this version's one-row call takes."""
    runtime = runtimes.get(entry)
    row = np.zeros((1, entry.n_features))
    runtime.infer(row)
    for _ in range(3):
        began = time.perf_counter()
        runtime.infer(row)
        costs.observe(entry.id, 1, time.perf_counter() - began)


def warmed() -> bool:
    """Whether warmup() ran in this process."""
    return _warmed


def loaded_labels() -> list[str]:
    return [entry.label for entry in runtimes.cache.loaded()]


def status() -> dict:
    """What /health reports of this process's serving state: the
    catalog's models (checked against the registry generation when due),
    what is loaded, what failed."""
    try:
        snapshot = catalog.snapshot()
    except DatabaseError:
        snapshot = catalog.current
    return {
        "default_model": snapshot.default_model,
        "models": {
            name: {
                "active_version": model.active.version if model.active else None,
                "active_status": model.active.status if model.active else None,
            }
            for name, model in snapshot.models.items()
        },
        "models_loaded": loaded_labels(),
        "failures": [
            {"version_id": version_id, "code": error.code, "message": error.message}
            for version_id, error in runtimes.failures().items()
        ],
    }


def reset() -> None:
    """Forget all per-process state (tests)."""
    global _warmed
    _warmed = False
    catalog.reset()
    runtimes.clear()
    prediction_cache.clear()
