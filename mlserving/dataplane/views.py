"""POST /predict as a Django (DRF) view: what Django's URL routes serve
(the test client, a plain WSGI or ASGI deployment, and requests the
front hands over, such as a staff session's when reads are closed). The
front (mlserving/front.py) answers the same path itself, off Django; both
are thin and call the same data plane."""

import time

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from access.auth import READ, ApiKeyAuthentication, SessionReadAuthentication
from mlserving.dataplane import codecs, inference
from mlserving.dataplane.serializers import (
    PredictRequestSerializer,
    PredictResponseSerializer,
)
from mlserving.json import JSONOnlyNegotiation
from mlserving.openapi import error_responses


class PredictApi(APIView):
    # No DRF parsing, negotiation or rendering: the body goes straight to
    # the orjson codec. A request without a session cookie costs the
    # session check no query (the dashboard's form needs it when reads
    # are not open). A prediction changes no state: a read.
    authentication_classes = [ApiKeyAuthentication, SessionReadAuthentication]
    access = READ
    parser_classes = []
    content_negotiation_class = JSONOnlyNegotiation

    @extend_schema(
        operation_id="predict",
        summary="Predict with the active (or a chosen) model version",
        # Named media type: with parser_classes empty, the schema would
        # otherwise infer that the view takes no body at all.
        request={"application/json": PredictRequestSerializer},
        responses={
            200: PredictResponseSerializer,
            **error_responses(400, 401, 404, 408, 409, 413, 422, 500, 503),
        },
    )
    def post(self, request):
        started = time.perf_counter()
        arrived = time.time()
        raw = request._request  # skip DRF's attribute proxy
        request_id = codecs.request_id_from(raw.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        payload = inference.prediction_serve(
            read_body=lambda: raw.body,
            request_id=request_id,
            started=started,
            arrived=arrived,
            subject_header=raw.META.get("HTTP_X_SUBJECT_KEY"),
        )
        response = HttpResponse(payload, content_type="application/json")
        response["X-Request-ID"] = request_id
        return response
