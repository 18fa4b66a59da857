"""One error shape for every 4xx and 5xx response.

    {"error": {"code": "model_version_not_found",
               "message": "No version 'v9' of model 'default'.",
               "details": {...}, "request_id": "..."}}

Domain code raises `ApplicationError` subclasses (each with a stable code
and an HTTP status); DRF's exceptions and Django's own 4xx/5xx are mapped
to the same shape here, so a client never has to parse HTML.
"""

import logging
import math
import uuid
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.http import Http404, HttpResponse, HttpResponsePermanentRedirect
from django.urls import Resolver404, resolve
from django.utils.http import escape_leading_slashes
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework import status

logger = logging.getLogger("mlserving")


class ApplicationError(Exception):
    """Base of every error a client may see on purpose."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"

    def __init__(self, message: str, *, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(ApplicationError):
    status_code = 400
    code = "bad_request"


class MalformedJSON(ApplicationError):
    status_code = 400
    code = "malformed_json"


class ValidationFailed(ApplicationError):
    status_code = 422
    code = "validation_error"


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"


class Conflict(ApplicationError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "payload_too_large"

    @classmethod
    def body_over(cls, limit: int) -> "PayloadTooLarge":
        return cls(
            f"The request body is larger than the limit of {limit} bytes.",
            details={"limit_bytes": limit},
        )


class Overloaded(ApplicationError):
    """Past the admission limit: retry after `retry_after` seconds."""

    status_code = 503
    code = "overloaded"
    retry_after = 1


class RateLimited(ApplicationError):
    """Past THROTTLE_ANON / THROTTLE_KEY: retry after `retry_after` s."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int):
        super().__init__(
            f"Too many requests; retry after {retry_after} s.",
            details={"retry_after_seconds": retry_after},
        )
        self.retry_after = retry_after


class BodyTimeout(ApplicationError):
    status_code = 408
    code = "body_timeout"


class RequestTimeout(ApplicationError):
    status_code = 503
    code = "request_timeout"


def error_body(
    code: str,
    message: str,
    details: dict | None = None,
    request_id: str | None = None,
) -> dict:
    error = {"code": code, "message": message, "details": details or {}}
    if request_id:
        error["request_id"] = request_id
    return {"error": error}


def is_protocol_path(path: str) -> bool:
    """Whether `path` is the Open Inference Protocol's (/v2...), whose
    errors have the protocol's shape."""
    return path == "/v2" or path.startswith("/v2/")


def protocol_error_body(code: str, message: str, details: dict | None = None) -> dict:
    """The protocol's error shape: `error` is the message, as the protocol
    has it; `code` and `details` are ours, beside it."""
    return {"error": message, "code": code, "details": details or {}}


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: dict | None = None,
    request=None,
) -> HttpResponse:
    request_id = getattr(request, "request_id", None)
    response = HttpResponse(
        orjson.dumps(error_body(code, message, details, request_id)),
        status=status_code,
        content_type="application/json",
    )
    if request_id:
        response["X-Request-ID"] = request_id
    return response


# DRF exception class -> our stable code.
_DRF_CODES = {
    drf_exceptions.ParseError: ("malformed_json", 400),
    drf_exceptions.AuthenticationFailed: ("authentication_failed", 401),
    drf_exceptions.NotAuthenticated: ("not_authenticated", 401),
    drf_exceptions.PermissionDenied: ("permission_denied", 403),
    drf_exceptions.NotFound: ("not_found", 404),
    drf_exceptions.MethodNotAllowed: ("method_not_allowed", 405),
    drf_exceptions.NotAcceptable: ("not_acceptable", 406),
    drf_exceptions.UnsupportedMediaType: ("unsupported_media_type", 415),
    drf_exceptions.Throttled: ("rate_limited", 429),
    drf_exceptions.ValidationError: ("validation_error", 422),
}


def _drf_message(exc: drf_exceptions.APIException) -> tuple[str, dict]:
    """The message and details of a DRF error. Field errors are keyed by
    the field's path: a list item's error comes from DRF keyed by its
    integer index ({"models": {0: [...]}}), which is no JSON key, so it
    becomes "models[0]"; a nested field's becomes "parent.child"."""

    def flatten(value, path: str, into: dict) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, int):
                    name = f"{path}[{key}]"
                else:
                    name = f"{path}.{key}" if path else str(key)
                flatten(item, name, into)
        elif isinstance(value, list) and any(
            isinstance(item, (dict, list)) for item in value
        ):
            # a nested serializer's many=True errors: one entry per item
            for index, item in enumerate(value):
                flatten(item, f"{path}[{index}]", into)
        elif value:
            into[path or "non_field_errors"] = value

    detail = exc.detail
    if isinstance(detail, list) and all(isinstance(item, str) for item in detail):
        return "The request is not valid.", {"errors": detail}
    if isinstance(detail, (dict, list)):
        fields: dict = {}
        flatten(detail, "", fields)
        return "The request is not valid.", {"fields": fields}
    return str(detail), {}


@dataclass(frozen=True, slots=True)
class ErrorParts:
    status_code: int
    code: str
    message: str
    details: dict
    headers: dict


