"""Shared fixtures: tiny real models dumped into a per-test artifacts root,
a registry with the seed's two versions, real Redis, real server
processes."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import psutil
import pytest
from django.conf import settings as django_settings
from django.db import connection
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from access import services as access_services
from access.models import Scope
from experiments.schedules import experiments_schedules_ensure
from mlserving import redis_url, throttling
from mlserving.dataplane import serving
from mlserving.embedded_redis import EmbeddedRedis
from mlserving.supervise import procfile_read
from monitoring.events import writer as event_writer
from monitoring.schedules import monitoring_schedules_ensure
from registry import services
from registry.schedules import registry_schedules_ensure

ROOT = Path(__file__).resolve().parent.parent
SEED_FEATURES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
# the demo versions' feature names (registry/demo.py)
NAMES = [f"x{i}" for i in range(10)]


@pytest.fixture(autouse=True)
def _fresh_process_state():
    serving.reset()
    event_writer.reset()
    access_services.cache_clear()
    throttling.reset()
    yield
    serving.reset()
    event_writer.reset()
    access_services.cache_clear()


@pytest.fixture(scope="session")
def estimators():
    """Fitted models: 10-feature LogisticRegression and RandomForest, and a
    3-feature LogisticRegression."""
    X, y = make_classification(n_samples=400, n_features=10, random_state=0)
    X3, y3 = make_classification(
        n_samples=200,
        n_features=3,
        n_informative=2,
        n_redundant=0,
        random_state=1,
    )
    return {
        "lr": LogisticRegression(max_iter=500).fit(X, y),
        "rf": RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y),
        "lr3": LogisticRegression().fit(X3, y3),
        "X": X,
    }


@pytest.fixture
def artifacts_root(settings, tmp_path):
    """A per-test ARTIFACTS_ROOT, and a per-test cache of the shared
    artifact store (registry/store.py) beside it."""
    root = tmp_path / "artifacts"
    root.mkdir()
    settings.ARTIFACTS_ROOT = root
    settings.MLSERVING = {
        **settings.MLSERVING,
        "ARTIFACT_CACHE_DIR": str(tmp_path / "artifact-cache"),
    }
    return root


def dump(root: Path, filename: str, estimator) -> Path:
    path = root / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, path)
    return path


@pytest.fixture
def api_key(db):
    """api_key(scope="write", name=...) -> a new key's secret."""

    def create(scope: str = Scope.WRITE, name: str | None = None) -> str:
        _, secret = access_services.key_create(name=name or f"{scope}-key", scope=scope)
        return secret

    return create


@pytest.fixture
def two_versions(db, artifacts_root, estimators):
    """default:v1.0 (LogisticRegression, active) and default:v2.0
    (RandomForest), registered through the service layer."""
    v1 = services.model_version_register(
        model_name="default",
        version="v1.0",
        source=dump(artifacts_root, "model_v1.0.pkl", estimators["lr"]),
        metadata={"accuracy": 0.8, "name": "Model v1.0", "feature_names": NAMES},
    )
    v2 = services.model_version_register(
        model_name="default",
        version="v2.0",
        source=dump(artifacts_root, "model_v2.0.pkl", estimators["rf"]),
        metadata={"accuracy": 0.9, "name": "Model v2.0", "feature_names": NAMES},
    )
    services.model_version_activate(version=v1, actor="test")
    return {"v1": v1, "v2": v2, "root": artifacts_root}


def settle_metrics() -> None:
    """Write this process's buffered events and roll them up, as the event
    writer thread and the beat-scheduled rollup would."""
    from monitoring import services as monitoring_services

    event_writer.flush()
    monitoring_services.rollup_run(push=False)


def all_schedules_ensure() -> None:
    """Every app's beat schedules (transactional tests start from empty
    tables)."""
    registry_schedules_ensure()
    monitoring_schedules_ensure()
    experiments_schedules_ensure()


