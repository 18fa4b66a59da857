"""Shadow traffic: a copy of a share of an experiment's requests goes to
its shadow versions, answered in a background thread of the same process
and never returned.

The caller never waits: `mirror()` puts the copy on a bounded queue (no
I/O) and returns; when the queue is full the copy is dropped and counted.
Each shadow answer becomes a prediction event with the primary's request
id, arm "shadow", the rows on which it agreed with the primary's answer
and the primary's latency, so rollups give agreement and latency against
the primary. A shadow version runs on the same CPU as the caller: one that
burns CPU (rather than waiting, as a remote call or a sleep does) takes
that CPU from the primary.
"""

import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass

import numpy as np

from experiments.routing import ExperimentEntry
from mlserving.conf import experiment_settings
from mlserving.errors import ApplicationError
from monitoring import events, prometheus

logger = logging.getLogger("experiments")

SHADOW_ARM = "shadow"


@dataclass(slots=True)
class _Copy:
    shadow: object  # routing.ShadowEntry
    experiment: str
    rows: np.ndarray
    labels: np.ndarray
    request_id: str
    arrived: float
    primary_latency_ms: float
    subject_key: str


class ShadowRunner:
    def __init__(self):
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self.mirrored = 0
        self.dropped = 0
        self.answered = 0

    def mirror(
        self,
        experiment: ExperimentEntry,
        *,
        rows: np.ndarray,
        labels: np.ndarray,
        request_id: str,
        arrived: float,
        primary_latency_ms: float,
        subject_key: str,
    ) -> None:
        """Queue a copy of the request for each shadow version whose
        mirror share the draw falls in; never blocks."""
        for shadow in experiment.shadows:
            if shadow.fraction < 1.0 and random.random() >= shadow.fraction:
                continue
            self._put(
                _Copy(
                    shadow=shadow,
                    experiment=experiment.name,
                    rows=rows,
                    labels=labels,
                    request_id=request_id,
                    arrived=arrived,
                    primary_latency_ms=primary_latency_ms,
                    subject_key=subject_key,
                )
            )

    def _put(self, copy: _Copy) -> None:
        if self._pid != os.getpid() or self._queue is None:
            self._start()
        try:
            self._queue.put_nowait(copy)
        except queue.Full:
            self.dropped += 1
            prometheus.shadow_dropped()
            return
        self.mirrored += 1

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            if self._queue is None:
                self._queue = queue.Queue(maxsize=experiment_settings.SHADOW_QUEUE_SIZE)
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="shadow", daemon=True
                )
                self._thread.start()

    def _run(self, copies: queue.Queue) -> None:
        while True:
            copy = copies.get()
            try:
                if copy is None:
                    return
                self.answer(copy)
            except Exception:
                logger.exception("shadow prediction failed")
            finally:
                copies.task_done()

    def answer(self, copy: _Copy) -> None:
        """Run one copy through its shadow version and record the event."""
        from registry import serving

        entry = copy.shadow.version
        started = time.perf_counter()
        labels = proba = None
        outcome, status = "ok", 200
        try:
            runtime = serving.runtime_get(entry)
            labels, proba = runtime.infer(copy.rows)
        except ApplicationError as error:
            outcome, status = error.code, error.status_code
        except Exception:
            logger.exception("shadow %s failed", entry.version)
            outcome, status = "internal_error", 500
        latency_ms = (time.perf_counter() - started) * 1e3
        agreed = None
        if labels is not None and len(labels) == len(copy.labels):
            agreed = int(np.count_nonzero(labels == copy.labels))
        self.answered += 1
        events.record(
            events.Event(
                created=copy.arrived,
                request_id=copy.request_id,
                model=entry.model,
                version=entry.version,
                latency_ms=latency_ms,
                outcome=outcome,
                status_code=status,
                labels=labels,
                proba=proba,
                experiment=copy.experiment,
                arm=SHADOW_ARM,
                subject_key=copy.subject_key,
                shadow=True,
                agreed_rows=agreed,
                primary_latency_ms=copy.primary_latency_ms,
            )
        )

    def stats(self) -> dict:
        return {
            "queued": self._queue.qsize() if self._queue is not None else 0,
            "mirrored": self.mirrored,
            "answered": self.answered,
            "dropped": self.dropped,
        }

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued copy has been answered (tests,
        benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue is not None and time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return self._queue is None or self._queue.unfinished_tasks == 0

    def reset(self) -> None:
        """Stop the thread and forget the counts (tests)."""
        with self._lock:
            if self._queue is not None and self._pid == os.getpid():
                self._queue.put(None)
                if self._thread is not None:
                    self._thread.join(5)
            self._reset()


runner = ShadowRunner()
