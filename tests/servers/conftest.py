"""Celery worker and beat as real processes, the whole supervised stack,
and a websocket listener."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import websockets.exceptions
from websockets.sync.client import connect

from mlserving.redis_url import short_socket_path
from tests.conftest import ROOT, all_schedules_ensure, free_port


class CeleryProcess:
    """`celery worker` or `celery beat` (or, subclassed, another of the
    Procfile's processes), in its own session so that a
    SIGKILL reaches the whole process tree at once (as the OOM killer or a
    container runtime would)."""

    def __init__(self, kind: str, env: dict, log: Path):
        self.kind, self.env, self.log_path = kind, env, log
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "celery", "-A", "mlserving", self.kind]
        args += ["--loglevel", "INFO"]
        if self.kind == "worker":
            args += ["--concurrency", "2", "--without-gossip", "--without-mingle"]
        return args

    def start(self) -> "CeleryProcess":
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def start_celery(tmp_path):
    started: list[CeleryProcess] = []

    def start(kind: str, env: dict) -> CeleryProcess:
        process = CeleryProcess(kind, env, tmp_path / f"celery-{kind}.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class IngestProcess(CeleryProcess):
    """`manage.py ingest_events`, the Procfile's ingest process, in its own
    session; ready once its socket answers."""

    def __init__(self, env: dict, log: Path):
        super().__init__("ingest", env, log)
        # where settings put it for this VAR_DIR
        self.socket = short_socket_path(
            Path(env["VAR_DIR"]) / "run" / "ingest.sock", "ingest"
        )

    def command(self) -> list[str]:
        return [sys.executable, "manage.py", "ingest_events"]

    def start(self, timeout: float = 30.0) -> "IngestProcess":
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log_path.read_text())
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(self.socket))
                return self
            except OSError:
                time.sleep(0.05)
            finally:
                probe.close()
        self.stop()
        raise RuntimeError(f"ingest did not start:\n{self.log_path.read_text()}")


@pytest.fixture
def start_ingest(tmp_path):
    started: list[IngestProcess] = []

    def start(env: dict) -> IngestProcess:
        process = IngestProcess(env, tmp_path / "ingest.log").start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class MetricsListener:
    """A dashboard stand-in: stays connected to /ws/metrics/ (reconnecting
    after a drop, as the page does) and keeps every message with the time
    it arrived."""

    def __init__(self, url: str):
        self.url = url
        self.messages: list[tuple[float, dict]] = []
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "MetricsListener":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with connect(
                    self.url, origin="http://127.0.0.1", open_timeout=3
                ) as socket:
                    self.connects += 1
                    while not self._stop.is_set():
                        try:
                            raw = socket.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        self.messages.append((time.time(), json.loads(raw)))
            except (OSError, websockets.exceptions.WebSocketException):
                self._stop.wait(0.5)

    def wait_for(self, predicate, timeout: float) -> tuple[float, dict] | None:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for arrived, message in self.messages[seen:]:
                seen += 1
                if predicate(arrived, message):
                    return arrived, message
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def listen():
    listeners: list[MetricsListener] = []

    def start(url: str) -> MetricsListener:
        listener = MetricsListener(url).start()
        listeners.append(listener)
        return listener

    yield start
    for listener in listeners:
        listener.stop()


class SupervisedStack:
    """The Procfile's roles under supervisord, as ./run.sh starts them
    (python -m mlserving.supervise ROLE...), on the test's database, Redis
    and VAR_DIR; in its own session so that nothing outlives the test."""

    def __init__(self, env: dict, roles: list[str], log: Path, *, workers: int = 2):
        self.port = free_port()
        self.env = {
            **env,
            "HOST": "127.0.0.1",
            "WEB_PORT": str(self.port),
            "WEB_WORKERS": str(workers),
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        }
        self.roles, self.log_path = roles, log
        self.conf = Path(env["VAR_DIR"]) / "run" / "supervisord.conf"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "SupervisedStack":
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlserving.supervise", *self.roles],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.read_log())
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"the stack did not start:\n{self.read_log()}")
        # every process of every role running
        wait_for_condition(
            lambda: all(None not in self.pids(r) for r in self.roles), deadline
        )
        return self

    @property
    def workers(self) -> int:
        return int(self.env["WEB_WORKERS"])

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("supervisorctl")),
                "-c",
                str(self.conf),
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=20,
        )
        return result.stdout.strip()

    def pids(self, role: str) -> list[int | None]:
        """The pid of each process of a role (web has WEB_WORKERS of them),
        None for one supervisord does not report RUNNING."""
        found = []
        for line in self.ctl("status").splitlines():
            name = line.split(maxsplit=1)[0] if line.strip() else ""
            if name != role and not name.startswith(f"{role}:"):
                continue
            if "RUNNING" in line:
                found.append(int(line.split("pid ", 1)[1].split(",", 1)[0]))
            else:
                found.append(None)
        return found or [None]

    def pid(self, role: str) -> int | None:
        """The pid of a one-process role while supervisord says RUNNING."""
        return self.pids(role)[0]

    def web_workers(self) -> list[psutil.Process]:
        """The running web worker processes."""
        workers = []
        for pid in self.pids("web"):
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    workers.append(psutil.Process(pid))
        return workers

    def read_log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # supervisord stops every role
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process:
            # anything left in the session (nothing, normally)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None


def wait_for_condition(predicate, deadline: float, interval: float = 0.1) -> bool:
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


@pytest.fixture
def supervised(two_versions, server_env, redis_service, tmp_path):
    """supervised(**env) -> a SupervisedStack of ingest, web (2 workers),
    worker and beat."""
    all_schedules_ensure()  # transactional tests start from empty tables
    stacks: list[SupervisedStack] = []

    def start(workers: int = 2, **overrides) -> SupervisedStack:
        env = {**server_env, **{k: str(v) for k, v in overrides.items()}}
        stack = SupervisedStack(
            env,
            ["ingest", "web", "worker", "beat"],
            tmp_path / "supervisord.log",
            workers=workers,
        ).start()
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
