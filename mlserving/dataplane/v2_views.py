"""The Open Inference Protocol V2 as Django (DRF) views: what the URL
routes serve (the test client, requests the front hands over, the OpenAPI
schema). The front answers POST .../infer itself on the event loop
(endpoints.v2_infer); both are thin and call mlserving/dataplane/v2.py.
Errors have the protocol's shape, {"error": "<message>"}, with our `code`
and `details` beside it."""

import time

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from access.auth import READ, ApiKeyAuthentication, SessionReadAuthentication
from mlserving.dataplane import codecs, v2, v2codec
from mlserving.json import JSONOnlyNegotiation


class V2ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What went wrong.")
    code = serializers.CharField(help_text="A stable machine code.")
    details = serializers.DictField()


class V2ServerSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField()
    extensions = serializers.ListField(child=serializers.CharField())


class V2ReadySerializer(serializers.Serializer):
    live = serializers.BooleanField(required=False)
    ready = serializers.BooleanField(required=False)
    waiting = serializers.DictField(
        required=False, help_text="Why not ready: model -> reason."
    )


class V2TensorMetadataSerializer(serializers.Serializer):
    name = serializers.CharField()
    datatype = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField())


class V2ModelMetadataSerializer(serializers.Serializer):
    name = serializers.CharField()
    versions = serializers.ListField(child=serializers.CharField())
    platform = serializers.CharField()
    inputs = V2TensorMetadataSerializer(many=True)
    outputs = V2TensorMetadataSerializer(many=True)
    parameters = serializers.DictField(
        help_text="signature: feature names, count, dtype, classes, "
        "scikit-learn version, format, runtime, sha256, aliases."
    )


class V2TensorSerializer(serializers.Serializer):
    name = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField())
    datatype = serializers.ChoiceField(choices=["FP32", "FP64", "INT32", "INT64"])
    data = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        help_text="Row-major values (flat or nested); absent when the "
        "binary tensor extension carries them.",
    )
    parameters = serializers.DictField(required=False)


class V2RequestedOutputSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=["label", "probabilities"])
    parameters = serializers.DictField(required=False)


class V2InferRequestSerializer(serializers.Serializer):
    id = serializers.CharField(required=False)
    inputs = V2TensorSerializer(many=True, help_text="One tensor [batch, n_features].")
    outputs = V2RequestedOutputSerializer(many=True, required=False)
    parameters = serializers.DictField(
        required=False,
        help_text="use_ab_testing (bool), user_id (experiment subject), "
        "binary_data_output (bool).",
    )


class V2OutputTensorSerializer(serializers.Serializer):
    name = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField())
    datatype = serializers.CharField()
    data = serializers.ListField(child=serializers.JSONField(), required=False)
    parameters = serializers.DictField(required=False)


class V2InferResponseSerializer(serializers.Serializer):
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    id = serializers.CharField(required=False)
    parameters = serializers.DictField(
        help_text="model_version, request_id, routing (the reason) and "
        "routing_* (experiment, arm, alias...), cached, processing_time_ms."
    )
    outputs = V2OutputTensorSerializer(many=True)


def _errors(*statuses: int) -> dict:
    return {
        status: OpenApiResponse(V2ErrorSerializer, description="Protocol error")
        for status in statuses
    }


NAME = OpenApiParameter(
    "name",
    str,
    OpenApiParameter.PATH,
    description="Model name, or model@alias.",
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}(@[a-z][a-z0-9_-]{0,49})?$",
)
VERSION = OpenApiParameter(
    "version",
    str,
    OpenApiParameter.PATH,
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
)


class V2Errors:
    """Errors in the protocol's shape instead of ours."""

    def handle_exception(self, exc):
        answer = v2.error_answer(exc)
        if answer is None:
            return super().handle_exception(exc)
        status, body, headers = answer
        response = HttpResponse(body, status=status, content_type="application/json")
        for name, value in headers.items():
            response[name] = value
        return response


class V2ServerApi(V2Errors, APIView):
    @extend_schema(
        operation_id="v2_server_metadata",
        summary="Open Inference Protocol: server metadata",
        tags=["v2"],
        responses={200: V2ServerSerializer, **_errors(401)},
    )
    def get(self, request):
        return Response(v2.server_metadata())


class V2LiveApi(V2Errors, APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # a probe

    @extend_schema(
        operation_id="v2_health_live",
        summary="Open Inference Protocol: the process answers",
        tags=["v2"],
        responses={200: V2ReadySerializer},
    )
    def get(self, request):
        return Response({"live": True})


class V2ReadyApi(V2Errors, APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []  # a probe

    @extend_schema(
        operation_id="v2_health_ready",
        summary="Open Inference Protocol: database reachable and every "
        "active version loaded and verified in this process",
        tags=["v2"],
        responses={200: V2ReadySerializer, 503: V2ReadySerializer},
    )
    def get(self, request):
        ready, waiting = v2.server_ready()
        body = {"ready": ready}
        if waiting:
            body["waiting"] = waiting
        return Response(body, status=200 if ready else 503)


class V2ModelApi(V2Errors, APIView):
    @extend_schema(
        summary="Open Inference Protocol: model metadata and signature",
        tags=["v2"],
        parameters=[NAME, VERSION],
        responses={200: V2ModelMetadataSerializer, **_errors(401, 404, 409)},
    )
    def get(self, request, name: str, version: str | None = None):
        return Response(v2.model_metadata(name, version))


class V2ModelReadyApi(V2Errors, APIView):
    @extend_schema(
        summary="Open Inference Protocol: the model (version) can answer",
        tags=["v2"],
        parameters=[NAME, VERSION],
        responses={
            200: V2ReadySerializer,
            503: V2ReadySerializer,
            **_errors(401, 404, 409),
        },
    )
    def get(self, request, name: str, version: str | None = None):
        ready = v2.model_ready(name, version)
        return Response({"name": name, "ready": ready}, status=200 if ready else 503)


class V2InferApi(V2Errors, APIView):
    # As PredictApi: no DRF parsing; the body goes to the V2 codec.
    authentication_classes = [ApiKeyAuthentication, SessionReadAuthentication]
    access = READ
    parser_classes = []
    content_negotiation_class = JSONOnlyNegotiation

    @extend_schema(
        summary="Open Inference Protocol: inference (JSON or binary tensors)",
        description=(
            "Without a version, the model's running experiment and alias "
            "apply exactly as on /predict; the answer's parameters say "
            "which version answered and why. The binary tensor data "
            "extension (Inference-Header-Content-Length) is supported."
        ),
        tags=["v2"],
        parameters=[NAME, VERSION],
        # Named media type: with parser_classes empty, the schema would
        # otherwise infer that the view takes no body at all. (Binary
        # tensor bodies are described in the text above.)
        request={"application/json": V2InferRequestSerializer},
        responses={
            200: V2InferResponseSerializer,
            **_errors(400, 401, 404, 408, 409, 413, 415, 422, 503),
        },
    )
    def post(self, request, name: str, version: str | None = None):
        started, arrived = time.perf_counter(), time.time()
        raw = request._request
        request_id = codecs.request_id_from(raw.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id
        answer = v2.infer(
            name=name,
            version=version,
            body=raw.body,
            header_length=raw.headers.get(v2codec.HEADER_LENGTH),
            request_id=request_id,
            started=started,
            arrived=arrived,
        )
        headers = dict(answer.headers)
        content_type = headers.pop("content-type", "application/json")
        response = HttpResponse(answer.body, content_type=content_type)
        for header, value in headers.items():
            response[header] = value
        response["X-Request-ID"] = request_id
        return response
