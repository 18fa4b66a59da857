"""Authentication, permission and throttling of the REST API (DRF), and
their OpenAPI description.

Credentials: `Authorization: Bearer <key>` or `X-API-Key: <key>` (keys
from access/services.py), or a Django session (staff). What each request
needs is access/services.py's to say: reads follow READS_OPEN, writes
WRITES_OPEN; a predict-scoped key gets 403 on a write.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from access.services import Principal, presented_key, principal_for
from mlserving import throttling as shared_throttling
from mlserving.conf import app_settings

# A view whose POST changes no state (/predict, /feedback, /v2 infer)
# says `access = READ`.
READ = "read"
WRITE = "write"


class ApiClient:
    """The user of a request that presented a valid API key."""

    is_authenticated = True
    is_staff = False
    is_active = True
    pk = None

    def __init__(self, principal: Principal):
        self.principal = principal

    def __str__(self) -> str:
        return f"api-key:{self.principal.name}"


def request_key(request) -> str | None:
    """The API key a (Django or DRF) request presents, if any."""
    return presented_key(
        request.META.get("HTTP_AUTHORIZATION"), request.META.get("HTTP_X_API_KEY")
    )


def access_of(method: str, view) -> str:
    """READ or WRITE: what a request to `view` with `method` needs."""
    if method in permissions.SAFE_METHODS:
        return READ
    return getattr(view, "access", WRITE)


def is_open(kind: str) -> bool:
    return app_settings.READS_OPEN if kind == READ else app_settings.WRITES_OPEN


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        key = request_key(request)
        if key is None:
            return None
        principal = principal_for(key)
        if principal is None:
            raise exceptions.AuthenticationFailed(
                "Invalid, revoked or expired API key."
            )
        return ApiClient(principal), principal

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiAccess(permissions.BasePermission):
    """Reads follow READS_OPEN, writes WRITES_OPEN; otherwise a key (a
    write needs the write scope) or a staff session."""

    def has_permission(self, request, view) -> bool:
        kind = access_of(request.method, view)
        principal = request.auth if isinstance(request.auth, Principal) else None
        if principal is not None:
            if kind == WRITE and not principal.may_write:
                raise exceptions.PermissionDenied(
                    f"The API key {principal.name!r} has the predict scope; "
                    "writes need a key with the write scope."
                )
            return True
        if is_open(kind):
            return True
        user = request.user
        return bool(user and getattr(user, "is_staff", False))


class SharedRateThrottle(throttling.BaseThrottle):
    """THROTTLE_KEY per key, THROTTLE_ANON per anonymous client address,
    counted on the shared Redis (mlserving/throttling.py). Staff sessions
    are counted as keys, by user."""

    def allow_request(self, request, view) -> bool:
        if isinstance(request.auth, Principal):
            identity, rate = request.auth.throttle_identity, app_settings.THROTTLE_KEY
        elif request.user and getattr(request.user, "is_authenticated", False):
            identity, rate = f"user:{request.user.pk}", app_settings.THROTTLE_KEY
        else:
            identity = f"addr:{self.get_ident(request)}"
            rate = app_settings.THROTTLE_ANON
        self._wait = shared_throttling.retry_after(identity, rate)
        return self._wait is None

    def get_ident(self, request) -> str:
        # the peer's address; behind a proxy, the server (uvicorn's
        # --forwarded-allow-ips) puts the client's there
        return request.META.get("REMOTE_ADDR") or "unknown"

    def wait(self):
        return self._wait


def _anonymous_alternative(auto_schema, authenticator: type) -> bool:
    """Whether the operation's security gets `{}` (no credentials) after
    `authenticator`'s requirement: the operation is open to anyone under
    the current settings. Added once, after the view's last
    authenticator, so `{}` comes last."""
    view = auto_schema.view
    if not any(isinstance(p, ApiAccess) for p in view.get_permissions()):
        return False
    if not is_open(access_of(auto_schema.method, view)):
        return False
    authenticators = view.get_authenticators()
    return bool(authenticators) and isinstance(authenticators[-1], authenticator)


class _OpenableScheme(OpenApiAuthenticationExtension):
    """A scheme whose requirement gets `{}` after it where the operation is
    open to anyone (subclasses name their authenticator in target_class)."""

    def get_security_requirement(self, auto_schema):
        requirement = {self.name: []}
        if _anonymous_alternative(auto_schema, self.target_class):
            return [requirement, {}]
        return requirement


class ApiKeyScheme(_OpenableScheme):
    """Documents the API key in the OpenAPI schema."""

    target_class = "access.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key (`manage.py apikey create`, or the admin): "
                "`Authorization: Bearer <key>` (or `X-API-Key: <key>`). A "
                "predict-scoped key may predict and read; writes need the "
                "write scope. Needed where READS_OPEN / WRITES_OPEN are off."
            ),
        }


class SessionReadAuthentication(authentication.SessionAuthentication):
    """Session auth without DRF's CSRF check, for the POSTs that change no
    state (/predict, /v2 infer): the check would read the body through
    DRF's parsers, which those views bypass."""

    def enforce_csrf(self, request):
        return


class SessionReadScheme(_OpenableScheme):
    target_class = "access.auth.SessionReadAuthentication"
    name = "sessionCookie"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class SessionScheme(SessionReadScheme):
    """DRF's session authentication (every view but the read-only POSTs)."""

    target_class = "rest_framework.authentication.SessionAuthentication"
    name = "cookieAuth"
    priority = 1  # over drf-spectacular's own
