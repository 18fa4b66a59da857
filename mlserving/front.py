"""The HTTP front: the ASGI application each web worker serves (uvicorn,
mlserving/serve.py), in front of Django.

It answers the hot routes itself, on the event loop: POST /predict (the
data plane) and POST /feedback (whose wait for a prediction still being
written sleeps on the loop instead of holding a thread). Everything else
goes to Django's ASGI handler, and websockets to Channels. Around all of
it, what keeps a process answering when clients misbehave:

- admission: at most MAX_CONCURRENT_REQUESTS HTTP requests in this process
  at once; past that, an immediate 503 `overloaded` with Retry-After,
  never a queue that hangs (/health is exempt, so probes still answer);
- bodies: a body that has not arrived REQUEST_BODY_TIMEOUT seconds after
  the request began is a 408 (for Django's routes: after that long
  without a byte), and no more than MAX_REQUEST_BYTES are read; a slow
  body holds one coroutine, never a thread. Chunked bodies arrive like any
  other;
- idle and slow-header connections are closed by the server's protocol
  (mlserving/uvicorn_protocol.py);
- lifespan: warm-up before the process takes requests; on shutdown the
  event buffer is written out; a worker whose parent (supervisord) died
  drains and exits instead of serving on as an orphan.

Why uvicorn, and why these routes run off Django: bench/README.md, "HTTP
front".
"""

import asyncio
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable

from django.conf import settings
from rest_framework.exceptions import UnsupportedMediaType

from access.services import presented_key, principal_cached
from mlserving import throttling
from mlserving.conf import app_settings
from mlserving.dataplane.codecs import request_id_from
from mlserving.errors import (
    BodyTimeout,
    ErrorParts,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    error_parts,
    is_protocol_path,
    protocol_error_body,
)
from mlserving.http import Request, Response, error_response, json_response

logger = logging.getLogger("mlserving.front")

Route = Callable[[Request], Awaitable[Response]]
Hook = Callable[[], Awaitable[None]]
# Told of a request to its path that the front refused itself (overload,
# a body that never came): (request_id, arrived, started, error).
Refused = Callable[[str, float, float, ErrorParts], None]


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


