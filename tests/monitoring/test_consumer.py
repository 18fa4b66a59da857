"""/ws/metrics/ through the real ASGI application (origin check, session
auth, routing): staff get a snapshot then every broadcast; anonymous
users only while DEBUG is on. The channel layer is in memory here; the
server tests use Redis."""

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from monitoring import broadcast, services
from monitoring.models import MetricRollup

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]


@pytest.fixture(autouse=True)
def in_memory_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(cookie: bytes | None = None, origin=b"http://127.0.0.1:8000"):
    from mlserving.asgi import application  # starts a warm-up thread: not at import

    headers = [(b"origin", origin)]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/metrics/", headers=headers)


def rollup(minute, count=3):
    return MetricRollup.objects.create(
        minute=minute,
        model="default",
        version="v1.0",
        count=count,
        errors=1,
        errors_by_code={"invalid_features": 1},
        rows=2,
        latency_sum_ms=6,
        latency_p50_ms=2,
        latency_p95_ms=3,
        latency_p99_ms=3,
        latency_max_ms=3,
    )


async def test_staff_get_a_snapshot_then_each_broadcast(settings, admin_user):
    from asgiref.sync import sync_to_async

    settings.DEBUG = False
    now = timezone.now().replace(second=0, microsecond=0)
    await sync_to_async(rollup)(now)
    cookie = await sync_to_async(session_cookie)(admin_user)
    ws = communicator(cookie)
    connected, _ = await ws.connect()
    assert connected
    snapshot = await ws.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    [row] = snapshot["rollups"]
    assert (row["version"], row["count"], row["errors"]) == ("v1.0", 3, 1)
    assert row["latency_ms"]["avg"] == 2.0
    # when: a rollup is broadcast (as the Celery task does)
    sent = await sync_to_async(broadcast.metrics_broadcast)(
        {"type": "rollups", "rollups": [{"version": "v2.0", "count": 9}]}
    )
    assert sent is True
    message = await ws.receive_json_from(timeout=5)
    assert message == {"type": "rollups", "rollups": [{"version": "v2.0", "count": 9}]}
    await ws.disconnect()


async def refused(ws) -> bool:
    """Accepted, then closed with 4403 before any data."""
    connected, _ = await ws.connect()
    assert connected
    return await ws.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": 4403,
    }


async def test_anonymous_may_watch_with_debug(settings):
    settings.DEBUG = True
    ws = communicator()
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from(timeout=5))["type"] == "snapshot"
    await ws.disconnect()


async def test_anonymous_may_not_watch_without_debug(settings):
    settings.DEBUG = False
    assert await refused(communicator())


async def test_non_staff_users_are_refused(settings, django_user_model):
    from asgiref.sync import sync_to_async

    settings.DEBUG = False
    user = await sync_to_async(django_user_model.objects.create_user)(
        "viewer", password="x"
    )
    assert await refused(communicator(await sync_to_async(session_cookie)(user)))


async def test_a_foreign_origin_is_refused(settings):
    settings.DEBUG = True
    ws = communicator(origin=b"http://evil.example.com")
    connected, _ = await ws.connect()
    assert connected is False


async def test_a_rollup_run_reaches_connected_dashboards(settings, two_versions):
    from asgiref.sync import sync_to_async

    from monitoring.events import Event, writer

    settings.DEBUG = True
    ws = communicator()
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from(timeout=5))["rollups"] == []
    await sync_to_async(writer.record)(
        Event(
            created=timezone.now().timestamp(),
            request_id="abc",
            model="default",
            version="v2.0",
            latency_ms=3.5,
            outcome="ok",
            status_code=200,
        )
    )
    await sync_to_async(writer.flush)()
    report = await sync_to_async(services.rollup_run)()
    assert report.broadcast is True
    message = await ws.receive_json_from(timeout=5)
    assert message["type"] == "rollups"
    assert [(r["version"], r["count"]) for r in message["rollups"]] == [("v2.0", 1)]
    await ws.disconnect()


async def test_experiments_reach_dashboards_in_the_snapshot_and_after(
    settings, two_versions
):
    from asgiref.sync import sync_to_async

    from experiments import services as experiment_services

    settings.DEBUG = True
    await sync_to_async(experiment_services.ab_test_configure)(
        model=two_versions["v1"].model,
        enabled=True,
        split_ratio=0.6,
        versions=[two_versions["v1"], two_versions["v2"]],
    )
    ws = communicator()
    assert (await ws.connect())[0]
    snapshot = await ws.receive_json_from(timeout=5)
    (experiment,) = snapshot["experiments"]
    assert experiment["enabled"] is True
    assert [a["weight"] for a in experiment["arms"]] == [0.6, 0.4]
    assert isinstance(experiment["started_at"], str)
    # the broadcast after a rollup (through the channel layer: msgpack-safe)
    report = await sync_to_async(experiment_services.experiments_evaluate)()
    assert report.experiments == 1
    message = await ws.receive_json_from(timeout=5)
    assert message["type"] == "experiments"
    assert message["experiments"][0]["experiment"] == experiment["experiment"]
    await ws.disconnect()
