"""Benchmark POST /predict on loopback against the in-process predict.

What it does, all inside a fresh temporary directory (its own VAR_DIR, SQLite
database and ARTIFACTS_ROOT; the repository's var/ and artifacts/ are never
touched):

1. ``manage.py migrate`` and ``manage.py bootstrap_demo`` (trains v1.0
   LogisticRegression and v2.0 RandomForest, 10 features, activates v1.0).
2. In-process: loads each requested artifact with joblib and times
   ``predict_proba`` (what the server computes, under
   ``assume_finite=True``), ``predict`` and both together on the one row of
   the request body; median and p99 in microseconds.
3. Starts the production HTTP server (the Procfile's `web` process)
   on a free 127.0.0.1 port with DEBUG off and the prediction cache off
   (PREDICTION_CACHE_TTL=0, so every request runs the model), waits for
   /health, warms every worker up, samples the server's own
   processing_time_ms, then runs ``wrk_post.sh`` at 1 and at 16
   connections for each requested version, and stops the server.
4. ``--cache``: the same runs once more on a server with the cache on
   (PREDICTION_CACHE_TTL=300), reported as ``ours+cache``.
5. ``--baseline DIR``: the same runs on another commit's checkout (a git
   worktree with its own .venv, e.g. the commit before a change), its own
   Procfile's web process and demo models, labelled ``before``, and the
   ratios ours/before. ``--rounds N`` alternates ours and before N times
   and reports per-round figures and their medians (shared machines are
   noisy; one round can mislead).
6. ``--mlserver``: serves the same joblib file with MLServer 1.7
   (``mlserver_serve.sh``, Open Inference Protocol body from
   ``v2_body.py 10``), the same wrk runs, and the ratios ours/MLServer.
   ``--mlserver-parallel-workers auto`` (default) gives MLServer 0 workers
   for models under 1 ms in-process and 2 above, its fastest settings per
   the kit's README.

It prints tables (load runs, in-process timings, the server overhead = p50
at 1 connection minus the in-process median, and the MLServer ratios) and
one final line ``BENCHJSON {...}`` with every figure.

The load tools come from ``<repo>/../shared/bench`` (override with
``SHARED_BENCH_DIR``); see its README. These machines are shared and noisy:
compare figures taken in one run, as ratios.

Usage (from the repository root)::

    .venv/bin/python bench/predict_bench.py
    .venv/bin/python bench/predict_bench.py --versions v1.0,v2.0 --mlserver
    .venv/bin/python bench/predict_bench.py --workers 4 --seconds 20 --cache
    git worktree add /tmp/before 2629ca0 && (cd /tmp/before && ./test.sh --co -q)
    .venv/bin/python bench/predict_bench.py --versions v1.0,v2.0 --mlserver \
        --baseline /tmp/before --rounds 3

MLServer's first start creates /tmp/mlserver-venv (pip install; minutes).
"""

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
FEATURES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
ACTIVE_VERSION = "v1.0"  # what bootstrap_demo activates
CONNECTIONS = (1, 16)
HOST = "127.0.0.1"
# Environment keys of the caller that could change what is measured.
SCRUBBED_PREFIXES = ("GRANIAN_", "MLSERVER_")
SCRUBBED_KEYS = {"PYTHONPATH", "DJANGO_SETTINGS_MODULE"}
KEPT_KEYS = {"MLSERVER_VENV"}  # mlserver_serve.sh's own knob


class BenchError(Exception):
    """A failure that ends the benchmark with a message (and exit code 1)."""


@dataclass
class LoadRun:
    server: str
    version: str
    conns: int
    seconds: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    requests: int
    raw: dict = field(default_factory=dict)
    # Ours only: median of the server's processing_time_ms (decode, model,
    # encode inside the view), sampled over sequential requests.
    view_p50_ms: float | None = None
    round: int = 1