def _headers(scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def overloaded_error(limit: int) -> Overloaded:
    return Overloaded(
        f"This server process is already handling {limit} requests "
        "(MAX_CONCURRENT_REQUESTS); retry after the Retry-After seconds.",
        details={"limit": limit, "retry_after_seconds": Overloaded.retry_after},
    )


class Front:
    def __init__(
        self,
        *,
        django,
        websocket,
        routes: dict[tuple[str, str], Route],
        patterns: Iterable[tuple[str, re.Pattern, Route]] = (),
        json_only: Iterable[str] = (),
        refused: dict[str, Refused] | None = None,
        exempt: Iterable[str] = ("/health",),
        on_startup: Iterable[Hook] = (),
        on_shutdown: Iterable[Hook] = (),
    ):
        self.django = django
        self.websocket = websocket
        self.routes = routes
        # Routes whose path has parameters (/v2/models/{name}/infer):
        # (method, compiled pattern, route), tried after the exact ones.
        self.patterns = list(patterns)
        # Routes of `routes` that take only JSON bodies (415 otherwise).
        self.json_only = frozenset(json_only)
        self.refused = refused or {}
        self.exempt = frozenset(exempt)
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)
        self.inflight = 0  # HTTP requests in this process (one event loop)

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    # --- HTTP -----------------------------------------------------------

    async def http(self, scope, receive, send) -> None:
        counted = scope["path"] not in self.exempt
        if counted:
            limit = app_settings.MAX_CONCURRENT_REQUESTS
            if self.inflight >= limit:
                started, arrived = time.perf_counter(), time.time()
                request_id = request_id_from(_header(scope, b"x-request-id"))
                parts = await _send_error(
                    send, overloaded_error(limit), request_id, scope
                )
                self._refused(scope, request_id, arrived, started, parts)
                return
            self.inflight += 1
        try:
            route, params = self._match(scope["method"], scope["path"])
            caller = self._caller(scope) if route is not None else None
            if caller is None:
                await self._django(scope, receive, send)
            elif (wait := throttling.retry_after(*caller)) is not None:
                started, arrived = time.perf_counter(), time.time()
                request_id = request_id_from(_header(scope, b"x-request-id"))
                parts = await _send_error(send, RateLimited(wait), request_id, scope)
                self._refused(scope, request_id, arrived, started, parts)
            else:
                await self._route(route, scope, receive, send, params)
        finally:
            if counted:
                self.inflight -= 1

    def _match(self, method: str, path: str) -> tuple[Route | None, dict]:
        route = self.routes.get((method, path))
        if route is not None:
            return route, {}
        for wanted, pattern, candidate in self.patterns:
            if wanted == method:
                found = pattern.match(path)
                if found is not None:
                    return candidate, found.groupdict()
        return None, {}

    def _caller(self, scope) -> tuple[str, str] | None:
        """(throttling identity, rate) when the front answers a route
        itself: a key this process has verified lately, or no key while
        reads are open. Anything else (a key not verified here yet, a
        wrong one, a session, closed reads) is Django's to judge, so
        authentication has one implementation; Django's answer fills this
        process's key cache for the next request."""
        if settings.SECURE_SSL_REDIRECT and not is_secure(scope):
            return None  # Django's SecurityMiddleware redirects it
        key = presented_key(
            _header(scope, b"authorization"), _header(scope, b"x-api-key")
        )
        if key is not None:
            known, principal = principal_cached(key)
            if known and principal is not None:
                return principal.throttle_identity, app_settings.THROTTLE_KEY
            return None
        if app_settings.READS_OPEN:
            client = scope.get("client")
            address = client[0] if client else "unknown"
            return f"addr:{address}", app_settings.THROTTLE_ANON
        return None

    async def _route(self, route: Route, scope, receive, send, params=None) -> None:
        started, arrived = time.perf_counter(), time.time()
        headers = _headers(scope)
        request_id = request_id_from(headers.get("x-request-id"))
        handled = False
        try:
            if scope["path"] in self.json_only:
                _require_json(headers.get("content-type"))
            body = await _read_body(receive, started=started)
            handled = True
            response = await route(
                Request(
                    scope["method"],
                    scope["path"],
                    headers,
                    body,
                    request_id,
                    started,
                    arrived,
                    params or {},
                )
            )
        except ClientGone:
            return
        except Exception as exc:
            parts = await _send_error(send, exc, request_id, scope)
            if not handled:
                self._refused(scope, request_id, arrived, started, parts)
            return
        await _send(send, response, request_id, is_secure(scope))

    def _refused(self, scope, request_id, arrived, started, parts) -> None:
        told = self.refused.get(scope["path"])
        if told is not None and scope["method"] == "POST":
            told(request_id, arrived, started, parts)

    async def _django(self, scope, receive, send) -> None:
        """Django's handler, with a deadline on each piece of the body (it
        reads the whole body before any view runs); past it Django sees a
        disconnect and the client a 408. A chunked body is read here first
        and handed over with its Content-Length: DRF takes a request
        without one for a request without a body."""
        if _is_chunked(scope):
            started = time.perf_counter()
            try:
                body = await _read_body(receive, started=started)
                if len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                    raise PayloadTooLarge.body_over(
                        settings.DATA_UPLOAD_MAX_MEMORY_SIZE
                    )
            except ClientGone:
                return
            except Exception as exc:
                request_id = request_id_from(_header(scope, b"x-request-id"))
                await _send_error(send, exc, request_id, scope)
                return
            scope, receive = _with_body(scope, receive, body)
        state = {"body_done": False, "timed_out": False, "started": False}
        timeout = app_settings.REQUEST_BODY_TIMEOUT

        async def timed_receive():
            if state["body_done"]:
                return await receive()
            try:
                async with asyncio.timeout(timeout):
                    message = await receive()
            except TimeoutError:
                state["timed_out"] = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body"):
                state["body_done"] = True
            return message

        async def tracked_send(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.django(scope, timed_receive, tracked_send)
        if state["timed_out"] and not state["started"]:
            request_id = request_id_from(_header(scope, b"x-request-id"))
            await _send_error(send, _body_timeout(timeout), request_id, scope)

    # --- lifespan -------------------------------------------------------

    async def lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    logger.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        logger.exception("shutdown step failed")
                await send({"type": "lifespan.shutdown.complete"})
                return


def _is_chunked(scope) -> bool:
    encoding = _header(scope, b"transfer-encoding")
    return encoding is not None and "chunked" in encoding.lower()


def _with_body(scope, receive, body: bytes):
    """The scope with a Content-Length for `body` (and no Transfer-Encoding),
    and a receive that gives `body` first, then what the client sends."""
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name.lower() not in (b"transfer-encoding", b"content-length")
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    given = False

    async def replay():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return {**scope, "headers": headers}, replay


def _require_json(content_type: str | None) -> None:
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(media)


def _body_timeout(seconds: float) -> BodyTimeout:
    return BodyTimeout(
        f"The request body did not arrive within {seconds:g} s (REQUEST_BODY_TIMEOUT).",
        details={"timeout_seconds": seconds},
    )


async def _read_body(receive, *, started: float) -> bytes:
    """The whole body, or its first MAX_REQUEST_BYTES + 1 bytes (the
    handler then refuses it as too large, as it refuses a declared one).
    BodyTimeout past REQUEST_BODY_TIMEOUT from the request's start;
    ClientGone if the client left."""
    timeout = app_settings.REQUEST_BODY_TIMEOUT
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout - (time.perf_counter() - started))
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
                if size > limit or not message.get("more_body"):
                    break
    except TimeoutError:
        raise _body_timeout(timeout) from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_error(send, exc: Exception, request_id: str, scope) -> ErrorParts:
    """Answer `exc` in the one error shape, or on /v2 paths the Open
    Inference Protocol's (an unexpected error is a logged 500); what was
    answered."""
    parts = error_parts(exc)
    if parts is None:
        logger.exception("unhandled error, request_id=%s", request_id)
        parts = ErrorParts(
            500,
            "internal_error",
            "Internal server error; the request id is in the server log.",
            {"request_id": request_id},
            {},
        )
    if is_protocol_path(scope["path"]):
        body = protocol_error_body(parts.code, parts.message, parts.details)
        response = json_response(parts.status_code, body, parts.headers)
    else:
        response = error_response(parts, request_id)
    await _send(send, response, request_id, is_secure(scope))
    return parts