def flip_one_byte(path: Path, offset: int = -10) -> None:
    """Damage an artifact: the file, and the shared store's copy of what
    it held (a changed local file alone is not served: the registered
    bytes come from the store). This test's cache forgets it too."""
    import hashlib

    from registry import store
    from registry.models import ArtifactChunk, ArtifactObject

    data = bytearray(path.read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    stored = ArtifactObject.objects.filter(sha256=digest).first()
    if stored is not None:
        index, at = divmod(offset % len(data), stored.chunk_bytes)
        chunk = ArtifactChunk.objects.get(artifact=stored, index=index)
        damaged = bytearray(chunk.data)
        damaged[at] ^= 0x01
        ArtifactChunk.objects.filter(pk=chunk.pk).update(data=bytes(damaged))
    store.cache_forget(digest)


def expected_label(estimator, row) -> int:
    return int(estimator.predict(np.array([row]))[0])


# --- Redis ------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_service():
    """The configured Redis: the embedded server (started here) unless
    REDIS_URL points at one."""
    url = django_settings.REDIS_URL
    if not redis_url.is_embedded(url):
        yield url
        return
    server = EmbeddedRedis(
        Path(redis_url.socket_path(url)),
        Path(django_settings.VAR_DIR) / "redis-data",
    ).start()
    yield url
    server.stop()


# --- Real server processes --------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_test_db() -> str:
    """DATABASE_URL naming the database this test session created."""
    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or ""
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = cfg.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{cfg['NAME']}"


class ServerProcess:
    """A real web server on 127.0.0.1 running this project: `workers`
    processes of the Procfile's `web` command (mlserving.serve: uvicorn with
    the HTTP front, HTTP and websockets on one port, each worker on its own
    SO_REUSEPORT socket)."""

    def __init__(self, env: dict, port: int | None = None, workers: int = 1):
        self.port = port or free_port()
        self.env = env
        self.workers = workers
        self.processes: list[subprocess.Popen] = []

    @property
    def process(self) -> subprocess.Popen | None:
        return self.processes[0] if self.processes else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return ["/bin/sh", "-c", f"exec {procfile_command('web')}"]

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        self.log = open(Path(self.env["VAR_DIR"]) / f"server-{self.port}.log", "w")
        env = {
            **self.env,
            "HOST": "127.0.0.1",
            "WEB_PORT": str(self.port),
            "PATH": f"{Path(sys.executable).parent}:{self.env.get('PATH', '')}",
        }
        self.processes = [
            subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            for _ in range(self.workers)
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                self.stop()
                raise RuntimeError(self.read_log())
            if all(self._listening(p.pid) for p in self.processes):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.read_log()}")

    def _listening(self, pid: int) -> bool:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            return False
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
            for c in connections
        )

    def read_log(self) -> str:
        self.log.flush()
        return (Path(self.env["VAR_DIR"]) / f"server-{self.port}.log").read_text()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


def procfile_command(role: str) -> str:
    """The Procfile's command line for `role`."""
    return procfile_read(ROOT / "Procfile")[role]


@pytest.fixture
def server_env(transactional_db, artifacts_root, tmp_path):
    """Environment for real server processes sharing this test's
    database and artifacts root."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="mlserving.settings",
        DEBUG="true",
        DATABASE_URL=database_url_of_test_db(),
        ARTIFACTS_ROOT=str(artifacts_root),
        # the same host as this test: its cache of the artifact store too
        ARTIFACT_CACHE_DIR=str(tmp_path / "artifact-cache"),
        VAR_DIR=str(var_dir),
        REDIS_URL=django_settings.REDIS_URL,
        LOG_LEVEL="WARNING",
        PREDICTION_CACHE_TTL="0",
        # as in tests/settings.py: no throttling unless a test sets a rate
        THROTTLE_ANON="",
        THROTTLE_KEY="",
    )
    return env


@pytest.fixture
def start_server(server_env):
    """start_server(workers=1, **env) -> a running web server."""
    started: list[ServerProcess] = []

    def start(**overrides) -> ServerProcess:
        workers = overrides.pop("workers", 1)
        env = {**server_env, **{k: str(v) for k, v in overrides.items()}}
        server = ServerProcess(env, workers=workers).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def anyio_backend():
    return "asyncio"
