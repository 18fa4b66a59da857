"""How a request's rows become runtime calls: a large request is cut into
chunks, and concurrent small requests for one version may share a call.

A scikit-learn call has a fixed cost that does not grow with its rows
(input checks, and for a forest one dispatch per tree), so one call on
twenty stacked rows costs little more than a call on one row. The
Batcher stacks requests, adaptively (continuous batching):

- each version has a FIFO queue of waiting requests, and there is at
  most one drain at a time, on the process's single inference thread
  (offload.py); no thread is added;
- a request that finds no drain under way starts one at once: it waits
  for no window, so one connection pays nothing for batching;
- the window is the call in progress: requests that arrive while it
  runs wait, and the next drain stacks them from the head of one
  version's queue, up to BATCH_MAX_ROWS rows, into one runtime call
  (a request larger than that runs alone, in chunks as before);
- versions take turns (round robin), and each drain makes one call and
  then queues the next behind whatever else waits for the thread;
- each request gets its own slice of the answer, in order. If the
  stacked call raises, each of its requests runs again alone, so each
  gets its own result or its own error: a bad request fails alone.
  Rows of different widths, or for different loaded runtimes, are never
  stacked together.

Which versions' calls are batched (BATCHING):

- `off`: none; `on`: all;
- `auto` (the default): where a stacked call is cheaper than its rows
  one by one, and a call costs enough (BATCH_MIN_SECONDS, measured) for
  the hand-over to the thread not to matter. scikit-learn runtimes are
  cheaper stacked; for any other runtime it is measured: the version's
  per-row cost in multi-row calls (learned by InferenceCosts) must be
  below BATCH_GAIN times its one-row cost. With no multi-row call
  measured yet, such a version is not batched.

A batched version's calls all go to the batcher, even those cheap enough
to run inline on the event loop (INLINE_INFERENCE_BUDGET_MS: a
scikit-learn forest's 5 ms is): inline, concurrent calls would run one
after the other on the loop, 5 ms per row, and never meet in a batch.
One connection pays the hand-over, under 5 % of such a call.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from mlserving.conf import app_settings
from mlserving.dataplane import offload
from mlserving.dataplane.offload import InferenceCosts
from mlserving.errors import RequestTimeout

logger = logging.getLogger("mlserving.dataplane")

# Most rows per runtime call of one large request.
CHUNK_ROWS = 256
# Runtimes whose stacked calls are cheaper than their rows one by one
# without measuring: a 100-tree forest's predict_proba took 5.3 ms on one
# row and 6.1 ms on 256 (10 features, one core).
STACKING_RUNTIMES = frozenset({"sklearn"})
# auto: other runtimes stack when a row of a multi-row call costs below
# this share of a one-row call (a clear margin over measurement noise).
BATCH_GAIN = 0.8
# auto: calls expected to cost less than this are not batched but run as
# before (inline on the loop when within INLINE_INFERENCE_BUDGET_MS): the
# hand-over to the inference thread (~35 us) would cost one connection
# more than 5 % (an ONNX Runtime forest answers one row in ~10 us, a
# scikit-learn LogisticRegression in ~130 us, its forest in ~5 ms).
BATCH_MIN_SECONDS = 0.5e-3


def infer_alone(call, rows: np.ndarray, costs: InferenceCosts):
    """Labels and probabilities of `call.target` for `rows`: one runtime
    call for up to CHUNK_ROWS rows; a larger batch runs in chunks and
    stops between them once REQUEST_TIMEOUT has passed since the call
    started (a running scikit-learn call cannot be interrupted), raising
    RequestTimeout. Teaches `costs` what it took."""
    runtime, began = call.target.runtime, time.perf_counter()
    result = infer_chunked(runtime, rows, call.started)
    costs.observe(call.target.version.id, len(rows), time.perf_counter() - began)
    return result


def infer_chunked(runtime, rows: np.ndarray, started: float):
    """`runtime.infer(rows)`, CHUNK_ROWS rows at a time, with the
    REQUEST_TIMEOUT deadline counted from `started` (perf_counter)."""
    if len(rows) <= CHUNK_ROWS:
        return runtime.infer(rows)
    deadline = started + app_settings.REQUEST_TIMEOUT
    labels, probas = [], []
    for offset in range(0, len(rows), CHUNK_ROWS):
        if time.perf_counter() > deadline:
            raise RequestTimeout(
                f"The batch took longer than REQUEST_TIMEOUT "
                f"({app_settings.REQUEST_TIMEOUT:g} s) after {offset} of "
                f"{len(rows)} rows; send smaller batches.",
                details={"rows_done": offset, "rows": len(rows)},
            )
        chunk_labels, chunk_proba = runtime.infer(rows[offset : offset + CHUNK_ROWS])
        labels.append(chunk_labels)
        probas.append(chunk_proba)
    proba = None if probas[0] is None else np.concatenate(probas)
    return np.concatenate(labels), proba


@dataclass(slots=True)
class _Pending:
    call: object  # inference.Call: .target (.version.id, .runtime), .started
    rows: np.ndarray
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class Batcher:
    """Stacks concurrent requests per version into shared runtime calls on
    the inference thread (see the module docstring)."""

    def __init__(self, costs: InferenceCosts, executor=None):
        self._costs = costs
        # the process's one inference thread unless a test gives another
        self._executor = executor or offload._inference
        # Appended to on event loops, drained on the inference thread.
        self._lock = threading.Lock()
        self._queues: dict[int, deque[_Pending]] = {}  # order: whose turn
        self._draining = False

    def applies(self, target) -> bool:
        """Whether calls for `target` (a routing.Target whose calls go to
        the inference thread) are batched under the BATCHING setting."""
        mode = app_settings.BATCHING
        if mode != "auto":
            return mode == "on"
        one = self._costs.estimate(target.version.id, 1)
        if one is None or one < BATCH_MIN_SECONDS:
            return False
        if target.runtime.name in STACKING_RUNTIMES:
            return True
        two = self._costs.estimate(target.version.id, 2)
        return two is not None and two < BATCH_GAIN * 2 * one

    async def infer(self, call, rows: np.ndarray):
        """What infer_alone(call, rows) gives, or raises, computed on the
        inference thread, perhaps in one call with other requests for the
        same version."""
        loop = asyncio.get_running_loop()
        pending = _Pending(call, rows, loop.create_future(), loop)
        version_id = call.target.version.id
        with self._lock:
            self._queues.setdefault(version_id, deque()).append(pending)
            start = not self._draining
            self._draining = True
        if start:
            self._executor.submit(self._drain)
        return await pending.future

    def pending(self) -> int:
        """Requests waiting for their call (not counting the running one)."""
        with self._lock:
            return sum(len(queue) for queue in self._queues.values())

    def _drain(self) -> None:
        # On the inference thread: one call, then the next drain goes to
        # the back of the executor's queue, so calls that are not batched
        # (other versions, or BATCHING=off) wait for one call at most.
        try:
            with self._lock:
                batch = self._take()
            if batch:
                self._answer(batch, self._outcomes(batch))
        finally:
            with self._lock:
                more = bool(self._queues)
                self._draining = more
            if more:
                self._executor.submit(self._drain)

    def _take(self) -> list[_Pending]:
        """The next batch (lock held): from the head of the queue whose turn
        it is, as many requests as fit in BATCH_MAX_ROWS and stack with the
        first; that queue then goes to the back."""
        cap = app_settings.BATCH_MAX_ROWS
        while self._queues:
            version_id = next(iter(self._queues))
            queue = self._queues.pop(version_id)
            batch = _stack_from(queue, cap)
            if queue:
                self._queues[version_id] = queue
            if batch:
                return batch
        return []

    def _outcomes(self, batch: list[_Pending]) -> list[tuple]:
        """(result, error) per request, in order."""
        if len(batch) > 1:
            try:
                return [(result, None) for result in self._stacked(batch)]
            except Exception:
                # Someone's rows broke the shared call: each runs alone,
                # so only that request gets the error.
                logger.debug("a stacked call of %d requests failed", len(batch))
        return [self._alone(pending) for pending in batch]

    def _alone(self, pending: _Pending) -> tuple:
        try:
            return infer_alone(pending.call, pending.rows, self._costs), None
        except Exception as error:
            return None, error

    def _stacked(self, batch: list[_Pending]) -> list[tuple]:
        head = batch[0].call
        rows = np.vstack([pending.rows for pending in batch])
        began = time.perf_counter()
        labels, proba = infer_chunked(head.target.runtime, rows, head.started)
        seconds = time.perf_counter() - began
        if len(labels) != len(rows) or (proba is not None and len(proba) != len(rows)):
            raise ValueError("the runtime answered a different number of rows")
        # The per-row cost of a stacked call, so estimates of multi-row
        # calls (and BATCHING=auto) see what stacking costs.
        self._costs.observe(head.target.version.id, len(rows), seconds)
        results, offset = [], 0
        for pending in batch:
            end = offset + len(pending.rows)
            # Copies: a slice would keep the whole stacked answer alive in
            # the prediction cache.
            results.append(
                (
                    labels[offset:end].copy(),
                    None if proba is None else proba[offset:end].copy(),
                )
            )
            offset = end
        return results

    def _answer(self, batch: list[_Pending], outcomes: list[tuple]) -> None:
        # One hand-over per event loop, in the batch's order.
        by_loop: dict = {}
        for pending, (result, error) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, result, error))
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, answers)
            except RuntimeError:
                pass  # the loop is closed: nobody waits for these answers


def _stack_from(queue: deque[_Pending], cap: int) -> list[_Pending]:
    """Requests from the head of `queue` that share one call: the first
    (whatever its size), then the next ones while they fit in `cap` rows
    and have the first's width and runtime. Abandoned requests are
    dropped."""
    batch: list[_Pending] = []
    size = 0
    while queue:
        pending = queue[0]
        if pending.future.cancelled():
            queue.popleft()
            continue
        if batch:
            first = batch[0]
            if (
                size + len(pending.rows) > cap
                or pending.rows.shape[1:] != first.rows.shape[1:]
                or pending.call.target.runtime is not first.call.target.runtime
            ):
                break
        batch.append(queue.popleft())
        size += len(pending.rows)
    return batch


def _settle(answers: list[tuple]) -> None:
    for future, result, error in answers:
        if future.done():  # cancelled: its request is gone
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
