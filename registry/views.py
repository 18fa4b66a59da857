"""Thin HTTP edges of the registry: parse, delegate, answer."""

import os

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from mlserving.dataplane import serving
from mlserving.openapi import error_responses
from registry import selectors, services
from registry.serializers import (
    ActivationRequestSerializer,
    ActivationResponseSerializer,
    AliasChangeSerializer,
    ModelsResponseSerializer,
    ModelVersionSerializer,
)

MODEL_PARAM = OpenApiParameter(
    "model",
    str,
    required=False,
    description="Registered model name (default: DEFAULT_MODEL_NAME).",
)


class ModelsApi(APIView):
    @extend_schema(
        operation_id="models_list",
        summary="Every version of a model, the active one, what is loaded",
        parameters=[MODEL_PARAM],
        responses={200: ModelsResponseSerializer, **error_responses(401, 404)},
    )
    def get(self, request):
        model = selectors.model_get(name=request.query_params.get("model"))
        active = selectors.model_version_get_active(model=model)
        loaded = [e for e in serving.runtimes.cache.loaded() if e.model == model.name]
        context = {"loaded_ids": {e.id for e in loaded}}
        versions = selectors.model_version_list(model=model)
        return Response(
            {
                "model": model.name,
                "registered_models": selectors.model_names(),
                "alias": selectors.alias_name(),
                "active_version": active.version if active else None,
                "loaded_versions": [e.version for e in loaded],
                "pid": os.getpid(),
                "models": ModelVersionSerializer(
                    versions, many=True, context=context
                ).data,
                "history": AliasChangeSerializer(
                    selectors.alias_history_list(model=model), many=True
                ).data,
            }
        )


def _activation_body(change, *, model, status: str, current) -> dict:
    return {
        "status": status if change else "unchanged",
        "model": model.name,
        "active_version": current.version,
        "previous_version": change.from_label or None if change else None,
        "change": AliasChangeSerializer(change).data if change else None,
    }


def _note(request) -> str:
    serializer = ActivationRequestSerializer(data=request.data or {})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data.get("note", "")


class ModelActivateApi(APIView):
    @extend_schema(
        operation_id="model_activate",
        summary="Make a version the active one (recorded in the history)",
        parameters=[MODEL_PARAM],
        request=ActivationRequestSerializer,
        responses={
            200: ActivationResponseSerializer,
            **error_responses(400, 401, 403, 404, 409, 422),
        },
    )
    def post(self, request, version: str):
        model = selectors.model_get(name=request.query_params.get("model"))
        target = selectors.model_version_get(model=model, version=version)
        change = services.model_version_activate(
            version=target, user=request.user, note=_note(request)
        )
        return Response(
            _activation_body(change, model=model, status="activated", current=target)
        )


class ModelRollbackApi(APIView):
    @extend_schema(
        operation_id="model_rollback",
        summary="Return to the version active before the last activation",
        parameters=[MODEL_PARAM],
        request=ActivationRequestSerializer,
        responses={
            200: ActivationResponseSerializer,
            **error_responses(400, 401, 403, 404, 409),
        },
    )
    def post(self, request):
        model = selectors.model_get(name=request.query_params.get("model"))
        change = services.model_rollback(
            model=model, user=request.user, note=_note(request)
        )
        return Response(
            _activation_body(
                change,
                model=model,
                status="rolled_back",
                current=change.to_version,
            )
        )