@dataclass
class InProcess:
    version: str
    model_type: str
    calls: int
    proba_median_us: float
    proba_p99_us: float
    predict_median_us: float
    predict_p99_us: float
    both_median_us: float
    both_p99_us: float


# --- small helpers ---------------------------------------------------------


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive TCP ports free on 127.0.0.1 now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind((HOST, port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise BenchError(f"no block of {count} free ports found on {HOST}")


def session_members(sid: int) -> list[int]:
    """Live processes whose session id is `sid` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def signal_session(sid: int, sig: signal.Signals) -> None:
    """Send `sig` to every process of a session this script started."""
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def shared_bench_dir() -> Path:
    override = os.environ.get("SHARED_BENCH_DIR")
    path = Path(override) if override else REPO.parent / "shared" / "bench"
    for name in ("wrk_post.sh", "post.lua", "mlserver_serve.sh", "v2_body.py"):
        if not (path / name).is_file():
            raise BenchError(
                f"{path / name} not found: set SHARED_BENCH_DIR to the "
                "shared bench kit (wrk_post.sh, mlserver_serve.sh, v2_body.py)"
            )
    return path


def base_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key in KEPT_KEYS
        or (key not in SCRUBBED_KEYS and not key.startswith(SCRUBBED_PREFIXES))
    }


def django_env(
    workdir: Path, *, cache_ttl: float, checkout: Path = REPO
) -> dict[str, str]:
    """Environment for manage.py and the server of `checkout` (this
    repository, or another commit's worktree with its own .venv):
    everything under workdir, DEBUG off, no Redis needed, no API keys, no
    A/B split."""
    env = base_env()
    venv = checkout / ".venv"
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "mlserving.settings",
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "VIRTUAL_ENV": str(venv),
            "DEBUG": "false",
            "SECRET_KEY": "predict-bench-not-secret-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "VAR_DIR": str(workdir / "var"),
            "DATABASE_URL": f"sqlite:///{workdir / 'var' / 'db.sqlite3'}",
            "ARTIFACTS_ROOT": str(workdir / "artifacts"),
            # Empty values win over a repository .env (read without
            # overwrite) and make settings fall through to the embedded Redis
            # location, which nothing here starts: /predict never uses Redis.
            "REDIS_URL": "",
            "REDIS_HOST": "",
            "REDIS_PORT": "",
            "EMBEDDED_REDIS": "1",
            "PREDICTION_CACHE_TTL": str(cache_ttl),
            "LOG_LEVEL": "WARNING",
            # a benchmark measures serving: nothing guards writes (DEBUG
            # off would refuse to start without a write key), no request
            # is throttled, plain HTTP on 127.0.0.1
            "WRITES_OPEN": "true",
            "THROTTLE_ANON": "",
            "THROTTLE_KEY": "",
            "SECURE_SSL_REDIRECT": "false",
            "AB_TEST_ENABLED": "false",
            "DEFAULT_MODEL_NAME": "default",
            "DEFAULT_MODEL_VERSION": ACTIVE_VERSION,
            "MAX_CONCURRENT_REQUESTS": "100",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def manage(
    env: dict[str, str], *args: str, timeout: float = 600, checkout: Path = REPO
) -> None:
    command = [str(checkout / ".venv" / "bin" / "python"), "manage.py", *args]
    log(f"$ {'' if checkout == REPO else f'({checkout}) '}" + " ".join(command[1:]))
    result = subprocess.run(
        command,
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise BenchError(
            f"manage.py {' '.join(args)} failed (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )


# --- processes -------------------------------------------------------------


class Server:
    """A server process in its own session, stopped with the whole session."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        log(f"starting {name}: {' '.join(command)}")
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(
        self,
        url: str,
        *,
        timeout: float,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        """Poll url until it answers 200; BenchError (with the log tail) if
        the process exits first or the timeout passes."""
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        next_progress = started + 30
        last_error = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise BenchError(
                        f"{self.name} exited with code {code} before it was "
                        f"ready. Last lines of {self.log_path}:\n"
                        f"{tail(self.log_path)}"
                    )
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                now = time.monotonic()
                if now > deadline:
                    raise BenchError(
                        f"{self.name} not ready at {url} after {timeout:.0f} s "
                        f"({last_error}). Last lines of {self.log_path}:\n"
                        f"{tail(self.log_path)}"
                    )
                if progress is not None and now >= next_progress:
                    progress(now - started)
                    next_progress = now + 30
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            log(f"stopping {self.name} (session {self.proc.pid})")
            signal_session(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                signal_session(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Workers or helpers left behind (the leader may exit first).
        time.sleep(0.2)
        signal_session(self.proc.pid, signal.SIGKILL)
        self._log.close()


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


# --- measurements ----------------------------------------------------------


def wrk(
    kit: Path, *, url: str, body: Path, conns: int, seconds: int
) -> dict[str, float]:
    """One wrk_post.sh run; its JSON line."""
    command = ["bash", str(kit / "wrk_post.sh"), url, str(body), str(conns)]
    command.append(str(seconds))
    # In its own session: wrk runs under `timeout`, which makes its own
    # process group, and an interrupted run must not leave wrk behind.
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=seconds + 90)
    except BaseException:
        signal_session(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        signal_session(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    result = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise BenchError(
            f"wrk_post.sh {url} {conns} {seconds} failed (exit "
            f"{result.returncode}):\n{result.stdout[-2000:]}"
            f"{result.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


def load_runs(
    kit: Path,
    *,
    server: str,
    version: str,
    url: str,
    body: Path,
    seconds: int,
) -> list[LoadRun]:
    runs = []
    for conns in CONNECTIONS:
        log(f"wrk {server} {version}: {conns} connection(s), {seconds} s")
        raw = wrk(kit, url=url, body=body, conns=conns, seconds=seconds)
        errors = sum(int(v) for k, v in raw.items() if k.startswith("err_"))
        run = LoadRun(
            server=server,
            version=version,
            conns=conns,
            seconds=seconds,
            rps=float(raw["rps"]),
            p50_ms=float(raw["p50_ms"]),
            p90_ms=float(raw["p90_ms"]),
            p99_ms=float(raw["p99_ms"]),
            max_ms=float(raw["max_ms"]),
            errors=errors,
            requests=int(raw["requests"]),
            raw=raw,
        )
        log(
            f"  {run.rps:.0f} req/s, p50 {run.p50_ms:.2f} ms, "
            f"p99 {run.p99_ms:.2f} ms, errors {errors}"
        )
        runs.append(run)
    return runs


def time_calls(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """Median and p99 in microseconds of `calls` timed calls."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1e3)
    return statistics.median(samples), percentile(samples, 99)


def in_process(version: str, artifact: Path, calls: int | None) -> InProcess:
    """Time the artifact's predict_proba/predict on the request's one row,
    as the server runs them (float64, assume_finite)."""
    import joblib
    import numpy as np
    import sklearn

    model = joblib.load(artifact)
    row = np.asarray([FEATURES], dtype=np.float64)
    with sklearn.config_context(assume_finite=True):
        started = time.perf_counter()
        for _ in range(20):
            model.predict_proba(row)
        each = (time.perf_counter() - started) / 20
        # About 3 s per measured call kind, between 100 and 2000 calls.
        count = calls or max(100, min(2000, int(3.0 / max(each, 1e-7))))
        log(
            f"in-process {version} ({type(model).__name__}): {count} calls "
            "each of predict_proba, predict, both"
        )
        proba = time_calls(lambda: model.predict_proba(row), count)
        predict = time_calls(lambda: model.predict(row), count)
        both = time_calls(lambda: (model.predict(row), model.predict_proba(row)), count)
    return InProcess(
        version=version,
        model_type=type(model).__name__,
        calls=count,
        proba_median_us=proba[0],
        proba_p99_us=proba[1],
        predict_median_us=predict[0],
        predict_p99_us=predict[1],
        both_median_us=both[0],
        both_p99_us=both[1],
    )


def predict_body(version: str) -> dict:
    body: dict = {"features": FEATURES}
    if version != ACTIVE_VERSION:
        body["model_version"] = version
    return body


def warm_up_ours(
    url: str, body: dict, version: str, *, cached: bool, workers: int
) -> float:
    """Warm every worker up (one new connection per request, so they spread
    over the workers; a version other than the active one loads on its
    first request), check the answers, then sample the server's own
    processing_time_ms over sequential requests: its median in ms."""
    for _ in range(4 * workers):
        response = httpx.post(url, json=body, timeout=60)
        if response.status_code != 200:
            raise BenchError(
                f"warm-up POST {url} answered {response.status_code}: "
                f"{response.text[:500]}"
            )
        data = response.json()
        if data.get("model_version") != version:
            raise BenchError(
                f"warm-up answered version {data.get('model_version')!r}, "
                f"expected {version!r}: {data}"
            )
        if not cached and data.get("cached"):
            raise BenchError(f"prediction cache is on although TTL=0: {data}")
    samples: list[float] = []
    deadline = time.monotonic() + 2.0
    with httpx.Client(timeout=30) as client:
        while len(samples) < 500 and time.monotonic() < deadline:
            reply = client.post(url, json=body).json()
            samples.append(float(reply["processing_time_ms"]))
    view_ms = statistics.median(samples)
    log(
        f"warm-up {version}: prediction {data.get('prediction')}, "
        f"server processing_time_ms median {view_ms:.3f} "
        f"({len(samples)} sequential requests)"
    )
    return view_ms


def warm_up_mlserver(url: str, body: Path) -> None:
    response = httpx.post(
        url,
        content=body.read_bytes(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    if response.status_code != 200:
        raise BenchError(
            f"MLServer warm-up POST {url} answered {response.status_code}: "
            f"{response.text[:500]}"
        )
    outputs = {o.get("name"): o.get("data") for o in response.json()["outputs"]}
    log(f"MLServer warm-up: {outputs}")


def web_command(port: int, workers: int, checkout: Path = REPO) -> list[str]:
    """The `web` process of `checkout`'s Procfile on 127.0.0.1:port with
    `workers` workers, as one shell command (it expands the Procfile's
    ${NAME:-default}s). A web line that starts its workers itself (it reads
    WEB_WORKERS: a server master, as in older commits) runs once; else it
    is one worker (mlserving.serve) and runs `workers` times, as
    supervisord runs it."""
    for line in (checkout / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = line.split(":", 1)[1].strip()
            break
    else:
        raise BenchError(f"{checkout / 'Procfile'} has no web process")
    settings = f"HOST={HOST}; WEB_PORT={port}; WEB_WORKERS={workers}"
    if "WEB_WORKERS" in command:
        return ["/bin/sh", "-c", f"{settings}; exec {command}"]
    copies = " ".join([f"{command} &"] * workers)
    return ["/bin/sh", "-c", f"{settings}; {copies} wait"]


def bench_ours(
    kit: Path,
    workdir: Path,
    *,
    label: str,
    cache_ttl: float,
    versions: list[str],
    workers: int,
    seconds: int,
    start_timeout: float,
    checkout: Path = REPO,
) -> list[LoadRun]:
    port = free_ports()
    command = web_command(port, workers, checkout)
    env = django_env(workdir, cache_ttl=cache_ttl, checkout=checkout)
    base = f"http://{HOST}:{port}"
    server = Server(
        label, command, env=env, cwd=checkout, log_path=workdir / f"{label}.log"
    )
    runs: list[LoadRun] = []
    with running(server):
        server.wait_ready(f"{base}/health", timeout=start_timeout)
        log(f"{label} ready on port {port}")
        for version in versions:
            body = predict_body(version)
            body_file = workdir / f"body_{version}.json"
            body_file.write_text(json.dumps(body))
            view_ms = warm_up_ours(
                f"{base}/predict",
                body,
                version,
                cached=cache_ttl > 0,
                workers=workers,
            )
            new = load_runs(
                kit,
                server=label,
                version=version,
                url=f"{base}/predict",
                body=body_file,
                seconds=seconds,
            )
            for item in new:
                item.view_p50_ms = view_ms
            runs += new
    return runs


def bench_mlserver(
    kit: Path,
    workdir: Path,
    *,
    version: str,
    artifact: Path,
    parallel_workers: int,
    seconds: int,
    start_timeout: float,
) -> list[LoadRun]:
    body_file = workdir / "body_v2.json"
    if not body_file.exists():
        result = subprocess.run(
            [str(PYTHON), str(kit / "v2_body.py"), str(len(FEATURES))],
            capture_output=True,
            text=True,
            check=True,
        )
        body_file.write_text(result.stdout)
    # A name unique to this run: it finds the model repository that
    # mlserver_serve.sh makes (mktemp under /tmp) so it can be removed.
    name = f"bench{os.getpid()}" + "".join(ch for ch in version if ch.isalnum())
    port = free_ports(3)  # HTTP, gRPC (port+1), metrics (port+2)
    env = base_env()
    env["MLSERVER_PARALLEL_WORKERS"] = str(parallel_workers)
    venv = Path(env.get("MLSERVER_VENV", "/tmp/mlserver-venv"))
    if not (venv / "bin" / "mlserver").exists():
        log(
            f"{venv} does not exist yet: mlserver_serve.sh creates it now "
            "(pip install, can take minutes)"
        )
    server = Server(
        f"mlserver-{version}",
        ["bash", str(kit / "mlserver_serve.sh"), str(port), f"{name}={artifact}"],
        env=env,
        cwd=workdir,
        log_path=workdir / f"mlserver_{version}.log",
    )
    base = f"http://{HOST}:{port}"
    with contextlib.ExitStack() as stack:
        stack.callback(remove_mlserver_repos, name)
        stack.enter_context(running(server))
        server.wait_ready(
            f"{base}/v2/models/{name}/ready",
            timeout=start_timeout,
            progress=lambda s: log(f"  still waiting for MLServer ({s:.0f} s)"),
        )
        log(
            f"MLServer ready on port {port} (model {name}, "
            f"parallel_workers {parallel_workers})"
        )
        url = f"{base}/v2/models/{name}/infer"
        warm_up_mlserver(url, body_file)
        return load_runs(
            kit,
            server="mlserver",
            version=version,
            url=url,
            body=body_file,
            seconds=seconds,
        )


def remove_mlserver_repos(name: str) -> None:
    """Remove the model repositories mlserver_serve.sh made for `name`."""
    for repo in Path("/tmp").glob("mlserver-repo.*"):
        if (repo / name / "model-settings.json").is_file():
            shutil.rmtree(repo, ignore_errors=True)


# --- report ----------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]], *, left: int = 2) -> str:
    """Plain-text table; the first `left` columns left-aligned."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def report(runs: list[LoadRun], inproc: dict[str, InProcess], config: dict) -> dict:
    print()
    print(
        f"POST /predict on loopback: the Procfile's web process, "
        f"{config['workers']} "
        f"workers, {config['seconds']} s per run, wrk 1 thread on CPU 1, "
        f"{config['cpus']} CPUs, load avg before {config['loadavg_before']}"
    )
    print()
    print(
        table(
            [
                "server",
                "version",
                "round",
                "conns",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
            ],
            [
                [
                    r.server,
                    r.version,
                    str(r.round),
                    str(r.conns),
                    f"{r.rps:,.0f}",
                    f"{r.p50_ms:.2f}",
                    f"{r.p99_ms:.2f}",
                    str(r.errors),
                ]
                for r in runs
            ],
        )
    )
    print()
    print("In-process, one row, float64, assume_finite (µs):")
    print(
        table(
            [
                "version",
                "model",
                "calls",
                "proba med",
                "proba p99",
                "predict med",
                "both med",
            ],
            [
                [
                    i.version,
                    i.model_type,
                    str(i.calls),
                    f"{i.proba_median_us:,.1f}",
                    f"{i.proba_p99_us:,.1f}",
                    f"{i.predict_median_us:,.1f}",
                    f"{i.both_median_us:,.1f}",
                ]
                for i in inproc.values()
            ],
        )
    )
    overheads = []
    for r in runs:
        # A cached server does not run the model: no overhead to speak of.
        if r.conns != 1 or r.version not in inproc or r.server == "ours+cache":
            continue
        info = inproc[r.version]
        # Ours runs predict_proba once; MLServer's runtime calls predict and
        # predict_proba.
        mlserver = r.server == "mlserver"
        base_us = info.both_median_us if mlserver else info.proba_median_us
        overheads.append(
            {
                "server": r.server,
                "version": r.version,
                "p50_ms_1conn": r.p50_ms,
                "inprocess_median_ms": base_us / 1e3,
                "inprocess_call": "predict+predict_proba"
                if mlserver
                else "predict_proba",
                "view_p50_ms": r.view_p50_ms,
                "overhead_ms": r.p50_ms - base_us / 1e3,
            }
        )
    print()
    print(
        "Overhead = server p50 at 1 connection - in-process median "
        "(view ms: the server's own processing_time_ms, median):"
    )
    print(
        table(
            [
                "server",
                "version",
                "p50 ms",
                "in-proc ms",
                "in-proc call",
                "view ms",
                "overhead ms",
            ],
            [
                [
                    o["server"],
                    o["version"],
                    f"{o['p50_ms_1conn']:.3f}",
                    f"{o['inprocess_median_ms']:.3f}",
                    o["inprocess_call"],
                    "-" if o["view_p50_ms"] is None else f"{o['view_p50_ms']:.3f}",
                    f"{o['overhead_ms']:.3f}",
                ]
                for o in overheads
            ],
        )
    )
    medians = median_runs(runs)
    ratios = []
    for (server, version, conns), ours in medians.items():
        other = medians.get(("mlserver", version, conns))
        if server != "ours" or other is None:
            continue
        ratios.append(
            {
                "version": version,
                "conns": conns,
                "rps_ratio": ours["rps"] / other["rps"] if other["rps"] else None,
                "p99_ratio": ours["p99_ms"] / other["p99_ms"]
                if other["p99_ms"]
                else None,
            }
        )
    versus_before = before_ratios(runs, medians)
    if ratios:
        print()
        print(
            "Ours / MLServer, same run (req/s: >1 means ours is faster; "
            "p99: <1 means ours is lower):"
        )

        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}"

        print(
            table(
                ["version", "conns", "req/s ratio", "p99 ratio"],
                [
                    [
                        x["version"],
                        str(x["conns"]),
                        fmt(x["rps_ratio"]),
                        fmt(x["p99_ratio"]),
                    ]
                    for x in ratios
                ],
                left=1,
            )
        )
    if versus_before:
        print()
        print(
            f"Ours / before ({config['baseline']}), same run, medians over "
            f"{config['rounds']} round(s) (per-round req/s ratios in brackets):"
        )
        print(
            table(
                [
                    "version",
                    "conns",
                    "ours req/s",
                    "before req/s",
                    "req/s ratio",
                    "ours p99",
                    "before p99",
                    "rounds",
                ],
                [
                    [
                        x["version"],
                        str(x["conns"]),
                        f"{x['ours_rps']:,.0f}",
                        f"{x['before_rps']:,.0f}",
                        f"{x['rps_ratio']:.2f}",
                        f"{x['ours_p99_ms']:.2f}",
                        f"{x['before_p99_ms']:.2f}",
                        " ".join(f"{r:.2f}" for r in x["rps_ratio_by_round"]),
                    ]
                    for x in versus_before
                ],
                left=1,
            )
        )
    print()
    return {
        "config": config,
        "runs": [asdict(r) for r in runs],
        "inprocess": {v: asdict(i) for v, i in inproc.items()},
        "overhead": overheads,
        "medians": [
            {"server": k[0], "version": k[1], "conns": k[2], **v}
            for k, v in medians.items()
        ],
        "ratios_ours_over_mlserver": ratios,
        "ratios_ours_over_before": versus_before,
    }


def median_runs(runs: list[LoadRun]) -> dict[tuple, dict]:
    """(server, version, conns) -> median req/s and p99 over rounds."""
    grouped: dict[tuple, list[LoadRun]] = {}
    for r in runs:
        grouped.setdefault((r.server, r.version, r.conns), []).append(r)
    return {
        key: {
            "rps": statistics.median(r.rps for r in items),
            "p99_ms": statistics.median(r.p99_ms for r in items),
            "rounds": len(items),
        }
        for key, items in grouped.items()
    }


def before_ratios(runs: list[LoadRun], medians: dict[tuple, dict]) -> list[dict]:
    """Ours against the --baseline checkout: ratio of medians, and the
    ratio in each round."""
    by_round = {(r.server, r.version, r.conns, r.round): r for r in runs}
    found = []
    for (server, version, conns), ours in medians.items():
        before = medians.get(("before", version, conns))
        if server != "ours" or before is None:
            continue
        rounds = sorted(
            n for (s, v, c, n) in by_round if (s, v, c) == ("ours", version, conns)
        )
        found.append(
            {
                "version": version,
                "conns": conns,
                "ours_rps": ours["rps"],
                "before_rps": before["rps"],
                "rps_ratio": ours["rps"] / before["rps"],
                "ours_p99_ms": ours["p99_ms"],
                "before_p99_ms": before["p99_ms"],
                "rps_ratio_by_round": [
                    by_round[("ours", version, conns, n)].rps
                    / by_round[("before", version, conns, n)].rps
                    for n in rounds
                    if ("before", version, conns, n) in by_round
                ],
            }
        )
    return found


def rounded(value: object) -> object:
    """Floats rounded to 4 decimals, in nested dicts and lists."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


# --- main ------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--versions",
        default=ACTIVE_VERSION,
        help="comma-separated demo versions to load (v1.0, v2.0); default %(default)s",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="web workers (default 2)"
    )
    parser.add_argument(
        "--seconds", type=int, default=10, help="seconds per wrk run (10)"
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=None,
        help="in-process calls per measurement (default: about 3 s worth, 100 to 2000)",
    )
    parser.add_argument(
        "--cache",
        action="store_true",
        help="also measure with the prediction cache on (TTL 300 s)",
    )
    parser.add_argument(
        "--mlserver",
        action="store_true",
        help="also measure MLServer 1.7 on the same joblib files",
    )
    parser.add_argument(
        "--mlserver-parallel-workers",
        default="auto",
        help="MLServer parallel_workers: a number, or auto = 0 for models "
        "whose in-process predict_proba median is under 1 ms, else 2 (its "
        "fastest settings per the shared README); default auto",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=90,
        help="seconds to wait for our server's /health (90)",
    )
    parser.add_argument(
        "--mlserver-start-timeout",
        type=float,
        default=600,
        help="seconds to wait for MLServer, venv creation included (600)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another commit's checkout (with its .venv) to measure beside "
        "this one, labelled 'before'",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of ours (and before) runs, alternating; medians reported",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory"
    )
    args = parser.parse_args(argv)
    args.version_list = [v.strip() for v in args.versions.split(",") if v.strip()]
    if not args.version_list:
        parser.error("--versions is empty")
    if args.workers < 1 or args.seconds < 1 or args.rounds < 1:
        parser.error("--workers, --seconds and --rounds must be at least 1")
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        python = args.baseline / ".venv" / "bin" / "python"
        if not (args.baseline / "Procfile").is_file() or not python.exists():
            parser.error(
                f"--baseline {args.baseline}: needs a checkout with a Procfile "
                "and its .venv (run its ./test.sh --co -q once)"
            )
    if args.mlserver_parallel_workers != "auto" and not (
        args.mlserver_parallel_workers.isdigit()
    ):
        parser.error("--mlserver-parallel-workers takes auto or a number")
    return args


def run(args: argparse.Namespace, workdir: Path) -> dict:
    kit = shared_bench_dir()
    if not PYTHON.exists():
        raise BenchError(f"{PYTHON} not found: create the project venv first")
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    env = django_env(workdir, cache_ttl=0)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "bootstrap_demo")
    artifacts = {}
    for version in args.version_list:
        path = workdir / "artifacts" / f"model_{version}.pkl"
        if not path.is_file():
            raise BenchError(
                f"no artifact for {version} ({path.name}); bootstrap_demo "
                "makes v1.0 and v2.0"
            )
        artifacts[version] = path

    inproc = {v: in_process(v, path, args.calls) for v, path in artifacts.items()}

    common = {
        "versions": args.version_list,
        "workers": args.workers,
        "seconds": args.seconds,
        "start_timeout": args.start_timeout,
    }
    before_dir = None
    if args.baseline is not None:
        before_dir = workdir / "before"
        before_dir.mkdir()
        before_env = django_env(before_dir, cache_ttl=0, checkout=args.baseline)
        manage(before_env, "migrate", "--noinput", "-v0", checkout=args.baseline)
        manage(before_env, "bootstrap_demo", checkout=args.baseline)
    runs: list[LoadRun] = []
    for round_number in range(1, args.rounds + 1):
        log(f"round {round_number} of {args.rounds}")
        pair = [("ours", workdir, REPO)]
        if before_dir is not None:
            pair.append(("before", before_dir, args.baseline))
        if round_number % 2 == 0:
            pair.reverse()  # neither goes first every time
        for label, directory, checkout in pair:
            new = bench_ours(
                kit, directory, label=label, cache_ttl=0, checkout=checkout, **common
            )
            for item in new:
                item.round = round_number
            runs += new
    if args.cache:
        runs += bench_ours(kit, workdir, label="ours+cache", cache_ttl=300, **common)
    mlserver_workers = {}
    if args.mlserver:
        for version, path in artifacts.items():
            if args.mlserver_parallel_workers == "auto":
                slow = inproc[version].proba_median_us >= 1000
                workers = 2 if slow else 0
            else:
                workers = int(args.mlserver_parallel_workers)
            mlserver_workers[version] = workers
            runs += bench_mlserver(
                kit,
                workdir,
                version=version,
                artifact=path,
                parallel_workers=workers,
                seconds=args.seconds,
                start_timeout=args.mlserver_start_timeout,
            )
    config = {
        "versions": args.version_list,
        "workers": args.workers,
        "seconds": args.seconds,
        "connections": list(CONNECTIONS),
        "prediction_cache_ttl": 0,
        "cache_run": args.cache,
        "mlserver": args.mlserver,
        "baseline": str(args.baseline) if args.baseline else None,
        "rounds": args.rounds,
        "mlserver_parallel_workers": mlserver_workers,
        "cpus": os.cpu_count(),
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "features": FEATURES,
    }
    return report(runs, inproc, config)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    log(f"working directory {workdir}")
    keep = args.keep
    try:
        result = run(args, workdir)
    except BenchError as exc:
        print(f"predict_bench: error: {exc}", file=sys.stderr)
        keep = True  # logs and database, for a look
        return 1
    except KeyboardInterrupt:
        print("predict_bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("BENCHJSON " + json.dumps(rounded(result), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
