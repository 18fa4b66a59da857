"""The prediction path, top to bottom:

    decode body -> choose the target version -> get its loaded runtime
    -> infer (one call per row batch) -> encode -> count

Nothing here queries the database or Redis in steady state: the target
comes from the in-process catalog, the runtime from the in-process LRU.
"""

import threading
import time
from contextlib import contextmanager

import numpy as np
from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from experiments import shadow
from experiments.routing import arm_choose as routing_arm_choose
from mlserving.conf import app_settings, monitoring_settings
from mlserving.errors import (
    ApplicationError,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
)
from monitoring import events
from registry import codecs, serving
from registry.catalog import ModelEntry, Snapshot
from registry.errors import (
    ArtifactError,
    FeatureCountMismatch,
    ModelNotFound,
    ModelVersionNotFound,
)

CHUNK_ROWS = 256
_inflight = 0
_inflight_lock = threading.Lock()


@contextmanager
def _admission():
    """At most MAX_CONCURRENT_REQUESTS predictions at once per process;
    past that, 429 at once rather than a queue that times out."""
    global _inflight
    limit = app_settings.MAX_CONCURRENT_REQUESTS
    with _inflight_lock:
        if _inflight >= limit:
            raise Overloaded(
                f"This server process is already running {limit} "
                "predictions (MAX_CONCURRENT_REQUESTS); retry shortly.",
                details={"limit": limit, "retry_after_seconds": 1},
            )
        _inflight += 1
    try:
        yield
    finally:
        with _inflight_lock:
            _inflight -= 1


def _model_entry(snapshot: Snapshot, name: str | None) -> ModelEntry:
    key = name or snapshot.default_model
    model = snapshot.models.get(key) if key else None
    if model is None:
        if name:
            raise ModelNotFound.named(name)
        raise ModelNotFound.no_default(list(snapshot.models))
    return model


def _choose(
    snapshot: Snapshot,
    request: codecs.PredictRequest,
    request_id: str,
    subject_header: str | None,
):
    """The version that answers, its runtime, the routing note, and the
    running experiment when one chose it: an explicit model_version first,
    then the model's running experiment (unless use_ab_testing is false),
    then the alias."""
    model = _model_entry(snapshot, request.model)
    if request.model_version is not None:
        entry = model.versions.get(request.model_version)
        if entry is None:
            raise ModelVersionNotFound.of(
                model.name, request.model_version, available=model.versions
            )
        return entry, serving.runtime_get(entry), {"reason": "explicit"}, None
    experiment = (
        snapshot.experiments.get(model.name) if request.use_ab_testing else None
    )
    if experiment is not None:
        arm, routing = routing_arm_choose(
            experiment,
            body=request.body or {},
            header=subject_header,
            request_id=request_id,
        )
        try:
            runtime = serving.runtime_get(arm.version)
        except ArtifactError as error:
            control = experiment.arms[0]
            if arm is control:
                raise
            # An arm whose artifact cannot be loaded: its requests go to
            # the control, as a paused arm's do, and the answer says so.
            routing.update(arm=control.name, fallback_from=arm.name, error=error.code)
            arm, runtime = control, serving.runtime_get(control.version)
        return arm.version, runtime, routing, experiment
    entry, runtime, routing = serving.active_runtime(model)
    return entry, runtime, routing, None


def _infer_within_deadline(runtime, rows, started: float):
    """One infer call for up to CHUNK_ROWS rows; a larger batch runs in
    chunks and stops between them once REQUEST_TIMEOUT has passed (a
    running scikit-learn call cannot be interrupted)."""
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


def prediction_serve(
    *,
    read_body,
    request_id: str,
    started: float,
    arrived: float,
    subject_header: str | None = None,
) -> bytes:
    """Answer one /predict body (read by `read_body()`); the encoded JSON
    response.

    Raises ApplicationError subclasses for every client-visible failure
    (bad input, unknown or unservable version, overload). Every outcome,
    unexpected errors included, leaves a prediction event behind.
    """
    request = entry = experiment = routing = None
    try:
        try:
            body = read_body()
        except RequestDataTooBig:
            body = None
        if body is None or len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            # Chunked bodies carry no Content-Length for Django to check.
            raise PayloadTooLarge.body_over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        with _admission():
            request = codecs.decode_predict(body, max_rows=app_settings.MAX_BATCH_ROWS)
            entry, runtime, routing, experiment = _choose(
                serving.catalog.snapshot(), request, request_id, subject_header
            )
            rows = request.rows
            if entry.n_features is not None and rows.shape[1] != entry.n_features:
                raise FeatureCountMismatch(
                    f"{entry.model}:{entry.version} expects {entry.n_features} "
                    f"features per row; got {rows.shape[1]}.",
                    details={
                        "expected": entry.n_features,
                        "got": rows.shape[1],
                        "model_version": entry.version,
                    },
                )
            cache_key = serving.prediction_cache.key(entry.id, entry.sha256, rows)
            hit = serving.prediction_cache.get(cache_key)
            if hit is None:
                labels, proba = _infer_within_deadline(runtime, rows, started)
                serving.prediction_cache.put(cache_key, (labels, proba))
            else:
                labels, proba = hit
    except ApplicationError as error:
        _record_failure(
            error.code,
            error.status_code,
            request,
            entry,
            routing,
            request_id,
            started,
            arrived,
        )
        raise
    except Exception:
        _record_failure(
            "internal_error", 500, request, entry, routing, request_id, started, arrived
        )
        raise
    latency_ms = (time.perf_counter() - started) * 1e3
    payload = codecs.encode_predict(
        labels=labels,
        proba=proba,
        classes=entry.classes,
        single=request.single,
        meta={
            "model": entry.model,
            "model_version": entry.version,
            "request_id": request_id,
            "processing_time_ms": round(latency_ms, 3),
            "routing": routing,
            "cached": hit is not None,
        },
    )
    events.record(
        events.Event(
            created=arrived,
            request_id=request_id,
            model=entry.model,
            version=entry.version,
            latency_ms=latency_ms,
            outcome="ok",
            status_code=200,
            labels=labels,
            proba=proba,
            experiment=routing.get("experiment", ""),
            arm=routing.get("arm", ""),
            subject_key=request.subject_key,
            cached=hit is not None,
            features=rows if monitoring_settings.LOG_FEATURES else None,
        )
    )
    if experiment is not None and experiment.shadows:
        shadow.runner.mirror(
            experiment,
            rows=rows,
            labels=labels,
            request_id=request_id,
            arrived=arrived,
            primary_latency_ms=latency_ms,
            subject_key=request.subject_key,
        )
    return payload


def _record_failure(
    code, status_code, request, entry, routing, request_id, started, arrived
):
    model = entry.model if entry else (request.model if request else None)
    routing = routing or {}
    events.record(
        events.Event(
            created=arrived,
            request_id=request_id,
            model=model or app_settings.DEFAULT_MODEL_NAME or "",
            version=entry.version if entry else "",
            latency_ms=(time.perf_counter() - started) * 1e3,
            outcome=code,
            status_code=status_code,
            experiment=routing.get("experiment", ""),
            arm=routing.get("arm", ""),
            subject_key=request.subject_key if request else "",
        )
    )
