"""The registry generation: a number that every registry write (and every
experiment change) moves in its own transaction. A serving process
compares it, at most every REGISTRY_POLL_INTERVAL, with the one its
catalog was built at, and rebuilds only when it moved.

This process also counts the registry writes it committed itself, so that
its own catalog can rebuild at once instead of at its next poll: a client
that activates a version and then predicts through the same process sees
the new version."""

import threading

from django.db import transaction
from django.db.models import F

from registry.models import RegistryState

_local_commits = 0
_lock = threading.Lock()


def registry_generation() -> int:
    """The current generation (one indexed single-row read)."""
    value = (
        RegistryState.objects.filter(pk=1).values_list("generation", flat=True).first()
    )
    return value or 0


def registry_generation_bump() -> None:
    """Move the generation; call inside the writing transaction."""
    updated = RegistryState.objects.filter(pk=1).update(generation=F("generation") + 1)
    if not updated:
        RegistryState.objects.get_or_create(pk=1, defaults={"generation": 1})
    transaction.on_commit(_count_local_commit)


def _count_local_commit() -> None:
    global _local_commits
    with _lock:
        _local_commits += 1


def local_commits() -> int:
    """How many generation moves this process has committed (compared by
    the serving catalog on every request: one attribute read)."""
    return _local_commits
