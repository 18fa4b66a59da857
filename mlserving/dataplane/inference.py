"""The prediction path, top to bottom:

    decode body -> choose the target version -> get its loaded runtime
    -> infer (one call per row batch) -> encode -> hand the event over
    -> mirror to shadows

Nothing here queries the database or Redis in steady state: the target
comes from the in-process catalog, the runtime from the in-process LRU,
and the event goes to a buffer that monitoring writes in the background.
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from mlserving.conf import app_settings
from mlserving.dataplane import codecs, routing
from mlserving.dataplane.batching import infer_alone
from mlserving.dataplane.catalog import Snapshot
from mlserving.dataplane.events import prediction_event
from mlserving.dataplane.offload import in_inference_thread, in_io_thread
from mlserving.dataplane.routing import Target
from mlserving.dataplane.serving import (
    batcher,
    catalog,
    costs,
    freshness,
    prediction_cache,
    runtimes,
    shadow_runner,
)
from mlserving.errors import ApplicationError, PayloadTooLarge
from monitoring import events
from registry.errors import FeatureCountMismatch


@dataclass(slots=True)
class Call:
    """One /predict call as it goes: what is known so far."""

    request_id: str
    started: float  # time.perf_counter() at arrival
    arrived: float  # time.time() at arrival
    subject_header: str | None = None
    request: codecs.PredictRequest | None = None
    target: Target | None = None

    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1e3


def predict_decoder(body: bytes) -> codecs.PredictRequest:
    """The /predict body decoder (the default protocol)."""
    return codecs.decode_predict(body, max_rows=app_settings.MAX_BATCH_ROWS)


def predict_encoder(call: "Call", labels, proba, meta: dict) -> bytes:
    """The /predict answer (the default protocol)."""
    return codecs.encode_predict(
        labels=labels,
        proba=proba,
        classes=call.target.version.classes,
        single=call.request.single,
        meta=meta,
    )


def decode(
    call: Call, read_body, snapshot: Snapshot, decoder=predict_decoder
) -> routing.Choice:
    """Read, check and decode the body (`read_body()`) with `decoder` (a
    protocol's: body bytes -> PredictRequest), and choose where it goes in
    `snapshot` (memory only)."""
    try:
        body = read_body()
    except RequestDataTooBig:
        body = None
    if body is None or len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        # Chunked bodies carry no Content-Length for the server to check.
        raise PayloadTooLarge.body_over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    request = call.request = decoder(body)
    return routing.choose(
        snapshot,
        model=request.model,
        version=request.model_version,
        use_experiment=request.use_ab_testing,
        body=request.body or {},
        request_id=call.request_id,
        subject_header=call.subject_header,
    )


def checked_rows(call: Call) -> np.ndarray:
    """The request's rows (in the target's feature order, when keyed by
    name), if the target takes that many features."""
    request, entry = call.request, call.target.version
    if request.rows is None:
        request.rows = codecs.named_rows(
            request.named, entry.feature_names, label=entry.label
        )
    rows = request.rows
    if entry.n_features is not None and rows.shape[1] != entry.n_features:
        raise FeatureCountMismatch(
            f"{entry.label} expects {entry.n_features} features per row; "
            f"got {rows.shape[1]}.",
            details={
                "expected": entry.n_features,
                "got": rows.shape[1],
                "model_version": entry.version,
            },
        )
    return rows


def infer(call: Call, rows: np.ndarray):
    """Labels and probabilities of the target for `rows`, in the calling
    thread: one infer call for up to CHUNK_ROWS rows; a larger batch runs
    in chunks and stops between them once REQUEST_TIMEOUT has passed (a
    running scikit-learn call cannot be interrupted). Teaches `costs` what
    it took."""
    return infer_alone(call, rows, costs)


def cache_key(call: Call, rows: np.ndarray) -> tuple:
    entry = call.target.version
    return prediction_cache.key(entry.id, entry.sha256, rows)


@contextmanager
def failures_recorded(call: Call):
    """Every failure of the call, unexpected ones included, leaves an
    event behind; the error propagates."""
    try:
        yield
    except ApplicationError as error:
        _record_failure(call, error.code, error.status_code)
        raise
    except Exception:
        _record_failure(call, "internal_error", 500)
        raise


def _record_failure(call: Call, code: str, status_code: int) -> None:
    target, request = call.target, call.request
    events.record(
        prediction_event(
            request_id=call.request_id,
            arrived=call.arrived,
            latency_ms=call.latency_ms(),
            model=target.version.model if target else (request and request.model),
            version=target.version.version if target else "",
            routing=target.routing if target else None,
            subject_key=request.subject_key if request else "",
            outcome=code,
            status_code=status_code,
        )
    )


def respond(call: Call, rows, labels, proba, *, cached: bool, encoder=predict_encoder):
    """Encode the answer with `encoder` (a protocol's: (call, labels,
    proba, meta) -> response), hand its event over and mirror it to the
    experiment's shadows; what the encoder returned."""
    target, request = call.target, call.request
    entry = target.version
    latency_ms = call.latency_ms()
    payload = encoder(
        call,
        labels,
        proba,
        {
            "model": entry.model,
            "model_version": entry.version,
            "request_id": call.request_id,
            "processing_time_ms": round(latency_ms, 3),
            "routing": target.routing.as_dict(),
            "cached": cached,
        },
    )
    events.record(
        prediction_event(
            request_id=call.request_id,
            arrived=call.arrived,
            latency_ms=latency_ms,
            model=entry.model,
            version=entry.version,
            routing=target.routing,
            subject_key=request.subject_key,
            labels=labels,
            proba=proba,
            cached=cached,
            rows=rows,
        )
    )
    experiment = target.experiment
    if experiment is not None and experiment.shadows:
        shadow_runner.mirror(
            experiment,
            catalog.current.versions,
            rows=rows,
            labels=labels,
            request_id=call.request_id,
            arrived=call.arrived,
            primary_latency_ms=latency_ms,
            subject_key=request.subject_key,
        )
    return payload


