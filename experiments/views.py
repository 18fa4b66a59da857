"""The seed's /ab-test/status and /ab-test/configure."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments import selectors, services
from experiments.serializers import (
    AbTestConfigureSerializer,
    AbTestStatusSerializer,
)
from mlserving.openapi import error_responses
from registry import selectors as registry_selectors

MODEL_PARAM = OpenApiParameter(
    "model",
    str,
    required=False,
    description="Registered model name (default: DEFAULT_MODEL_NAME).",
)


class AbTestStatusApi(APIView):
    @extend_schema(
        operation_id="ab_test_status",
        summary="The model's experiment: split, per-arm traffic, metrics, statistics",
        parameters=[MODEL_PARAM],
        responses={200: AbTestStatusSerializer, **error_responses(401, 404)},
    )
    def get(self, request):
        model = registry_selectors.model_get(name=request.query_params.get("model"))
        return Response(
            selectors.experiment_status(model_name=model.name, history=True)
        )


class AbTestConfigureApi(APIView):
    @extend_schema(
        operation_id="ab_test_configure",
        summary="Create or update the model's experiment, and run or pause it",
        description=(
            "Changes are recorded in the experiment's history. Versions must "
            "belong to the model and pass their integrity check (422); a "
            "model runs at most one experiment (409)."
        ),
        parameters=[MODEL_PARAM],
        request=AbTestConfigureSerializer,
        responses={
            200: AbTestStatusSerializer,
            **error_responses(400, 401, 403, 404, 409, 415, 422),
        },
    )
    def post(self, request):
        serializer = AbTestConfigureSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = registry_selectors.model_get(name=request.query_params.get("model"))
        versions = None
        if data.get("models"):
            versions = [
                registry_selectors.model_version_get(model=model, version=label)
                for label in data["models"]
            ]
        services.ab_test_configure(
            model=model,
            enabled=data.get("enabled"),
            split_ratio=data.get("split_ratio"),
            versions=versions,
            strategy=data.get("strategy"),
            user=request.user,
            reason="POST /ab-test/configure",
        )
        return Response(
            selectors.experiment_status(model_name=model.name, history=True)
        )
