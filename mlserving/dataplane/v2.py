"""The Open Inference Protocol V2 (KServe V2, Triton's HTTP/REST API) on
the same data plane as /predict: the same routing (explicit version,
experiment, alias, `model@alias`), runtimes, batching, cache and events;
only the wire format differs (v2codec.py).

    GET  /v2                                        server metadata
    GET  /v2/health/live | /v2/health/ready
    GET  /v2/models/{name}[/versions/{version}]     model metadata
    GET  /v2/models/{name}[/versions/{version}]/ready
    POST /v2/models/{name}[/versions/{version}]/infer
"""

import re
from dataclasses import dataclass

import numpy as np
import orjson
from django.db import DatabaseError, connection

from mlserving.conf import app_settings
from mlserving.dataplane import inference, routing, v2codec
from mlserving.dataplane.codecs import PredictRequest, subject_key
from mlserving.dataplane.serving import catalog, runtimes
from mlserving.errors import ValidationFailed, error_parts, protocol_error_body
from registry import selectors
from registry.errors import ArtifactError, ModelVersionNotFound

SERVER_NAME = "mlserving"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data"]
PLATFORMS = {"sklearn": "sklearn_skops", "onnx": "onnxruntime_onnx"}

# The model segment may carry an alias (`default@champion`).
_NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,99}(?:@[a-z][a-z0-9_-]{0,49})?)"
_VERSION = r"(?:/versions/(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{0,63}))?"
INFER_PATH = re.compile(rf"^/v2/models/{_NAME}{_VERSION}/infer$")


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    headers: dict[str, str]


def server_metadata() -> dict:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}


def server_ready() -> tuple[bool, dict]:
    """Ready: the database answers and the active version of every model
    is loaded (verified against its sha256 at load) in this process.
    Redis is not needed to serve, so it is not part of readiness."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return False, {"database": f"unreachable: {exc}"}
    try:
        snapshot = catalog.snapshot()
    except DatabaseError as exc:
        return False, {"database": f"unreachable: {exc}"}
    waiting = {}
    for name, model in snapshot.models.items():
        if model.active is None:
            continue
        try:
            loaded = runtimes.loaded(model.active)
        except ArtifactError as exc:
            waiting[name] = exc.message
            continue
        if loaded is None:
            waiting[name] = f"{model.active.label} is not loaded"
    return not waiting, waiting


def _target(name: str, version: str | None):
    """The version a metadata or readiness call is about: the one named,
    else what a request without a version gets (alias or experiment
    control), from memory."""
    snapshot = catalog.snapshot()
    choice = routing.choose(
        snapshot,
        model=name,
        version=version,
        use_experiment=False,
        body={},
        request_id="v2",
        subject_header=None,
    )
    return choice


def model_ready(name: str, version: str | None) -> bool:
    """Whether the version a request would get can answer now (loading it
    in this process if needed). ModelNotFound, ModelVersionNotFound,
    AliasNotFound, NoActiveVersion."""
    choice = _target(name, version)
    try:
        routing.resolve(choice, runtimes.get)
    except ArtifactError:
        return False
    return True


def model_metadata(name: str, version: str | None) -> dict:
    """The protocol's model metadata, with the version's signature
    (feature names, dtype, classes, scikit-learn version) as parameters."""
    choice = _target(name, version)
    entry = choice.candidates[0]
    model = selectors.model_get(name=entry.model)
    row = model.versions.filter(pk=entry.id).first()
    if row is None:  # deleted since the catalog was read
        raise ModelVersionNotFound.of(entry.model, entry.version)
    has_proba = _has_proba(entry)
    signature = {
        "model_type": row.model_type,
        "format": row.format,
        "runtime": entry.runtime,
        "n_features": row.n_features,
        "feature_names": row.feature_names,
        "dtype": row.input_dtype,
        "classes": row.classes,
        "sklearn_version": row.sklearn_version or None,
        "sha256": row.sha256,
        "version": row.version,
        "aliases": sorted(
            alias
            for alias, target in choice.model.aliases.items()
            if target.id == entry.id
        ),
    }
    return v2codec.model_metadata(
        name=entry.model,
        # in registration order
        versions=[
            e.version
            for e in sorted(choice.model.versions.values(), key=lambda e: e.id)
        ],
        platform=PLATFORMS.get(entry.runtime, entry.runtime),
        n_features=row.n_features,
        input_datatype=row.input_dtype or "FP64",
        classes=list(row.classes),
        has_proba=has_proba,
        signature=signature,
    )


def _has_proba(entry) -> bool:
    """Whether the version answers probabilities: known once loaded; a
    classifier with classes is assumed to until then."""
    try:
        runtime = runtimes.loaded(entry)
    except ArtifactError:
        runtime = None
    if runtime is not None and hasattr(runtime, "_has_proba"):
        return bool(runtime._has_proba)
    return bool(entry.classes)


def _use_ab_testing(parameters: dict) -> bool:
    value = parameters.get("use_ab_testing", True)
    if not isinstance(value, bool):
        raise ValidationFailed(
            "parameters.use_ab_testing must be true or false.",
            details={"field": "parameters.use_ab_testing"},
        )
    return value


def _answer_parameters(meta: dict) -> dict:
    """Which version answered and why, as the protocol's parameters (plain
    values only): `routing` is the reason, `routing_<field>` the rest of
    /predict's routing object."""
    routing_body = dict(meta["routing"])
    parameters = {
        "model_version": meta["model_version"],
        "request_id": meta["request_id"],
        "routing": routing_body.pop("reason"),
        "cached": meta["cached"],
        "processing_time_ms": meta["processing_time_ms"],
    }
    for key, value in routing_body.items():
        if value is not None:
            parameters[f"routing_{key}"] = value
    return parameters


