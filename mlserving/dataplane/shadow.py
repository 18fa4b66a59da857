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
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from experiments.entries import ServingExperiment
from mlserving.conf import experiment_settings
from mlserving.dataplane.events import ShadowOf, prediction_event
from mlserving.errors import ApplicationError
from monitoring import events, prometheus
from registry.entries import VersionEntry

logger = logging.getLogger("mlserving.dataplane")


@dataclass(slots=True)
class _Copy:
    version: VersionEntry  # the shadow version that answers it
    of: ShadowOf
    rows: np.ndarray
    request_id: str
    arrived: float
    subject_key: str


class ShadowRunner:
    """One background thread per process answers the copies, oldest first.

    The request side does as little as it can, because a saturated server
    pays for every microsecond and every GIL hand-over: a length check, a
    deque append, and waking the thread only if it sleeps. Drops are
    counted here and handed to Prometheus by the thread, in batches.
    """

    def __init__(self, runtime_of):
        # runtime_of(VersionEntry) -> the loaded runtime (may load it)
        self._runtime_of = runtime_of
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._copies: deque[_Copy] = deque()
        self._wake = threading.Event()
        self._idle = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self.mirrored = 0
        self.dropped = 0
        self.answered = 0
        self._dropped_reported = 0

    def mirror(
        self,
        experiment: ServingExperiment,
        versions: dict[int, VersionEntry],
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
            if self._thread is None or self._pid != os.getpid():
                self._start()
            if len(self._copies) >= experiment_settings.SHADOW_QUEUE_SIZE:
                self.dropped += 1
                continue
            self._copies.append(
                _Copy(
                    version=versions[shadow.version_id],
                    of=ShadowOf(experiment.name, labels, primary_latency_ms),
                    rows=rows,
                    request_id=request_id,
                    arrived=arrived,
                    subject_key=subject_key,
                )
            )
            self.mirrored += 1
            if self._idle:
                self._idle = False
                self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="shadow", daemon=True
                )
                self._thread.start()

    def _report_drops(self) -> None:
        dropped = self.dropped
        if dropped != self._dropped_reported:
            prometheus.shadow_dropped(dropped - self._dropped_reported)
            self._dropped_reported = dropped

    def _run(self) -> None:
        copies = self._copies
        while not self._stop:
            try:
                copy = copies.popleft()
            except IndexError:
                self._report_drops()
                self._wake.clear()
                self._idle = True
                if not copies:  # a copy may have come before _idle was set
                    self._wake.wait(1.0)
                self._idle = False
                continue
            try:
                self.answer(copy)
            except Exception:
                logger.exception("shadow prediction failed")
            self.answered += 1
            self._report_drops()

    def answer(self, copy: _Copy) -> None:
        """Run one copy through its shadow version and record the event."""
        entry = copy.version
        started = time.perf_counter()
        labels = proba = None
        outcome, status = "ok", 200
        try:
            labels, proba = self._runtime_of(entry).infer(copy.rows)
        except ApplicationError as error:
            outcome, status = error.code, error.status_code
        except Exception:
            logger.exception("shadow %s failed", entry.label)
            outcome, status = "internal_error", 500
        events.record(
            prediction_event(
                request_id=copy.request_id,
                arrived=copy.arrived,
                latency_ms=(time.perf_counter() - started) * 1e3,
                model=entry.model,
                version=entry.version,
                subject_key=copy.subject_key,
                outcome=outcome,
                status_code=status,
                labels=labels,
                proba=proba,
                shadow_of=copy.of,
            )
        )

    def stats(self) -> dict:
        return {
            "queued": len(self._copies),
            "mirrored": self.mirrored,
            "answered": self.answered,
            "dropped": self.dropped,
        }

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued copy has been answered (tests,
        benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.answered < self.mirrored:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def reset(self) -> None:
        """Stop the thread and forget the counts (tests)."""
        with self._lock:
            thread = self._thread
            if thread is not None and self._pid == os.getpid():
                self._stop = True
                self._wake.set()
                thread.join(5)
            self._reset()
