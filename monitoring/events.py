"""Prediction events, off the request path.

`record()` turns the event into its row tuple and appends it to a bounded
in-process buffer (a few microseconds, no I/O) and returns; the request
never waits on the database. A background thread in each process drains
the buffer every EVENT_FLUSH_INTERVAL seconds (sooner once
EVENT_BATCH_SIZE are waiting), counts each event in the Prometheus
metrics, and hands the batch to the host's ingest process
(monitoring/ingest.py), which writes it to the database; when none
listens, the thread writes the batch itself. When the database is
unreachable the thread keeps the batch and retries with backoff; the
buffer holds up to EVENT_BUFFER_SIZE events in all, and what arrives past
that is dropped and counted (never silently). At interpreter exit the
thread writes what it still holds.
"""

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
from collections import deque

from django.db import DatabaseError, connection

from mlserving.conf import monitoring_settings
from monitoring import prometheus
from monitoring.event_store import (
    SHADOW_ARM,
    Event,
    batch_stored,
    events_insert,
    timestamp_adapter,
    to_row,
)
from monitoring.ingest import IngestClient, IngestFailed, IngestUnavailable, socket_path

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0

__all__ = ["SHADOW_ARM", "Event", "EventWriter", "events_store", "record", "writer"]


class EventWriter:
    def __init__(self):
        self._lock = threading.Lock()
        self._reset_state()
        atexit.register(self.close)

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._buffer: deque[tuple] = deque()
        self._adapt_time = None
        self._pending: list[tuple] = []
        # Size of the batch whose insert raised: on the next try, check
        # first whether it was stored anyway.
        self._uncertain = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ingest = IngestClient(socket_path())
        self.dropped = 0
        self.ingested = 0
        self.written = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_flush_at: float | None = None

    # --- the request side -------------------------------------------------

    def record(self, event: Event) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread is gone
            with self._lock:
                if self._pid != os.getpid():
                    self._reset_state()
        if len(self._buffer) + len(self._pending) >= (
            monitoring_settings.EVENT_BUFFER_SIZE
        ):
            self.dropped += 1
            prometheus.events_dropped()
            return
        # The row is built here, on the request's thread (a few µs, no I/O),
        # not in the writer: Python work in a second thread costs a
        # saturated server far more than its own CPU time, in hand-overs
        # of the GIL (measured: bench/README.md).
        adapt_time = self._adapt_time
        if adapt_time is None:
            adapt_time = self._adapt_time = timestamp_adapter()
        self._buffer.append(to_row(event, adapt_time))
        if self._thread is None and monitoring_settings.EVENT_WRITER_THREAD:
            self._start()
        elif len(self._buffer) >= monitoring_settings.EVENT_BATCH_SIZE:
            self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._buffer) + len(self._pending)

    def stats(self) -> dict:
        return {
            "pid": self._pid,
            "buffered": self.buffered,
            "written": self.written,
            # of which the ingest process wrote (the rest, this process)
            "via_ingest": self.ingested,
            "ingest": self._ingest.state,
            "dropped": self.dropped,
            "write_failures": self.failures,
            "last_error": self.last_error,
            "last_flush_at": self.last_flush_at,
        }

    # --- the writer side --------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="event-writer", daemon=True
                )
                self._thread.start()
                # Server workers that are multiprocessing children (as
                # granian's are) leave through os._exit, which skips
                # atexit; their exit path runs multiprocessing's finalizers
                # instead. (mlserving.serve's workers also write out at the
                # ASGI lifespan's shutdown.)
                multiprocessing.util.Finalize(None, self.close, exitpriority=100)

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.wait(backoff or monitoring_settings.EVENT_FLUSH_INTERVAL)
            self._wake.clear()
            backoff = (
                0.0
                if self.flush()
                else min(MAX_BACKOFF_SECONDS, max(0.25, backoff * 2))
            )
        self.flush()
        self._ingest.close()
        connection.close()

    def _drain(self) -> None:
        buffer, pending = self._buffer, self._pending
        drained = []
        while buffer:
            try:
                drained.append(buffer.popleft())
            except IndexError:
                break
        if drained:
            prometheus.observe(drained)
            pending.extend(drained)
        prometheus.buffered(len(pending))

    def flush(self) -> bool:
        """Write everything buffered: through the ingest process when one
        listens, else here. False if the database refused (the events stay
        pending for the next try)."""
        self._drain()
        batch_size = monitoring_settings.EVENT_BATCH_SIZE
        remote = True
        while self._pending:
            try:
                if self._uncertain:
                    uncertain, self._uncertain = self._uncertain, 0
                    if batch_stored(self._pending[:uncertain]):
                        del self._pending[:uncertain]
                        self.written += uncertain
                        continue
                batch = self._pending[:batch_size]
                self._uncertain = len(batch)
                if remote and self._insert_remote(batch):
                    self.ingested += len(batch)
                else:
                    events_insert(batch)
                self._uncertain = 0
            except IngestFailed as exc:
                # In doubt: checked against the table at the next turn,
                # then written here for the rest of this flush.
                logger.warning("event ingest failed, writing here: %s", exc)
                remote = False
                continue
            except DatabaseError as exc:
                self.failures += 1
                if self.last_error is None:
                    logger.warning("event write failed, will retry: %s", exc)
                self.last_error = str(exc)
                if not connection.in_atomic_block:
                    connection.close()  # a broken connection is not reused
                return False
            del self._pending[: len(batch)]
            self.written += len(batch)
            if self.last_error is not None:
                logger.warning("event writes resumed")
                self.last_error = None
        self.last_flush_at = time.time()
        return True

    def _insert_remote(self, batch: list[tuple]) -> bool:
        """Whether the ingest process stored the batch; False when none
        listens (nothing was sent)."""
        try:
            self._ingest.insert(batch)
        except IngestUnavailable:
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after it writes what it holds (atexit)."""
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        self._stop.clear()

    def reset(self) -> None:
        """Forget everything (tests)."""
        self.close()
        with self._lock:
            self._reset_state()


def events_store(events: list[Event]) -> None:
    """Write events now, in the calling thread (tests, benchmarks)."""
    adapt_time = timestamp_adapter()
    events_insert([to_row(event, adapt_time) for event in events])


writer = EventWriter()


def record(event: Event) -> None:
    if monitoring_settings.ENABLED:
        writer.record(event)