def error_parts(exc: Exception) -> ErrorParts | None:
    """Status, code, message, details and headers of an error a client may
    see (ours or DRF's); None for anything else (a 500)."""
    if isinstance(exc, ApplicationError):
        headers = {}
        if getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(exc.retry_after)
        return ErrorParts(exc.status_code, exc.code, exc.message, exc.details, headers)
    if isinstance(exc, RequestDataTooBig):
        return error_parts(
            PayloadTooLarge.body_over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        )
    if isinstance(exc, (Http404, drf_exceptions.NotFound)):
        return ErrorParts(404, "not_found", "Not found.", {}, {})
    if isinstance(exc, PermissionDenied):
        return ErrorParts(403, "permission_denied", "Permission denied.", {}, {})
    if isinstance(exc, drf_exceptions.APIException):
        code, status_code = "error", exc.status_code
        for cls, (mapped, mapped_status) in _DRF_CODES.items():
            if isinstance(exc, cls):
                code, status_code = mapped, mapped_status
                break
        if isinstance(
            exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)
        ):
            # DRF makes these a 403 where no authenticator names a scheme
            status_code = exc.status_code
        message, details = _drf_message(exc)
        headers = {}
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(math.ceil(exc.wait))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        return ErrorParts(status_code, code, message, details, headers)
    if isinstance(exc, SuspiciousOperation):
        return ErrorParts(400, "bad_request", str(exc) or "Bad request.", {}, {})
    return None


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error becomes the one JSON shape."""
    request = context.get("request")
    parts = error_parts(exc)
    if parts is None:
        request_id = getattr(request, "request_id", None) or uuid.uuid4().hex
        logger.exception("unhandled error, request_id=%s", request_id)
        return error_response(
            500,
            "internal_error",
            "Internal server error; the request id is in the server log.",
            {"request_id": request_id},
            request,
        )
    response = error_response(
        parts.status_code, parts.code, parts.message, parts.details, request
    )
    for name, value in parts.headers.items():
        response[name] = value
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        view = context.get("view")
        if view is not None:
            response["Allow"] = ", ".join(view.allowed_methods)
    return response


def _too_big(request) -> HttpResponse:
    exc = PayloadTooLarge.body_over(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, request)


# --- Django's handler400/403/404/500 (outside DRF views) ------------------


def _wants_html(request) -> bool:
    accept = request.META.get("HTTP_ACCEPT", "")
    return "text/html" in accept


def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return _too_big(request)
    if _wants_html(request):
        return defaults.bad_request(request, exception)
    return error_response(400, "bad_request", "Bad request.", None, request)


def permission_denied(request, exception=None):
    if _wants_html(request):
        return defaults.permission_denied(request, exception)
    return error_response(403, "permission_denied", "Permission denied.", None, request)


def page_not_found(request, exception=None):
    return _not_found(request, exception=exception)


def _not_found(request, details: dict | None = None, exception=None) -> HttpResponse:
    if is_protocol_path(request.path):
        return HttpResponse(
            orjson.dumps(
                protocol_error_body(
                    "not_found",
                    f"No endpoint at {request.path}.",
                    {"path": request.path, **(details or {})},
                )
            ),
            status=404,
            content_type="application/json",
        )
    if _wants_html(request):
        return defaults.page_not_found(request, exception or Http404())
    return error_response(
        404,
        "not_found",
        f"No endpoint at {request.path}.",
        {"path": request.path, **(details or {})},
        request,
    )


@csrf_exempt  # else an unknown POST is CSRF's HTML 403, not a 404
def route_not_found(request):
    """The view of the last URL pattern, which takes every path no other
    one does. With DEBUG on, Django answers a path that matches no pattern
    with its HTML debug page and never calls handler404; a path that
    matches this one is answered here, in the one error shape, whatever
    DEBUG says.

    Since every path now matches, CommonMiddleware's APPEND_SLASH redirect
    never fires; it is made here instead, for GET and HEAD only. A POST to
    a path that exists with a slash is a 404 that names that path (Django
    would redirect it to a GET and lose its body, or with DEBUG on raise
    a RuntimeError: an HTML 500)."""
    slashed = _slashed_route(request)
    if slashed is not None:
        if request.method in ("GET", "HEAD"):
            return HttpResponsePermanentRedirect(
                escape_leading_slashes(request.get_full_path(force_append_slash=True))
            )
        return _not_found(request, {"did_you_mean": slashed})
    return _not_found(request)


def _slashed_route(request) -> str | None:
    """The path with a slash appended, when APPEND_SLASH is on and that is
    a route (as CommonMiddleware.should_redirect_with_slash decides)."""
    path = request.path_info
    if not settings.APPEND_SLASH or path.endswith("/"):
        return None
    try:
        match = resolve(f"{path}/", getattr(request, "urlconf", None))
    except Resolver404:
        return None
    if match.func is route_not_found:
        return None
    if not getattr(match.func, "should_append_slash", True):
        return None
    return f"{request.path}/"


def server_error(request):
    if _wants_html(request):
        return defaults.server_error(request)
    return error_response(
        500, "internal_error", "Internal server error.", None, request
    )
