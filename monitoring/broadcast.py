"""The one way monitoring talks to websocket clients: a message to the
metrics group through the channel layer. Consumers forward what arrives.

A broadcast is best effort: when Redis is unreachable it is logged, and
whatever called it carries on (rollups never fail for it).
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

METRICS_GROUP = "metrics"
# Event type of a broadcast; the consumer's handler is `metrics_updated`.
METRICS_UPDATED = "metrics.updated"


def metrics_group() -> str:
    return METRICS_GROUP


def metrics_broadcast(message: dict) -> bool:
    """Send `message` to every connected dashboard; False if it could not
    be sent."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(layer.group_send)(
            metrics_group(), {"type": METRICS_UPDATED, "message": message}
        )
    except Exception as exc:  # Redis down, timeouts, full channels...
        logger.warning("metrics broadcast failed: %s", exc)
        return False
    return True
