"""What the event loop hands to threads, so that it only parses, routes,
encodes and answers:

- I/O: registry polls (a query), model loads (file reads, unpickling) and
  the database writes a load failure makes, on a small pool;
- slow inference: a call whose expected cost passes
  INLINE_INFERENCE_BUDGET_MS runs on this process's inference thread, and
  the loop keeps answering other requests (and health checks, and 503s)
  meanwhile. Faster calls run inline: a thread hand-over costs more than
  a LogisticRegression predicts, and a fifth of a 100-tree forest's
  one-row call (measured: bench/README.md, "HTTP front").

The expected cost of a call is learned per version: a moving average of
seconds for one-row calls and of seconds per row for larger ones.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections

from mlserving.conf import app_settings
from mlserving.dataplane.catalog import Catalog, Snapshot

logger = logging.getLogger("mlserving.dataplane")

# Weight of the newest measurement in the moving averages.
EWMA_WEIGHT = 0.2

_io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dataplane-io")
_inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataplane-infer")


def _with_connections(function, *args):
    # Threads outside Django's request cycle close broken or expired
    # database connections themselves, as Django does around requests.
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


async def in_io_thread(function, *args):
    """`function(*args)` on the I/O pool, awaited."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_io, _with_connections, function, *args)


async def in_inference_thread(function, *args):
    """`function(*args)` on this process's inference thread, awaited."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_inference, function, *args)


class Freshness:
    """Keeps a catalog current for an event loop without querying on it:
    a due poll runs in the background (the request is served from the
    current snapshot, at most two intervals old); a registry write this
    process committed, having no snapshot at all, or one last checked more
    than two intervals ago (an idle process: it could be minutes behind)
    is waited for, in a thread, so a client reads its own writes and an
    idle worker never answers from an old registry."""

    def __init__(self, catalog: Catalog):
        self._catalog = catalog
        self._polling = False

    async def snapshot(self) -> Snapshot:
        catalog = self._catalog
        if catalog.empty or catalog.local_pending() or catalog.overdue():
            await in_io_thread(lambda: catalog.poll(wait=True))
        elif catalog.due() and not self._polling:
            self._polling = True
            asyncio.get_running_loop().run_in_executor(_io, self._poll)
        return catalog.current

    def _poll(self) -> None:
        try:
            _with_connections(self._catalog.poll)
        except Exception:
            logger.exception("registry poll failed; serving the last snapshot")
        finally:
            self._polling = False


class InferenceCosts:
    """Expected seconds of an infer call, per version."""

    def __init__(self):
        self._one_row: dict[int, float] = {}
        self._per_row: dict[int, float] = {}

    def estimate(self, version_id: int, rows: int) -> float | None:
        if rows == 1:
            return self._one_row.get(version_id)
        per_row = self._per_row.get(version_id)
        if per_row is None:
            one = self._one_row.get(version_id)
            return None if one is None else one * rows
        return per_row * rows

    def inline(self, version_id: int, rows: int) -> bool:
        """Whether a call may run on the event loop: its cost is known and
        within the budget (an unknown one goes to the thread)."""
        expected = self.estimate(version_id, rows)
        budget = app_settings.INLINE_INFERENCE_BUDGET_MS / 1e3
        return expected is not None and expected <= budget

    def observe(self, version_id: int, rows: int, seconds: float) -> None:
        table, value = (
            (self._one_row, seconds) if rows == 1 else (self._per_row, seconds / rows)
        )
        old = table.get(version_id)
        table[version_id] = value if old is None else old + EWMA_WEIGHT * (value - old)

    def forget(self, keep: set[int]) -> None:
        for table in (self._one_row, self._per_row):
            for version_id in [k for k in table if k not in keep]:
                table.pop(version_id, None)
