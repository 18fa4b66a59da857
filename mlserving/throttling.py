"""Requests per client, counted on the shared Redis so the limit holds
across every process and host: a fixed window per client (an API key, or
an anonymous client's address).

Counting on Redis for every request cost this machine two thirds of its
/predict throughput (one blocking round trip each: 11,088 -> 3,570 req/s
at 16 connections, bench/front_bench.py), so each process counts in
memory and a background thread adds its counts to Redis and reads the
shared totals back every FLUSH_INTERVAL. A process therefore decides on
its own requests exactly and on the other processes' up to one interval
late: across N processes a client may get up to N x (what one process
admits in one interval) past the limit at the start of a window.

When Redis cannot be reached, throttling fails open: requests pass, a
warning is logged (at most every 30 s), and Redis is not asked again for
a few seconds.
"""

import functools
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger("mlserving.throttling")

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")
KEY_PREFIX = "mlserving:throttle:"
# After a Redis failure, seconds during which requests are not counted.
PAUSE_AFTER_FAILURE = 5.0
LOG_EVERY = 30.0


@functools.lru_cache(maxsize=32)
def parse_rate(rate: str) -> tuple[int, int] | None:
    """'200/s' -> (200, 1); '' -> None (no limit)."""
    if not rate or not rate.strip():
        return None
    found = _RATE.match(rate.lower())
    if found is None or found.group(2) not in _UNITS or int(found.group(1)) < 1:
        raise ImproperlyConfigured(
            f"A throttle rate is N/s, N/min, N/h or N/day (or blank); got {rate!r}."
        )
    return int(found.group(1)), _UNITS[found.group(2)]


class FailOpen:
    """What a caller of the shared Redis does when it cannot be reached:
    skip it for PAUSE_AFTER_FAILURE seconds after a failure (so an outage
    costs at most one short timeout now and then) and say so in the log,
    at most every LOG_EVERY seconds. `warning` is logged with the error's
    type and text."""

    def __init__(self, log: logging.Logger, warning: str):
        self.log, self.warning = log, warning
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.paused_until = 0.0
        self.logged_at = -math.inf

    def open(self) -> bool:
        return time.monotonic() < self.paused_until

    def trip(self, exc: Exception) -> None:
        now = time.monotonic()
        with self.lock:
            self.paused_until = now + PAUSE_AFTER_FAILURE
            if now - self.logged_at >= LOG_EVERY:
                self.logged_at = now
                self.log.warning(self.warning, type(exc).__name__, exc)


_breaker = FailOpen(
    logger,
    "throttling fails open: Redis unreachable (%s: %s); requests are not "
    "counted until it is back",
)


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def prepare() -> None:
    """Import the Redis client's modules and build the client (it connects
    lazily) in the calling thread, before the sync thread exists: a first
    import racing another thread's imports of the same package can fail
    with importlib's _DeadlockError (seen: redis.auth.token, a 500)."""
    try:
        _redis()
    except Exception as exc:  # a misconfigured cache: counted as an outage
        _breaker.trip(exc)


# Seconds between a process's syncs with Redis.
FLUSH_INTERVAL = 0.05
# Clients a process keeps counts for at once; past it, it forgets them
# all (those clients are counted afresh).
MAX_TRACKED = 100_000


@dataclass
class _Window:
    """One client's current window in this process."""

    index: int  # the window's number: time // seconds
    seconds: int
    pending: int = 0  # admitted here, not yet sent to Redis
    sending: int = 0  # sent to Redis by the sync under way
    shared: int = 0  # the shared count last read back (ours included)
    touched: bool = True  # asked since the last sync


class SharedCounter:
    """Per-process counts, synced with Redis by a background thread."""

    def __init__(self):
        self._windows: dict[tuple[str, int], _Window] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None

    def retry_after(self, identity: str, rate: str) -> int | None:
        limit = parse_rate(rate)
        if limit is None or _breaker.open():
            return None
        count, seconds = limit
        now = time.time()
        index = int(now // seconds)
        if self._pid != os.getpid():
            self._start()
        key = (identity, seconds)
        with self._lock:
            window = self._windows.get(key)
            if window is None or window.index != index:
                if len(self._windows) >= MAX_TRACKED:
                    self._windows.clear()
                window = self._windows[key] = _Window(index, seconds)
            window.touched = True
            if window.shared + window.sending + window.pending >= count:
                return max(1, math.ceil((index + 1) * seconds - now))
            window.pending += 1
        return None

    def sync(self) -> None:
        """Add what this process admitted to the shared counts and read
        the totals back; forget windows that ended."""
        if _breaker.open():
            return
        now = time.time()
        with self._lock:
            batch = []
            for key, window in list(self._windows.items()):
                if window.index != int(now // window.seconds):
                    del self._windows[key]
                elif window.pending or window.touched:
                    batch.append((key, window, window.pending))
                    window.sending, window.pending = window.pending, 0
                    window.touched = False
        if not batch:
            return
        try:
            pipe = _redis().pipeline(transaction=False)
            for (identity, seconds), window, pending in batch:
                name = f"{KEY_PREFIX}{identity}:{seconds}:{window.index}"
                pipe.incrby(name, pending)
                pipe.expire(name, seconds + 1)
            totals = pipe.execute()[::2]
        except Exception as exc:  # redis errors, socket errors, timeouts
            _breaker.trip(exc)
            with self._lock:
                self._windows.clear()  # counted afresh once Redis is back
            return
        with self._lock:
            for (_, window, _), total in zip(batch, totals, strict=True):
                # the total holds what was being sent
                window.shared = max(window.shared, int(total))
                window.sending = 0

    def _start(self) -> None:
        # one thread per process (a forked child starts its own)
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._windows.clear()
            prepare()
        threading.Thread(target=self._run, name="throttle-sync", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            try:
                self.sync()
            except Exception:  # never let the thread die
                logger.exception("throttle sync failed")

    def forget(self) -> None:
        with self._lock:
            self._windows.clear()


_counter = SharedCounter()


def retry_after(identity: str, rate: str) -> int | None:
    """Count one request of `identity` against `rate`: None when it may
    pass, else the seconds until its window ends (for Retry-After)."""
    return _counter.retry_after(identity, rate)


def reset() -> None:
    """Forget the breaker's state and this process's counts (tests)."""
    _breaker.reset()
    _counter.forget()
