"""Prometheus metrics, correct across every process of a deployment.

prometheus_client's multiprocess mode keeps each process's values in
memory-mapped files under PROMETHEUS_MULTIPROC_DIR (set in settings before
this module is imported); GET /metrics/prometheus sums them. The event
writer thread counts events here as it drains its buffer, before and
independently of the database write, so the counters keep moving while
the database is down.

Label values come from the registry, never from what a client sent: a
/predict call naming a model that does not exist is counted under
model="unknown", so made-up names cannot add series without bound.
"""

import atexit
import os

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from mlserving.conf import app_settings
from monitoring.event_store import (
    EVENT_ARM,
    EVENT_LATENCY,
    EVENT_MODEL,
    EVENT_OUTCOME,
    EVENT_ROWS,
    EVENT_VERSION,
)
from registry.entries import model_ref_split
from registry.errors import ModelNotFound

# What generate_latest writes (legacy names, no UTF-8 escaping): the text
# format every Prometheus and curl reads. prometheus_client's
# CONTENT_TYPE_LATEST says version=1.0.0 now, which is not what is sent.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# The model label of a call that named no registered model.
UNKNOWN_MODEL = "unknown"

# Seconds. Fine below 10 ms, where most predictions land.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

PREDICTIONS = Counter(
    "mlserving_predictions",
    "POST /predict requests by outcome ('ok' or the error code); arm "
    "'shadow' counts the mirrored copies answered by shadow versions.",
    ["model", "version", "arm", "outcome"],
)
ROWS = Counter(
    "mlserving_prediction_rows",
    "Rows predicted (a batch request counts each row).",
    ["model", "version", "arm"],
)
LATENCY = Histogram(
    "mlserving_prediction_latency_seconds",
    "Time from request arrival to response body, per /predict request.",
    ["model", "version", "arm"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_DROPPED = Counter(
    "mlserving_events_dropped",
    "Prediction events dropped because a process's buffer was full.",
)
SHADOW_DROPPED = Counter(
    "mlserving_shadow_dropped",
    "Mirrored requests dropped because a process's shadow queue was full.",
)
EVENTS_BUFFERED = Gauge(
    "mlserving_events_buffered",
    "Prediction events waiting to be written to the database.",
    multiprocess_mode="livesum",
)

# Upper bounds as the histogram keeps them (with +Inf): bucket i counts
# amounts <= _UPPER_BOUNDS[i] and above the previous bound.
_UPPER_BOUNDS = np.array([*LATENCY_BUCKETS, float("inf")])

_children: dict = {}


def _series(key: tuple) -> tuple:
    series = _children.get(key)
    if series is None:
        model, version, arm, outcome = key
        series = _children[key] = (
            PREDICTIONS.labels(model, version, arm, outcome),
            ROWS.labels(model, version, arm),
            LATENCY.labels(model, version, arm),
        )
    return series


def model_label(model: str, version: str, outcome: str) -> str:
    """The model label of an event: a registered model's name, or
    UNKNOWN_MODEL. An event with a version was routed through the catalog,
    so its model is the registry's own name. One without failed before a
    version was chosen and carries the request's model reference as sent:
    when that named no registered model (model_not_found) it is unknown;
    otherwise routing found the model, and `name@alias` is counted under
    `name` (an empty name means the default model, as for an event of a
    call that named none)."""
    if version:
        return model
    if outcome == ModelNotFound.code:
        return UNKNOWN_MODEL
    name, _ = model_ref_split(model)
    return name or app_settings.DEFAULT_MODEL_NAME or ""


def observe(rows) -> None:
    """Count a drained batch of event rows (event_store.to_row): one
    increment per series and per histogram bucket touched, instead of one
    per event (each increment writes to a memory-mapped file under a
    lock)."""
    requests: dict[tuple, int] = {}
    predicted: dict[tuple, int] = {}
    latencies: dict[tuple, list[float]] = {}
    for row in rows:
        version, outcome = row[EVENT_VERSION], row[EVENT_OUTCOME]
        model = model_label(row[EVENT_MODEL], version, outcome)
        key = (model, version, row[EVENT_ARM], outcome)
        requests[key] = requests.get(key, 0) + 1
        if row[EVENT_ROWS]:
            predicted[key] = predicted.get(key, 0) + row[EVENT_ROWS]
        latencies.setdefault(key, []).append(row[EVENT_LATENCY] / 1000.0)
    for key, count in requests.items():
        counter, row_counter, histogram = _series(key)
        counter.inc(count)
        if key in predicted:
            row_counter.inc(predicted[key])
        histogram_observe_many(histogram, latencies[key])


def histogram_observe_many(histogram, amounts: list[float]) -> None:
    """Histogram.observe() for each amount, with one write per bucket.
    Uses the child's `_sum` and `_buckets` (prometheus_client 0.26, pinned;
    a test compares the exposition with per-amount observe())."""
    counts = np.bincount(
        np.searchsorted(_UPPER_BOUNDS, amounts, side="left"),
        minlength=len(_UPPER_BOUNDS),
    )
    histogram._sum.inc(float(sum(amounts)))
    for index in np.flatnonzero(counts):
        histogram._buckets[index].inc(int(counts[index]))


def events_dropped() -> None:
    EVENTS_DROPPED.inc()


def shadow_dropped(count: int = 1) -> None:
    SHADOW_DROPPED.inc(count)


def buffered(count: int) -> None:
    EVENTS_BUFFERED.set(count)


def render() -> bytes:
    """The text exposition, summed over every process."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


@atexit.register
def _process_exit() -> None:
    multiprocess.mark_process_dead(os.getpid())