def protocol(name: str, version: str | None, header_length: str | None):
    """The (decoder, encoder) pair the data plane calls for one /v2 infer
    request to `name` (or `name@alias`) and, when given, `version`."""
    holder: dict = {}

    def decoder(body: bytes) -> PredictRequest:
        decoded = v2codec.decode_infer(
            body, header_length=header_length, max_rows=app_settings.MAX_BATCH_ROWS
        )
        # Unknown output names are refused before the model runs.
        v2codec.outputs_check(decoded.outputs, has_proba=True)
        holder["request"] = decoded
        parameters = decoded.parameters
        return PredictRequest(
            rows=decoded.rows,
            single=False,
            model=name,
            model_version=version,
            use_ab_testing=_use_ab_testing(parameters),
            subject_key=subject_key(parameters),
            body=parameters,
        )

    def encoder(call, labels, proba, meta: dict) -> Answer:
        decoded = holder["request"]
        entry = call.target.version
        body, headers = v2codec.encode_infer(
            model_name=entry.model,
            model_version=entry.version,
            id=decoded.id,
            labels=np.asarray(labels),
            proba=proba,
            classes=entry.classes,
            outputs=decoded.outputs,
            binary_default=decoded.binary_default,
            parameters=_answer_parameters(meta),
        )
        return Answer(body, headers)

    return decoder, encoder


def infer(
    *,
    name: str,
    version: str | None,
    body: bytes,
    header_length: str | None,
    request_id: str,
    started: float,
    arrived: float,
) -> Answer:
    """One /v2 infer call in the calling thread (Django's view)."""
    decoder, encoder = protocol(name, version, header_length)
    return inference.prediction_serve(
        read_body=lambda: body,
        request_id=request_id,
        started=started,
        arrived=arrived,
        decoder=decoder,
        encoder=encoder,
    )


async def infer_async(
    *,
    name: str,
    version: str | None,
    body: bytes,
    header_length: str | None,
    request_id: str,
    started: float,
    arrived: float,
) -> Answer:
    """One /v2 infer call on the HTTP front's event loop."""
    decoder, encoder = protocol(name, version, header_length)
    return await inference.prediction_serve_async(
        body=body,
        request_id=request_id,
        started=started,
        arrived=arrived,
        decoder=decoder,
        encoder=encoder,
    )


def error_answer(exc: Exception) -> tuple[int, bytes, dict] | None:
    """(status, body, headers) in the protocol's error shape for an error
    a client may see, None for any other exception (the caller's logged
    500)."""
    parts = error_parts(exc)
    if parts is None:
        return None
    body = orjson.dumps(protocol_error_body(parts.code, parts.message, parts.details))
    return parts.status_code, body, parts.headers
