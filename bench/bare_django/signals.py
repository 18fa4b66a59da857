"""django.db connects these to every request even with no database; the
bare project has none, so it does not pay for them (under ASGI each sync
receiver costs the request a hop to a thread)."""

from django.core import signals
from django.db import close_old_connections, reset_queries


def database_receivers_disconnect() -> None:
    signals.request_started.disconnect(reset_queries)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
