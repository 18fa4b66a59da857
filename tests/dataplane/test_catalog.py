"""The in-process catalog: polled at most every interval, rebuilt only
when the registry generation moves."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mlserving.dataplane.catalog import Catalog
from mlserving.dataplane.offload import Freshness
from registry import generation, services


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_polls_at_most_once_per_interval(two_versions, settings):
    settings.MLSERVING = {**settings.MLSERVING, "REGISTRY_POLL_INTERVAL": 0.25}
    clock = Clock()
    catalog = Catalog(clock=clock)
    catalog.snapshot()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            catalog.snapshot()
    assert len(queries) == 0
    clock.now += 0.3
    with CaptureQueriesContext(connection) as queries:
        catalog.snapshot()
    assert len(queries) == 1  # the generation only: nothing changed


def test_an_activation_is_seen_after_one_interval(two_versions, settings):
    settings.MLSERVING = {**settings.MLSERVING, "REGISTRY_POLL_INTERVAL": 0.25}
    clock = Clock()
    catalog = Catalog(clock=clock)
    assert catalog.snapshot().models["default"].active.version == "v1.0"
    services.model_version_activate(version=two_versions["v2"])
    # another process's catalog: not invalidated locally
    assert catalog.snapshot().models["default"].active.version == "v1.0"
    clock.now += 0.26
    snapshot = catalog.snapshot()
    assert snapshot.models["default"].active.version == "v2.0"
    assert [e.version for e in snapshot.models["default"].previous] == ["v1.0"]


def test_fallbacks_follow_the_rollback_order(two_versions, client):
    from mlserving.dataplane.serving import catalog

    # v1 -> v2, then rolled back to v1: v2 was rejected, so it is no
    # fallback for v1
    services.model_version_activate(version=two_versions["v2"])
    services.model_rollback(model=two_versions["v1"].model)
    catalog.invalidate()
    model = catalog.snapshot().models["default"]
    assert model.active.version == "v1.0"
    assert model.previous == ()
    # v1 -> v2 again: v1 is v2's fallback
    services.model_version_activate(version=two_versions["v2"])
    catalog.invalidate()
    assert [e.version for e in catalog.snapshot().models["default"].previous] == [
        "v1.0"
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_an_idle_worker_reads_the_registry_before_answering(
    two_versions, settings
):
    # given a worker's catalog, fresh once, then idle for ten seconds
    settings.MLSERVING = {**settings.MLSERVING, "REGISTRY_POLL_INTERVAL": 0.25}
    clock = Clock()
    catalog = Catalog(clock=clock)
    freshness = Freshness(catalog)
    assert (await freshness.snapshot()).models["default"].active.version == "v1.0"
    await sync_to_async(services.model_version_activate)(version=two_versions["v2"])
    catalog._local_seen = generation.local_commits()  # as in another process
    # when a poll is merely due (a busy worker), the request does not wait
    clock.now += 0.3
    assert catalog.due() and not catalog.overdue()
    # but after a long idle stretch
    clock.now += 10
    # then the first request waits for the registry: never minutes behind
    assert (await freshness.snapshot()).models["default"].active.version == "v2.0"
