"""POST /predict as the HTTP front answers it (mlserving/front.py): on the
event loop, off Django. A thin edge, as the DRF view beside it
(views.py): both call the same data plane."""

from mlserving.dataplane import inference
from mlserving.http import Request, Response


async def predict(request: Request) -> Response:
    payload = await inference.prediction_serve_async(
        body=request.body,
        request_id=request.request_id,
        started=request.started,
        arrived=request.arrived,
        subject_header=request.header("x-subject-key"),
    )
    return Response(200, payload)
