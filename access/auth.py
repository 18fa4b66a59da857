"""Optional API keys.

With API_KEYS empty (the default, and the seed's behaviour) the API is open.
With keys configured, every endpoint but /health and the docs needs
`Authorization: Bearer <key>` or `X-API-Key: <key>`, or a staff session.
"""

import hmac

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from mlserving.conf import app_settings


class ApiClient:
    """The principal of a request that presented a valid API key."""

    is_authenticated = True
    is_staff = False
    is_active = True
    pk = None

    def __str__(self) -> str:
        return "api-key"


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a request presents: `Authorization: Bearer <key>`, else
    `X-API-Key: <key>`."""
    if authorization and authorization.startswith("Bearer "):
        return authorization[7:].strip()
    return x_api_key


def _presented_key(request) -> str | None:
    return presented_key(
        request.META.get("HTTP_AUTHORIZATION"), request.META.get("HTTP_X_API_KEY")
    )


def key_is_valid(key: str) -> bool:
    return any(
        hmac.compare_digest(key.encode(), known.encode())
        for known in app_settings.API_KEYS
    )


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        key = _presented_key(request)
        if key is None:
            return None
        if not key_is_valid(key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return ApiClient(), key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiKeyOrOpen(permissions.BasePermission):
    """Open while no API key is configured; otherwise a key or staff."""

    def has_permission(self, request, view) -> bool:
        if not app_settings.API_KEYS:
            return True
        if request.auth is not None:
            return True
        user = request.user
        return bool(user and getattr(user, "is_staff", False))


def _anonymous_alternative(auto_schema, authenticator: type) -> bool:
    """Whether the operation's security gets `{}` (no credentials) after
    `authenticator`'s requirement: while no API key is configured a view
    guarded by ApiKeyOrOpen is open to anyone. Added once, after the
    view's last authenticator, so `{}` comes last."""
    if app_settings.API_KEYS:
        return False
    view = auto_schema.view
    if not any(isinstance(p, ApiKeyOrOpen) for p in view.get_permissions()):
        return False
    authenticators = view.get_authenticators()
    return bool(authenticators) and isinstance(authenticators[-1], authenticator)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the API key in the OpenAPI schema."""

    target_class = "mlserving.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_requirement(self, auto_schema):
        requirement = {self.name: []}
        if _anonymous_alternative(auto_schema, ApiKeyAuthentication):
            return [requirement, {}]
        return requirement

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "Needed only when API_KEYS is set: `Authorization: Bearer "
                "<key>` (or `X-API-Key: <key>`)."
            ),
        }


class SessionReadAuthentication(authentication.SessionAuthentication):
    """Session auth without DRF's CSRF check, for /predict only: a
    prediction changes no state, and the check would read the body through
    DRF's parsers, which that view bypasses."""

    def enforce_csrf(self, request):
        return


class SessionReadScheme(OpenApiAuthenticationExtension):
    target_class = "mlserving.auth.SessionReadAuthentication"
    name = "sessionCookie"

    def get_security_requirement(self, auto_schema):
        requirement = {self.name: []}
        if _anonymous_alternative(auto_schema, SessionReadAuthentication):
            return [requirement, {}]
        return requirement

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
