"""POST /predict as the HTTP front answers it (mlserving/front.py): on the
event loop, off Django. A thin edge, as the DRF view beside it
(views.py): both call the same data plane."""

import time

from mlserving.dataplane import inference, v2, v2codec
from mlserving.dataplane.events import prediction_event
from mlserving.errors import ErrorParts
from mlserving.http import Request, Response, encoded_headers
from monitoring import events


async def predict(request: Request) -> Response:
    payload = await inference.prediction_serve_async(
        body=request.body,
        request_id=request.request_id,
        started=request.started,
        arrived=request.arrived,
        subject_header=request.header("x-subject-key"),
    )
    return Response(200, payload)


async def v2_infer(request: Request) -> Response:
    """POST /v2/models/{name}[/versions/{version}]/infer; errors in the
    protocol's shape."""
    try:
        answer = await v2.infer_async(
            name=request.params["name"],
            version=request.params.get("version"),
            body=request.body,
            header_length=request.header(v2codec.HEADER_LENGTH.lower()),
            request_id=request.request_id,
            started=request.started,
            arrived=request.arrived,
        )
    except Exception as exc:
        failed = v2.error_answer(exc)
        if failed is None:
            raise
        status, body, headers = failed
        return Response(status, body, encoded_headers(headers))
    headers = dict(answer.headers)
    content_type = headers.pop("content-type", "application/json")
    return Response(200, answer.body, encoded_headers(headers), content_type.encode())


def predict_refused(
    request_id: str, arrived: float, started: float, error: ErrorParts
) -> None:
    """A /predict call the front refused before the data plane saw it
    (overloaded, a body that never came): logged like any refused call."""
    events.record(
        prediction_event(
            request_id=request_id,
            arrived=arrived,
            latency_ms=(time.perf_counter() - started) * 1e3,
            model=None,
            outcome=error.code,
            status_code=error.status_code,
        )
    )
