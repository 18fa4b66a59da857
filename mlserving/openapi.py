"""OpenAPI helpers: the one error shape, documented on every endpoint."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    details = serializers.DictField(help_text="Structured context.")
    request_id = serializers.CharField(required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


_DESCRIPTIONS = {
    400: "Malformed JSON (`malformed_json`), an empty body or a body that "
    "is not an object (`bad_request`).",
    401: "Credentials needed (READS_OPEN or WRITES_OPEN is off) and none "
    "were given (`not_authenticated`), or the key is wrong, revoked or "
    "expired (`authentication_failed`).",
    403: "Not allowed (`permission_denied`): a predict-scoped key on a "
    "write, a session that is not staff, or a write without its CSRF token.",
    404: "Unknown model or version (`model_not_found`, `model_version_not_found`).",
    405: "Wrong HTTP method (`method_not_allowed`).",
    409: "State conflict (`no_active_version`, `no_previous_version`, "
    "`version_unavailable`).",
    413: "Body larger than MAX_REQUEST_BYTES (`payload_too_large`) or more "
    "rows than MAX_BATCH_ROWS (`too_many_rows`).",
    422: "Invalid input (`validation_error`, `invalid_features`, "
    "`feature_count_mismatch`, `feature_names_mismatch`) or an artifact "
    "that fails its integrity or load check (`artifact_integrity_error`, "
    "`artifact_missing`, `artifact_load_failed`) or is refused "
    "(`artifact_refused`, `artifact_untrusted_types`).",
    408: "The request body did not arrive within REQUEST_BODY_TIMEOUT "
    "(`body_timeout`).",
    415: "A body of a media type the endpoint does not take "
    "(`unsupported_media_type`).",
    429: "Past THROTTLE_ANON or THROTTLE_KEY (`rate_limited`); the "
    "Retry-After header says when to try again.",
    500: "Unexpected server error (`internal_error`); logged with the request id.",
    503: "The process already runs MAX_CONCURRENT_REQUESTS requests "
    "(`overloaded`, with a Retry-After header), or a batch ran past "
    "REQUEST_TIMEOUT (`request_timeout`).",
}

_EXAMPLE = OpenApiExample(
    "error",
    value={
        "error": {
            "code": "feature_count_mismatch",
            "message": "default:v1.0 expects 10 features per row; got 3.",
            "details": {"expected": 10, "got": 3, "model_version": "v1.0"},
            "request_id": "5f0c3d0e9b8a4c1f8e2d7a6b5c4d3e2f",
        }
    },
    response_only=True,
)


def error_responses(*statuses: int) -> dict:
    """{status: OpenApiResponse} for extend_schema(responses=...)."""
    return {
        status: OpenApiResponse(
            response=ErrorSerializer,
            description=_DESCRIPTIONS[status],
            examples=[_EXAMPLE] if status == 422 else [],
        )
        for status in statuses
    }


# DRF's CharField refuses NUL characters (ProhibitNullCharactersValidator),
# which spectacular does not show: say so in the schema, so what it allows
# is what is accepted.
NO_NUL = "^[^\\u0000]*$"


def request_schema_precise(result, generator, request, public):
    """drf-spectacular postprocessing hook, so the schema says what the
    API accepts: a request body that is a file (/models/upload) or a V2
    inference request is required (spectacular marks only some bodies
    required), and the free-text strings of request components carry the
    no-NUL pattern DRF enforces."""
    for path, methods in result.get("paths", {}).items():
        for operation in methods.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if body and (
                "application/octet-stream" in body.get("content", {})
                or path.endswith("/infer")
            ):
                body["required"] = True
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request"):
            _strings_without_nul(component)
    _guarded_answers(result)
    return result


def _guarded_answers(result) -> None:
    """Every operation behind credentials and throttling (the ones that
    document a 401; the health probes are neither) may also answer 403 and
    429, in its path's error shape."""
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            responses = (
                operation.get("responses") if isinstance(operation, dict) else None
            )
            if not responses or "401" not in responses:
                continue
            shape = responses["401"]["content"]
            for status in (403, 429):
                responses.setdefault(
                    str(status),
                    {"content": shape, "description": _DESCRIPTIONS[status]},
                )
            responses["429"].setdefault(
                "headers",
                {
                    "Retry-After": {
                        "schema": {"type": "integer"},
                        "description": "Seconds until the client may retry.",
                    }
                },
            )


def _strings_without_nul(schema) -> None:
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not (
        {"pattern", "enum", "format"} & set(schema)
    ):
        schema["pattern"] = NO_NUL
    for child in schema.get("properties", {}).values():
        _strings_without_nul(child)
    _strings_without_nul(schema.get("items"))
    for key in ("oneOf", "anyOf", "allOf"):
        for child in schema.get(key, []):
            _strings_without_nul(child)
