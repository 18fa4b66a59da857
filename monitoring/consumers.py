"""The dashboard's websocket: join the metrics group, send the snapshot,
forward broadcasts. Staff only, or anyone while DEBUG is on.

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


class MetricsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        if not may_watch(self.scope.get("user")):
            await self.accept()
            await self.close(code=FORBIDDEN)
            return
        await self.channel_layer.group_add(metrics_group(), self.channel_name)
        await self.accept()
        await self.send_json(await database_sync_to_async(dashboard_snapshot)())

    async def disconnect(self, code):
        await self.channel_layer.group_discard(metrics_group(), self.channel_name)

    async def metrics_updated(self, event):
        await self.send_json(event["message"])
