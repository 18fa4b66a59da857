"""Admin login attempts, counted by django-axes in the shared cache, and
failing open when the cache (Redis) cannot be reached.

axes' cache handler calls the cache directly; django-redis raises redis'
ConnectionError (Redis refused: at once) or TimeoutError (Redis hung:
after CACHES' SOCKET_TIMEOUT, 0.25 s per call), so a Redis outage would
turn every admin login into a 500. Here such a call counts as "no failures
recorded" and a failure that cannot be recorded is dropped: logins work,
unlimited, while Redis is away. A warning is logged (at most every 30 s)
and the cache is not asked again for a few seconds, so a hung Redis costs
a login at most one timeout.
"""

import logging

from axes.handlers.cache import AxesCacheHandler
from redis.exceptions import RedisError

from mlserving.throttling import FailOpen

logger = logging.getLogger("mlserving.login_attempts")

# What django-redis lets through when Redis is away (socket errors come
# wrapped in redis' ConnectionError; OSError for anything that is not).
UNREACHABLE = (RedisError, OSError)

_breaker = FailOpen(
    logger,
    "admin login attempts are not limited: the cache is unreachable "
    "(%s: %s); logins are allowed until it is back",
)


def reset() -> None:
    """Forget the breaker's state (tests)."""
    _breaker.reset()


class FailOpenAxesCacheHandler(AxesCacheHandler):
    """AxesCacheHandler (counts per username and address in CACHES
    "default", shared by every process and host) that allows the login
    when the cache cannot be reached."""

    def get_failures(self, request, credentials=None) -> int:
        if _breaker.open():
            return 0
        try:
            return super().get_failures(request, credentials)
        except UNREACHABLE as exc:
            _breaker.trip(exc)
            return 0

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        if _breaker.open():
            return None
        try:
            return super().user_login_failed(
                sender, credentials, request=request, **kwargs
            )
        except UNREACHABLE as exc:
            _breaker.trip(exc)
            return None

    def user_logged_in(self, sender, request, user, **kwargs):
        if _breaker.open():
            return None
        try:
            return super().user_logged_in(sender, request, user, **kwargs)
        except UNREACHABLE as exc:
            _breaker.trip(exc)
            return None