def security_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    """What Django's SecurityMiddleware adds to its answers, for the
    front's own: nosniff, Referrer-Policy, and HSTS on HTTPS."""
    headers = []
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        if not isinstance(policy, str):
            policy = ",".join(policy)
        headers.append((b"referrer-policy", policy.encode()))
    if secure and settings.SECURE_HSTS_SECONDS:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append((b"strict-transport-security", value.encode()))
    return headers


def is_secure(scope) -> bool:
    """HTTPS, as Django would judge it: the scheme (uvicorn sets it from
    X-Forwarded-Proto sent by a trusted proxy), or SECURE_PROXY_SSL_HEADER."""
    if scope.get("scheme") == "https":
        return True
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if not proxy:
        return False
    name, value = proxy
    wanted = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
    return _header(scope, wanted) == value


async def _send(send, response: Response, request_id: str, secure: bool) -> None:
    headers = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode()),
        (b"x-request-id", request_id.encode()),
        *response.headers,
        *security_headers(secure),
    ]
    await send(
        {"type": "http.response.start", "status": response.status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": response.body})


def exit_with_parent(interval: float = 1.0) -> None:
    """When the process that started this worker dies (supervisord, or a
    server master), stop gracefully (SIGTERM to self) instead of living on
    as an orphan that keeps serving beside the restarted one."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        logger.warning("the parent process %d died; this worker stops", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
