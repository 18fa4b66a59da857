"""The request and response of the routes the HTTP front answers itself
(mlserving/front.py), off Django: plain values, so that their handlers
stay as thin as views."""

from dataclasses import dataclass, field

import orjson

from mlserving.errors import ErrorParts, error_body

JSON = b"application/json"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; repeated headers joined
    body: bytes
    request_id: str
    started: float  # time.perf_counter() at arrival
    arrived: float  # time.time() at arrival
    # What a pattern route's named groups matched in the path.
    params: dict = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = JSON


def json_response(status: int, payload, headers: dict | None = None) -> Response:
    return Response(status, orjson.dumps(payload), encoded_headers(headers))


def error_response(parts: ErrorParts, request_id: str | None) -> Response:
    """The one error shape (mlserving/errors.py), with its headers."""
    body = error_body(parts.code, parts.message, parts.details, request_id)
    return json_response(parts.status_code, body, parts.headers)


def encoded_headers(headers: dict | None) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
