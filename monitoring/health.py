"""What GET /health reports. The database is required; Redis is only
reported (predictions never need it). The serving state of the process
(models, what is loaded, what failed) is the data plane's; the view hands
it in."""

import os
import time

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from mlserving import redis_url
from monitoring.events import writer

STARTED_AT = time.time()


def _database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return {"ok": False, "vendor": connection.vendor, "error": str(exc)}
    return {
        "ok": True,
        "vendor": connection.vendor,
        "latency_ms": round((time.perf_counter() - started) * 1e3, 3),
    }


def _redis() -> dict:
    url = settings.REDIS_URL
    report = {
        "url": redis_url.redacted(url),
        "embedded": redis_url.is_embedded(url),
        "required": False,
    }
    started = time.perf_counter()
    client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return {**report, "ok": False, "error": str(exc)}
    finally:
        client.close()
    return {
        **report,
        "ok": True,
        "latency_ms": round((time.perf_counter() - started) * 1e3, 3),
    }


def health_report(*, serving: dict) -> tuple[dict, int]:
    """The report and its HTTP status: 200 when the database answers
    (status "healthy", or "degraded" when a model cannot be served as
    configured), 503 when it does not. `serving` is the data plane's
    status (mlserving.dataplane.serving.status())."""
    database = _database()
    problems = []
    models = serving["models"]
    for name, model in models.items():
        if model["active_version"] is None:
            problems.append(f"{name}: no active version")
        elif model["active_status"] != "ready":
            problems.append(
                f"{name}:{model['active_version']} is {model['active_status']}"
            )
    problems.extend(failure["message"] for failure in serving["failures"])
    if writer.dropped:
        problems.append(
            f"{writer.dropped} prediction events dropped: the event buffer "
            "was full (is the database reachable?)"
        )
    status = "healthy" if not problems else "degraded"
    if not database["ok"]:
        status = "unhealthy"
    default = serving["default_model"]
    report = {
        "status": status,
        "timestamp": time.time(),
        "uptime_seconds": round(time.time() - STARTED_AT, 3),
        "pid": os.getpid(),
        "database": database,
        "redis": _redis(),
        "default_model": default,
        "active_version": models.get(default, {}).get("active_version"),
        "models": models,
        "models_loaded": serving["models_loaded"],
        "events": writer.stats(),
        "problems": problems,
    }
    return report, (200 if database["ok"] else 503)
