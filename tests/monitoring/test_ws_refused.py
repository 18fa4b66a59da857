"""Refused websocket handshakes through the real ASGI application and the
project's Redis channel layer leave nothing behind: no error, no
traceback, no Redis receive that fails later; a dashboard that may watch
still gets its data.

A refused client may keep its socket open (it does not answer the close,
or the server delivers the disconnect late); the tests linger past
channels_redis' blocking-pop timeout before they go, because a receive
left running fails with a redis TimeoutError after it."""

import asyncio
import logging

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from channels_redis.core import RedisChannelLayer

from mlserving.redis_url import channel_layer_host
from monitoring import broadcast

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.anyio]

ALLOWED = b"http://127.0.0.1:8000"
# Past this, a blocking receive on Redis has come back empty (or failed).
LINGER = RedisChannelLayer.brpop_timeout + 1.5


@pytest.fixture
def redis_layer(settings, redis_service):
    """The project's channel layer (Redis), on the test's Redis server."""
    settings.CHANNEL_LAYERS = {
        **settings.CHANNEL_LAYERS,
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {
                **settings.CHANNEL_LAYERS["default"].get("CONFIG", {}),
                "hosts": [channel_layer_host(redis_service)],
            },
        },
    }
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"].startswith("channels_redis")


def communicator(path="/ws/metrics/", origin=ALLOWED):
    from mlserving.asgi import application  # starts a warm-up thread: not at import

    return WebsocketCommunicator(application, path, headers=[(b"origin", origin)])


def problems(caplog) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.WARNING or r.exc_info
    ]


async def leave(ws: WebsocketCommunicator) -> None:
    """The client goes, as the server reports it; an exception the app
    raised meanwhile surfaces here."""
    await ws.disconnect(code=1006, timeout=5)


async def forbidden(ws: WebsocketCommunicator) -> bool:
    connected, _ = await ws.connect()
    return connected and await ws.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": 4403,
    }


async def test_refused_handshakes_log_nothing_and_dashboards_still_get_data(
    settings, redis_layer, caplog
):
    caplog.set_level(logging.DEBUG)
    settings.DEBUG = False
    # given: a user who may not watch, and a path with no websocket
    refused = [communicator(), communicator()]
    for ws in refused:
        assert await forbidden(ws)
    unknown = communicator("/ws/nothing-here/")
    assert await unknown.connect() == (False, 1000)
    # when: the clients keep their sockets open a while, then go
    await asyncio.sleep(LINGER)
    for ws in [*refused, unknown]:
        await leave(ws)
    # then
    assert problems(caplog) == []
    # and a dashboard that may watch gets its snapshot and a broadcast
    settings.DEBUG = True
    ws = communicator()
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from(timeout=5))["type"] == "snapshot"
    sent = await sync_to_async(broadcast.metrics_broadcast)({"type": "ping"})
    assert sent is True
    assert await ws.receive_json_from(timeout=5) == {"type": "ping"}
    await ws.disconnect()
    assert problems(caplog) == []


async def test_a_foreign_origin_and_an_idle_dashboard_outlive_the_redis_timeout(
    settings, redis_layer, caplog
):
    caplog.set_level(logging.DEBUG)
    settings.DEBUG = True
    foreign = communicator(origin=b"http://evil.example.com")
    assert (await foreign.connect())[0] is False
    idle = communicator()
    assert (await idle.connect())[0]
    assert (await idle.receive_json_from(timeout=5))["type"] == "snapshot"
    await asyncio.sleep(LINGER)
    await leave(foreign)
    sent = await sync_to_async(broadcast.metrics_broadcast)({"type": "ping"})
    assert sent is True
    assert await idle.receive_json_from(timeout=5) == {"type": "ping"}
    await idle.disconnect()
    assert problems(caplog) == []
