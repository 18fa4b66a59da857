"""The dashboard's websocket: join the metrics group, send the snapshot,
forward broadcasts. Staff only, or anyone while DEBUG is on.

A connection that is refused (a user who may not watch, a path with no
websocket) is answered without the channel layer: a Channels consumer
starts a blocking receive on Redis as soon as it runs, for a connection
that will never get a message, and that receive outlives the refusal
until the client goes (with redis-py's default socket timeout, which
equals channels_redis' blocking-pop timeout, it then fails with a
TimeoutError traceback).

An edge: the snapshot is monitoring's rollups and samples plus the
experiments' status, composed here."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from experiments.selectors import experiments_overview
from monitoring import selectors
from monitoring.broadcast import metrics_group

# The close code for a user who may not watch. The socket is accepted
# first so that the browser sees this code (a refused handshake looks like
# a network failure) and stops retrying.
FORBIDDEN = 4403


def may_watch(user) -> bool:
    if settings.DEBUG:
        return True
    return bool(user and user.is_active and user.is_staff)


def dashboard_snapshot() -> dict:
    """What a dashboard gets when it connects."""
    return {
        **selectors.metrics_snapshot(),
        "experiments": experiments_overview(),
    }


async def websocket_refuse(receive, send, *, code: int | None = None) -> None:
    """Answer a websocket handshake with a refusal, as a plain ASGI app
    that uses no channel layer: with `code`, accept and close with it
    (the browser sees the code and stops retrying); without, refuse the
    handshake itself (HTTP 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if code is None:
        await send({"type": "websocket.close"})
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code})


def watchers_only(consumer):
    """`consumer` (an ASGI app) for users who may watch; everyone else is
    closed with FORBIDDEN before a consumer, or a channel, exists."""

    async def app(scope, receive, send):
        if not may_watch(scope.get("user")):
            await websocket_refuse(receive, send, code=FORBIDDEN)
            return
        await consumer(scope, receive, send)

    return app


async def websocket_not_found(scope, receive, send) -> None:
    """Any path with no websocket: the handshake is refused (HTTP 403)
    instead of the router raising an error for the server to log."""
    await websocket_refuse(receive, send)


class MetricsConsumer(AsyncJsonWebsocketConsumer):
    """Served behind watchers_only(): every connection here may watch."""

    joined = False

    async def connect(self):
        if not may_watch(self.scope.get("user")):  # routed without the guard
            await self.accept()
            await self.close(code=FORBIDDEN)
            return
        await self.channel_layer.group_add(metrics_group(), self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_json(await database_sync_to_async(dashboard_snapshot)())

    async def disconnect(self, code):
        if self.joined:
            await self.channel_layer.group_discard(metrics_group(), self.channel_name)

    async def metrics_updated(self, event):
        await self.send_json(event["message"])