def prediction_serve(
    *,
    read_body,
    request_id: str,
    started: float,
    arrived: float,
    subject_header: str | None = None,
    decoder=predict_decoder,
    encoder=predict_encoder,
):
    """Answer one /predict body (`read_body()` gives it) in the calling
    thread, which may load a model from disk; the encoded JSON response
    (or what another protocol's `encoder` returns: /v2 infer).

    Raises ApplicationError subclasses for every client-visible failure
    (bad input, unknown or unservable version). Every outcome, unexpected
    errors included, leaves a prediction event behind.
    """
    call = Call(request_id, started, arrived, subject_header)
    with failures_recorded(call):
        choice = decode(call, read_body, catalog.snapshot(), decoder)
        call.target = routing.resolve(choice, runtimes.get)
        rows = checked_rows(call)
        key = cache_key(call, rows)
        hit = prediction_cache.get(key)
        if hit is None:
            labels, proba = infer(call, rows)
            prediction_cache.put(key, (labels, proba))
        else:
            labels, proba = hit
    return respond(call, rows, labels, proba, cached=hit is not None, encoder=encoder)


async def prediction_serve_async(
    *,
    body: bytes,
    request_id: str,
    started: float,
    arrived: float,
    subject_header: str | None = None,
    decoder=predict_decoder,
    encoder=predict_encoder,
):
    """prediction_serve() for an event loop: the same steps and answers,
    with nothing on the loop that waits. The catalog is kept fresh in the
    background, a model that must be loaded is loaded in a thread, and a
    call expected to take longer than INLINE_INFERENCE_BUDGET_MS runs on
    the inference thread, where concurrent calls for one version may be
    stacked into one (batching.py, BATCHING)."""
    call = Call(request_id, started, arrived, subject_header)
    with failures_recorded(call):
        choice = decode(call, lambda: body, await freshness.snapshot(), decoder)
        target = routing.resolve(choice, runtimes.loaded)
        if target is None:
            target = await in_io_thread(routing.resolve, choice, runtimes.get)
        call.target = target
        rows = checked_rows(call)
        key = cache_key(call, rows)
        hit = prediction_cache.get(key)
        if hit is None:
            if batcher.applies(target):
                labels, proba = await batcher.infer(call, rows)
            elif costs.inline(target.version.id, len(rows)):
                labels, proba = infer(call, rows)
            else:
                labels, proba = await in_inference_thread(infer, call, rows)
            prediction_cache.put(key, (labels, proba))
        else:
            labels, proba = hit
    return respond(call, rows, labels, proba, cached=hit is not None, encoder=encoder)
