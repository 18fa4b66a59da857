"""API keys and who may do what.

A request is a *read* (every GET, and the POSTs that change no state:
/predict, /feedback, /v2 infer) or a *write* (activate, rollback, aliases,
experiments, uploads). READS_OPEN and WRITES_OPEN say whether each needs
credentials: a key (its scope `predict` allows reads, `write` allows both)
or a staff session.

Verified keys are remembered per process for API_KEY_CACHE_SECONDS, so the
hot path reads no database; a revoked key stops working within that time.
"""

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from access.models import ApiKey, Scope
from mlserving.conf import app_settings
from mlserving.errors import NotFound, ValidationFailed

logger = logging.getLogger("access")

_CACHE_MAX_ENTRIES = 4096


@dataclass(frozen=True)
class Principal:
    """Who presented a valid key: the key's name, prefix and scope."""

    name: str
    prefix: str
    scope: str

    @property
    def may_write(self) -> bool:
        return self.scope == Scope.WRITE

    @property
    def throttle_identity(self) -> str:
        return f"key:{self.prefix}"


class _KeyCache:
    """sha256(key) -> (expires at, Principal or None), bounded."""

    def __init__(self):
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _digest(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def get(self, key: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(self._digest(key))
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: str, principal: Principal | None) -> None:
        ttl = app_settings.API_KEY_CACHE_SECONDS
        with self._lock:
            if len(self._entries) >= _CACHE_MAX_ENTRIES:
                self._entries.clear()
            self._entries[self._digest(key)] = (time.monotonic() + ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _KeyCache()


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a request presents: `Authorization: Bearer <key>`, else
    `X-API-Key: <key>`."""
    if authorization and authorization.startswith("Bearer "):
        return authorization[7:].strip()
    return x_api_key


def principal_cached(key: str) -> tuple[bool, Principal | None]:
    """(known, principal) from this process's cache only: never a query,
    for the event loop. known is False when the database must be asked."""
    return _cache.get(key)


def principal_for(key: str) -> Principal | None:
    """The principal of a presented key; None for an unknown, revoked or
    expired key (or a malformed one)."""
    known, principal = _cache.get(key)
    if known:
        return principal
    principal = None
    if 0 < len(key) <= 200 and "." in key:
        try:
            found = ApiKey.objects.get_from_key(key)
        except ApiKey.DoesNotExist:
            found = None
        if found is not None and not found.has_expired:
            principal = Principal(found.name, found.prefix, found.scope)
    _cache.put(key, principal)
    return principal


def cache_clear() -> None:
    _cache.clear()


def key_create(
    *, name: str, scope: str = Scope.PREDICT, expires_in_days: float | None = None
) -> tuple[ApiKey, str]:
    """A new key; the secret is returned once and only its hash is kept."""
    name = name.strip()
    if not name or len(name) > 50:
        raise ValidationFailed(
            "A key needs a name of 1 to 50 characters.", details={"name": name}
        )
    if scope not in Scope.values:
        raise ValidationFailed(
            f"Unknown scope {scope!r}; one of {', '.join(Scope.values)}.",
            details={"scope": scope},
        )
    expiry = None
    if expires_in_days is not None:
        if expires_in_days <= 0:
            raise ValidationFailed(
                "expires_in_days must be positive.",
                details={"expires_in_days": expires_in_days},
            )
        expiry = timezone.now() + timedelta(days=expires_in_days)
    api_key, secret = ApiKey.objects.create_key(
        name=name, scope=scope, expiry_date=expiry
    )
    logger.info("API key %s (%s, scope %s) created", api_key.prefix, name, scope)
    return api_key, secret


def key_revoke(*, prefix: str) -> tuple[ApiKey, bool]:
    """Revoke the key with this prefix (the part of the key before the
    dot); (key, changed). Revoking cannot be undone."""
    try:
        api_key = ApiKey.objects.get(prefix=prefix)
    except ApiKey.DoesNotExist:
        raise NotFound(
            f"No API key with prefix {prefix!r}.", details={"prefix": prefix}
        ) from None
    if api_key.revoked:
        return api_key, False
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])
    cache_clear()
    logger.info("API key %s (%s) revoked", api_key.prefix, api_key.name)
    return api_key, True


def key_list() -> list[ApiKey]:
    return list(ApiKey.objects.order_by("-created"))


def key_body(api_key: ApiKey) -> dict:
    return {
        "name": api_key.name,
        "prefix": api_key.prefix,
        "scope": api_key.scope,
        "created": api_key.created,
        "expires": api_key.expiry_date,
        "revoked": api_key.revoked,
        "usable": not api_key.revoked and not api_key.has_expired,
    }


def usable_write_key_exists() -> bool:
    now = timezone.now()
    return (
        ApiKey.objects.filter(revoked=False, scope=Scope.WRITE)
        .exclude(expiry_date__lt=now)
        .exists()
    )


def health_details_allowed(*, user, key: str | None) -> bool:
    """Whether GET /health may say more than up or down: when
    HEALTH_DETAILS_PUBLIC, to a usable key of any scope, or to staff."""
    if app_settings.HEALTH_DETAILS_PUBLIC:
        return True
    if user is not None and getattr(user, "is_staff", False):
        return True
    return bool(key) and principal_for(key) is not None


class OpenWritesRefused(RuntimeError):
    """Production settings with nothing guarding the writes."""


_checked_in: int | None = None  # the pid whose start-up check passed


def startup_check() -> None:
    """Called by every web process before it serves (mlserving.serve
    before its warm-up, the ASGI lifespan for any other server; once per
    process). With DEBUG off: open writes start only when WRITES_OPEN says
    so explicitly (and are logged as a warning); otherwise a usable key
    with the write scope must exist, else the process refuses to start."""
    global _checked_in
    if settings.DEBUG or _checked_in == os.getpid():
        return
    if app_settings.WRITES_OPEN:
        logger.warning(
            "DEBUG is off and WRITES_OPEN is on: anyone who reaches this "
            "port may activate versions, move aliases, upload models and "
            "reconfigure experiments."
        )
    elif not usable_write_key_exists():
        raise OpenWritesRefused(
            "DEBUG is off and no usable API key with the write scope exists. "
            "Create one with `python manage.py apikey create NAME --scope "
            "write` (or in the admin), or set WRITES_OPEN=true to run with "
            "writes open to anyone (not recommended)."
        )
    _checked_in = os.getpid()
