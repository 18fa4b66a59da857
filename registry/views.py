"""Thin HTTP edges of the registry: parse, delegate, answer."""

import os

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.response import Response
from rest_framework.views import APIView

from mlserving.conf import app_settings
from mlserving.dataplane import serving
from mlserving.errors import PayloadTooLarge
from mlserving.openapi import error_responses
from registry import selectors, services
from registry.entries import model_ref_split
from registry.serializers import (
    ActivationRequestSerializer,
    ActivationResponseSerializer,
    AliasChangeSerializer,
    AliasResponseSerializer,
    AliasSetRequestSerializer,
    ModelsResponseSerializer,
    ModelVersionSerializer,
    alias_body,
)

ALIAS_PATH = OpenApiParameter(
    "alias",
    str,
    OpenApiParameter.PATH,
    description="1-50 lower-case letters, digits, '_' or '-', from a letter.",
    pattern=r"^[a-z][a-z0-9_-]{0,49}$",
)
VERSION_PATH = OpenApiParameter(
    "version", str, OpenApiParameter.PATH, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
)
MODEL_PARAM = OpenApiParameter(
    "model",
    str,
    required=False,
    description="Registered model name (default: DEFAULT_MODEL_NAME).",
)
MODEL_REF_PARAM = OpenApiParameter(
    "model",
    str,
    required=False,
    description="Registered model name (default: DEFAULT_MODEL_NAME); "
    "`name@alias` also reports the version the alias points at "
    "(`resolved`; 404 `alias_not_found` when it has no such alias).",
)


class ModelsApi(APIView):
    @extend_schema(
        operation_id="models_list",
        summary="Every version of a model, the active one, what is loaded",
        parameters=[MODEL_REF_PARAM],
        responses={200: ModelsResponseSerializer, **error_responses(401, 404)},
    )
    def get(self, request):
        ref = request.query_params.get("model")
        model = selectors.model_get(name=ref)
        alias = model_ref_split(ref)[1]
        resolved = None
        if alias:
            target = selectors.model_version_get_by_alias(model=model, alias=alias)
            resolved = {"alias": alias, "version": target.version}
        active = selectors.model_version_get_active(model=model)
        loaded = [e for e in serving.runtimes.cache.loaded() if e.model == model.name]
        aliases = selectors.model_aliases(model=model)
        by_version: dict[str, list[str]] = {}
        for name, version in aliases.items():
            by_version.setdefault(version, []).append(name)
        context = {
            "loaded_ids": {e.id for e in loaded},
            "aliases_by_version": by_version,
        }
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
                "aliases": aliases,
                "resolved": resolved,
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
    # an empty body is {}; a JSON null is refused, as the schema says
    serializer = ActivationRequestSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data.get("note", "")


class ModelActivateApi(APIView):
    @extend_schema(
        operation_id="model_activate",
        summary="Make a version the active one (recorded in the history)",
        parameters=[MODEL_PARAM, VERSION_PATH],
        request=ActivationRequestSerializer,
        responses={
            200: ActivationResponseSerializer,
            **error_responses(400, 401, 403, 404, 409, 415, 422),
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
            **error_responses(400, 401, 403, 404, 409, 415, 422),
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


ALIAS_DESCRIPTION = (
    "404: unknown model, version or alias (`model_not_found`, "
    "`model_version_not_found`, `alias_not_found`); 409: the default alias "
    "cannot be removed (`alias_protected`) or the version is archived "
    "(`version_unavailable`); 422: an invalid alias name (`alias_invalid`: "
    "1-50 lower-case letters, digits, '_' or '-', starting with a letter) "
    "or an artifact that fails its check. Every move is in the history."
)


class ModelAliasApi(APIView):
    @extend_schema(
        operation_id="model_alias_set",
        summary="Point an alias (champion, challenger, ...) at a version",
        description="Creates the alias or moves it. Setting the default "
        "alias (ALIAS, `production`) is an activation. " + ALIAS_DESCRIPTION,
        parameters=[MODEL_PARAM, ALIAS_PATH],
        request=AliasSetRequestSerializer,
        responses={
            200: AliasResponseSerializer,
            **error_responses(400, 401, 403, 404, 409, 415, 422),
        },
    )
    def put(self, request, alias: str):
        serializer = AliasSetRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = selectors.model_get(name=request.query_params.get("model"))
        target = selectors.model_version_get(model=model, version=data["version"])
        change = services.model_alias_set(
            version=target,
            alias=alias,
            user=request.user,
            note=data.get("note", ""),
        )
        return Response(
            alias_body(change, model=model.name, alias=alias, version=target.version)
        )

    @extend_schema(
        operation_id="model_alias_remove",
        summary="Remove an alias (never the default one)",
        description=ALIAS_DESCRIPTION,
        parameters=[MODEL_PARAM, ALIAS_PATH],
        request=ActivationRequestSerializer,
        responses={
            200: AliasResponseSerializer,
            **error_responses(400, 401, 403, 404, 409, 415),
        },
    )
    def delete(self, request, alias: str):
        model = selectors.model_get(name=request.query_params.get("model"))
        change = services.model_alias_remove(
            model=model, alias=alias, user=request.user, note=_note(request)
        )
        return Response(alias_body(change, model=model.name, alias=alias, version=None))


UPLOAD_TYPES = ("application/octet-stream",)


class ModelVersionUploadApi(APIView):
    # The body is the file itself: no DRF parsing (nor a form a page on
    # another site could post).
    parser_classes = []

    @extend_schema(
        operation_id="model_version_upload",
        summary="Register an uploaded skops or ONNX file as a new version",
        description=(
            "The body is the file (Content-Type: application/octet-stream). "
            "It is recognised by its content and inspected without running "
            "it: a skops file whose types beyond skops' defaults are all in "
            "SKOPS_TRUSTED_TYPES, or an ONNX model. Pickle and joblib files "
            "run code when loaded and are refused (422 `artifact_refused`): "
            "register those from the server's disk with `manage.py "
            "register_model`. Over UPLOAD_MAX_BYTES: 413. A refused upload "
            "leaves no file and no version behind."
        ),
        parameters=[
            OpenApiParameter("model", str, required=True, description="Model name."),
            OpenApiParameter("version", str, required=True),
            OpenApiParameter(
                "filename", str, required=False, description="Stored file name."
            ),
            OpenApiParameter(
                "activate", bool, required=False, description="Activate it too."
            ),
        ],
        request={"application/octet-stream": {"type": "string", "format": "binary"}},
        responses={
            201: ModelVersionSerializer,
            **error_responses(400, 401, 403, 409, 413, 415, 422),
        },
    )
    def post(self, request):
        raw = request._request
        media = (raw.content_type or "").lower()
        if media not in UPLOAD_TYPES:
            raise UnsupportedMediaType(media or "(none)")
        limit = app_settings.UPLOAD_MAX_BYTES
        declared = int(raw.META.get("CONTENT_LENGTH") or 0)
        if declared > limit:
            raise PayloadTooLarge.body_over(limit)
        data = raw.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge.body_over(limit)
        params = request.query_params
        version = services.model_version_register(
            model_name=params.get("model") or "",
            version=params.get("version") or "",
            data=data,
            filename=params.get("filename"),
            origin=services.UPLOAD,
            user=request.user,
        )
        if params.get("activate") in ("1", "true", "yes"):
            services.model_version_activate(
                version=version, user=request.user, note="uploaded by API"
            )
        version = selectors.model_version_list(model=version.model).get(pk=version.pk)
        return Response(ModelVersionSerializer(version).data, status=201)
