"""Issue 11's speed figures from one run: our /predict against MLServer,
against a bare Django view (the framework ceiling) and against the
in-process runtime call; every ratio; the issue's targets, PASS or FAIL.

What one run does, all inside a fresh temporary directory (its own VAR_DIR,
SQLite database and ARTIFACTS_ROOT; the repository's var/ and artifacts/
are never touched):

1. Trains LogisticRegression (max_iter 1000), RandomForest (100 trees,
   depth 10) and HistGradientBoosting on ``registry.demo.demo_dataset()``
   (10 features), joblib-dumps them, ``manage.py migrate`` and
   ``manage.py register_model`` each as its own model (lr, rf, hgb; v1,
   activated). lr also gets a v2 (C=0.5) and a running experiment, v1
   against v2 at 50/50, so lr's /predict runs the full path: monitoring on
   (with the Procfile's ingest process) and an experiment assigning arms.
   Request bodies: ``{"model": NAME, "features": ...}`` with the first row,
   or the first 32 rows, of the held-out data.
2. In-process: the project's runtimes (``registry.runtimes``), scikit-learn
   on the joblib bytes and ONNX Runtime on the ONNX conversion, ``infer``
   on 1 and 32 float64 rows: median and p99 in µs.
3. Our server, the Procfile's web role with 2 workers plus its ingest
   process, DEBUG off, prediction cache off (every request runs the
   model), in five configurations, each a fresh server on its own copy of
   the database: the defaults (MODEL_RUNTIME and BATCHING unset: "ours"
   for the MLServer targets), and MODEL_RUNTIME sklearn / onnx with
   BATCHING off / on. wrk (``wrk_post.sh``) at 1, 16 and 64 connections,
   per model and body size. Each version's effective runtime is read from
   /models.
4. MLServer 1.7 serving the same joblib files (``mlserver_serve.sh``, one
   server per model; parallel_workers 2 for the forest, else 0, its
   fastest settings per predict_bench's rule), Open Inference Protocol
   bodies from ``v2_body.py 10`` and ``v2_body.py 10 32``, same loads.
   ``--no-mlserver`` skips it.
5. The bare Django view, the framework ceiling (bench/bare_django: no
   apps, no middleware, no database, one view that parses the body and
   calls the same runtime class), with each runtime, same loads and
   bodies, 2 worker processes. Served by granian's WSGI interface (one
   thread per worker, as front_bench measured best): Django's ASGI handler
   starts a thread for every request (asgiref's ThreadSensitiveContext,
   then response.close() through sync_to_async), 1.7 ms per request
   in-process against 0.2 ms through its WSGI handler for the
   LogisticRegression, so under ASGI it is no ceiling.
   ``--bare-server uvicorn-asgi`` measures it that way anyway (uvicorn,
   uvloop, httptools, one SO_REUSEPORT socket per worker, as ours).

It prints the load runs, the in-process timings, the ratios (ours/MLServer,
ours/bare view, batching on/off, onnx/sklearn, p50 at one connection minus
the in-process median) and the targets with PASS or FAIL; writes all of it
(wrk's raw output included) as JSON to ``--json`` (default
bench/results/speed.json) and ends with ``BENCHJSON {...}``. It fails (exit
1) only when it cannot measure, never on a target.

With the defaults (4 s per load, three models) a run took 17 minutes:
144 wrk runs of 4 s plus wrk's 1 s warm-up each, 10 server starts,
training, registration (with the ONNX conversion) and the in-process
timings. These machines are shared (2 CPUs, wrk pinned
to CPU 1, servers not): compare figures of one run, as ratios.

Usage (from the repository root)::

    .venv/bin/python bench/speed_bench.py
    .venv/bin/python bench/speed_bench.py --seconds 10 --json /tmp/speed.json
    .venv/bin/python bench/speed_bench.py --seconds 1 --only lr --no-mlserver

The load tools come from ``<repo>/../shared/bench`` (override with
``SHARED_BENCH_DIR``). MLServer's first start creates /tmp/mlserver-venv
(minutes).
"""

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import predict_bench as pb

REPO = pb.REPO
HOST = pb.HOST
WORKERS = 2
MODELS = ("lr", "rf", "hgb")
MODEL_TITLES = {
    "lr": "LogisticRegression",
    "rf": "RandomForest",
    "hgb": "HistGradientBoosting",
}
ROWS = (1, 32)
CONNECTIONS = (1, 16, 64)
RUNTIMES = ("sklearn", "onnx")
VERSION = "v1"
EXPERIMENT_MODEL = "lr"  # gets a v2 and a running 50/50 experiment
DEFAULT_JSON = REPO / "bench" / "results" / "speed.json"
# Our server's configurations: (MODEL_RUNTIME, BATCHING); "auto" = unset,
# the default. The first is "ours" in the MLServer targets.
OURS_CONFIGS = (
    ("auto", "auto"),
    ("sklearn", "off"),
    ("sklearn", "on"),
    ("onnx", "off"),
    ("onnx", "on"),
)
# The caller's values of these must not leak into a configuration.
SERVING_KEYS = ("MODEL_RUNTIME", "BATCHING", "BATCH_MAX_ROWS")
# MLServer's parallel_workers: predict_bench's rule (2 for models over 1 ms
# in-process, else 0; the shared kit's README measured both ends) applied
# to figures of a quiet machine: lr 0.12 ms, rf 5.3 ms, hgb 0.76 ms. Not
# measured per run: HistGradientBoosting's OpenMP threads made its call
# take up to 1.15 s on a busy machine, and MLServer with 2 parallel
# workers then answered no HistGradientBoosting request at 16 connections.
MLSERVER_PARALLEL_WORKERS = {"lr": 0, "rf": 2, "hgb": 0}
# One connection: our p50 may exceed the in-process call by this much.
OVERHEAD_BUDGET_MS = 0.3

log = pb.log


@dataclass
class Run:
    server: str  # ours | bare | mlserver
    runtime: str  # auto | sklearn | onnx (MLServer: its scikit-learn runtime)
    batching: str  # auto | off | on; "-" for the others
    model: str
    rows: int
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


@dataclass
class Timing:
    model: str
    runtime: str
    rows: int
    calls: int
    median_us: float
    p99_us: float


@dataclass
class ModelFiles:
    name: str
    model_type: str
    joblib: Path
    onnx: Path | None
    onnx_detail: str  # the conversion's validation, or why it was refused

    def file(self, runtime: str) -> Path | None:
        return self.joblib if runtime == "sklearn" else self.onnx


# --- models ------------------------------------------------------------------


def estimators() -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "lr": LogisticRegression(max_iter=1000),
        "rf": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=42),
        "hgb": HistGradientBoostingClassifier(random_state=42),
    }


def onnx_payload(estimator, sample) -> tuple[bytes | None, str]:
    """The registry's ONNX conversion (what registration stores), or None
    and the reason it refused; the validation's detail."""
    from registry.compile import CompileRefused, onnx_compile

    try:
        compiled = onnx_compile(estimator, n_features=sample.shape[1], sample=sample)
    except CompileRefused as refused:
        return None, f"refused: {refused.reason}"
    return compiled.payload, compiled.detail


def train(workdir: Path, names: list[str]) -> tuple[dict[str, ModelFiles], object]:
    """Fit, dump and convert each model (and lr's v2); the files, and the
    held-out rows the request bodies use."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from registry.demo import demo_dataset

    X_train, X_test, y_train, y_test = demo_dataset()
    folder = workdir / "models"
    folder.mkdir()
    files = {}
    for name, estimator in estimators().items():
        if name not in names:
            continue
        started = time.perf_counter()
        estimator.fit(X_train, y_train)
        accuracy = estimator.score(X_test, y_test)
        path = folder / f"{name}_{VERSION}.joblib"
        joblib.dump(estimator, path)
        payload, detail = onnx_payload(estimator, X_test[:256])
        onnx_path = None
        if payload is not None:
            onnx_path = folder / f"{name}_{VERSION}.onnx"
            onnx_path.write_bytes(payload)
        log(
            f"trained {name} ({type(estimator).__name__}, held-out accuracy "
            f"{accuracy:.3f}) in {time.perf_counter() - started:.1f} s; ONNX: "
            f"{detail}"
        )
        files[name] = ModelFiles(
            name, type(estimator).__name__, path, onnx_path, detail
        )
    if EXPERIMENT_MODEL in names:
        second = LogisticRegression(C=0.5, max_iter=1000).fit(X_train, y_train)
        joblib.dump(second, folder / f"{EXPERIMENT_MODEL}_v2.joblib")
    return files, X_test


def setup_registry(env: dict[str, str], workdir: Path, names: list[str]) -> None:
    pb.manage(env, "migrate", "--noinput", "-v0")
    folder = workdir / "models"
    for name in names:
        path = folder / f"{name}_{VERSION}.joblib"
        pb.manage(
            env, "register_model", str(path), "--name", name, "--version", VERSION,
            "--activate",
        )  # fmt: skip
    if EXPERIMENT_MODEL not in names:
        return
    path = folder / f"{EXPERIMENT_MODEL}_v2.joblib"
    pb.manage(
        env, "register_model", str(path), "--name", EXPERIMENT_MODEL, "--version",
        "v2",
    )  # fmt: skip
    script = (
        "from experiments.services.configure import ab_test_configure\n"
        "from registry.selectors import model_get, model_version_get\n"
        f"model = model_get(name={EXPERIMENT_MODEL!r})\n"
        "versions = [model_version_get(model=model, version=v) "
        f"for v in ({VERSION!r}, 'v2')]\n"
        "ab_test_configure(model=model, enabled=True, split_ratio=0.5, "
        "versions=versions, reason='speed_bench')\n"
    )
    pb.manage(env, "shell", "-c", script)


def write_bodies(workdir: Path, names: list[str], X_test, kit: Path) -> Path:
    folder = workdir / "bodies"
    folder.mkdir()
    for name in names:
        for rows in ROWS:
            features = X_test[:rows].tolist()
            body = {"model": name, "features": features[0] if rows == 1 else features}
            (folder / f"{name}_{rows}.json").write_text(json.dumps(body))
    for rows in ROWS:
        result = subprocess.run(
            [str(pb.PYTHON), str(kit / "v2_body.py"), "10", str(rows)],
            capture_output=True,
            text=True,
            check=True,
        )
        (folder / f"v2_{rows}.json").write_text(result.stdout)
    return folder


# --- in-process ----------------------------------------------------------------


def in_process(
    files: dict[str, ModelFiles], X_test, runtimes: list[str]
) -> list[Timing]:
    """The runtime's infer() on 1 and 32 float64 rows, about a second of
    calls each (20 to 2000) after up to 20 warm-up calls."""
    import numpy as np

    from registry.runtimes import runtime_class

    timings = []
    for name, model in files.items():
        for runtime_name in runtimes:
            path = model.file(runtime_name)
            if path is None:
                continue
            runtime = runtime_class(runtime_name)(path.read_bytes())
            runtime.load()
            for rows in ROWS:
                batch = np.asarray(X_test[:rows], dtype=np.float64)
                started, calls = time.perf_counter(), 0
                while calls < 20 and (calls < 3 or time.perf_counter() - started < 1):
                    runtime.infer(batch)
                    calls += 1
                each = (time.perf_counter() - started) / calls
                count = max(20, min(2000, int(1.0 / max(each, 1e-7))))
                median, p99 = pb.time_calls(lambda: runtime.infer(batch), count)  # noqa: B023
                timings.append(Timing(name, runtime_name, rows, count, median, p99))
                log(
                    f"in-process {name} {runtime_name} {rows} row(s): median "
                    f"{median:,.1f} µs, p99 {p99:,.1f} µs ({count} calls)"
                )
            runtime.unload()
    return timings


# --- servers -------------------------------------------------------------------


def listeners(port: int) -> int:
    """Listening TCP sockets on 127.0.0.1:port (one per worker that has
    bound its SO_REUSEPORT socket)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            count += 1
    return count


def wait_listeners(server: pb.Server, port: int, timeout: float) -> None:
    """Until every worker listens: a worker binds after loading its models,
    and a connection made before it binds stays with the other one."""
    deadline = time.monotonic() + timeout
    while listeners(port) < WORKERS:
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise pb.BenchError(
                f"{server.name}: {listeners(port)} of {WORKERS} workers listen "
                f"on port {port}. Last lines of {server.log_path}:\n"
                f"{pb.tail(server.log_path)}"
            )
        time.sleep(0.2)


def warm_up(url: str, body: Path, *, check_cache: bool) -> dict:
    """New connections (they spread over the workers), each must answer 200;
    the last answer."""
    content = body.read_bytes()
    for _ in range(4 * WORKERS):
        response = httpx.post(
            url,
            content=content,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        if response.status_code != 200:
            raise pb.BenchError(
                f"warm-up POST {url} ({body.name}) answered "
                f"{response.status_code}: {response.text[:500]}"
            )
        answer = response.json()
        if check_cache and answer.get("cached"):
            raise pb.BenchError(f"prediction cache is on although TTL=0: {answer}")
    return answer


def load_runs(
    kit: Path,
    *,
    server: str,
    runtime: str,
    batching: str,
    model: str,
    rows: int,
    url: str,
    body: Path,
    seconds: int,
) -> list[Run]:
    runs = []
    for conns in CONNECTIONS:
        raw = pb.wrk(kit, url=url, body=body, conns=conns, seconds=seconds)
        run = Run(
            server=server,
            runtime=runtime,
            batching=batching,
            model=model,
            rows=rows,
            conns=conns,
            seconds=seconds,
            rps=float(raw["rps"]),
            p50_ms=float(raw["p50_ms"]),
            p90_ms=float(raw["p90_ms"]),
            p99_ms=float(raw["p99_ms"]),
            max_ms=float(raw["max_ms"]),
            errors=sum(int(v) for k, v in raw.items() if k.startswith("err_")),
            requests=int(raw["requests"]),
            raw=raw,
        )
        log(
            f"wrk {server} {runtime}/{batching} {model} {rows} row(s) {conns} "
            f"conn(s): {run.rps:,.0f} req/s, p50 {run.p50_ms:.2f} ms, p99 "
            f"{run.p99_ms:.2f} ms, errors {run.errors}"
        )
        runs.append(run)
    return runs


def clean_env() -> dict[str, str]:
    """The caller's environment without what this process's Django setup
    left in it (see run())."""
    env = pb.base_env()
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def ours_env(base: dict[str, str], var: Path, runtime: str, batching: str) -> dict:
    env = {k: v for k, v in base.items() if k not in SERVING_KEYS}
    env.update(
        {
            "VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
            "PROMETHEUS_MULTIPROC_DIR": str(var / "prometheus"),
            "EVENT_INGEST_SOCKET": str(var / "ingest.sock"),
            "MONITORING_ENABLED": "true",
        }
    )
    if runtime != "auto":
        env["MODEL_RUNTIME"] = runtime
    if batching != "auto":
        env["BATCHING"] = batching
    return env


def effective_runtimes(base: str, names: list[str]) -> dict[str, dict[str, str]]:
    """model -> version -> the runtime /models says serves it."""
    found = {}
    for name in names:
        response = httpx.get(f"{base}/models", params={"model": name}, timeout=30)
        response.raise_for_status()
        found[name] = {
            v["version"]: v["serving_runtime"] for v in response.json()["models"]
        }
    return found


def bench_ours(
    kit: Path,
    workdir: Path,
    env: dict[str, str],
    bodies: Path,
    *,
    runtime: str,
    batching: str,
    names: list[str],
    seconds: int,
    start_timeout: float,
) -> tuple[list[Run], dict]:
    """One fresh server (web workers and the ingest process) on its own
    copy of the database; every model, body and connection count."""
    label = f"ours-{runtime}-{batching}"
    var = workdir / label / "var"
    var.mkdir(parents=True)
    shutil.copy(workdir / "var" / "db.sqlite3", var / "db.sqlite3")
    port = pb.free_ports()
    web = shlex.join(pb.web_command(port, WORKERS))
    ingest = f"{shlex.quote(str(pb.PYTHON))} manage.py ingest_events"
    command = ["bash", "-c", f"{ingest} & exec {web}"]
    server = pb.Server(
        label,
        command,
        env=ours_env(env, var, runtime, batching),
        cwd=REPO,
        log_path=workdir / f"{label}.log",
    )
    base = f"http://{HOST}:{port}"
    runs: list[Run] = []
    with pb.running(server):
        server.wait_ready(f"{base}/health", timeout=start_timeout)
        wait_listeners(server, port, start_timeout)
        serving = effective_runtimes(base, names)
        log(f"{label} ready on port {port}; runtimes {serving}")
        for name in names:
            for rows in ROWS:
                body = bodies / f"{name}_{rows}.json"
                answer = warm_up(f"{base}/predict", body, check_cache=True)
                log(f"warm-up {label} {name}: {json.dumps(answer)[:300]}")
                runs += load_runs(
                    kit,
                    server="ours",
                    runtime=runtime,
                    batching=batching,
                    model=name,
                    rows=rows,
                    url=f"{base}/predict",
                    body=body,
                    seconds=seconds,
                )
        MEMORY[label] = worker_rss_mb(port)
        log(
            f"{label}: RSS per web worker (MB), all three models loaded: {MEMORY[label]}"
        )
    return runs, serving


# RSS of each web worker (MB) after its runs, by server label.
MEMORY: dict[str, list[float]] = {}


def worker_rss_mb(port: int) -> list[float]:
    """Resident memory of the web workers serving `port` (their command
    line names it), each with every model loaded by then."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        cmdline = process.info["cmdline"] or []
        if "mlserving.serve" in cmdline and str(port) in cmdline:
            found.append(round(process.info["memory_info"].rss / 2**20, 1))
    return sorted(found)


def bare_command(kind: str, port: int) -> list[str]:
    """The bare project's server: granian's WSGI interface (Django's
    fastest way to serve a view), or uvicorn workers as ours."""
    python = str(pb.PYTHON)
    if kind == "uvicorn-asgi":
        worker = shlex.join(
            [python, "-m", "bench.bare_django.serve", "--port", str(port)]
        )
        return ["/bin/sh", "-c", " ".join([f"{worker} &"] * WORKERS) + " wait"]
    # front_bench's granian WSGI flags: one thread per worker, which beat
    # eight there.
    return [
        python, "-m", "granian", "--host", HOST, "--port", str(port),
        "--workers", str(WORKERS), "--no-access-log", "--interface", "wsgi",
        "--runtime-mode", "st", "--blocking-threads", "1", "--backpressure",
        "100", "bench.bare_django.wsgi:application",
    ]  # fmt: skip


def wait_workers(server: pb.Server, url: str, timeout: float) -> None:
    """Until every worker has answered (GET tells the pid), each request
    on a new connection."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while len(seen) < WORKERS:
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise pb.BenchError(
                f"{server.name}: {len(seen)} of {WORKERS} workers answered. "
                f"Last lines of {server.log_path}:\n{pb.tail(server.log_path)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            seen.add(httpx.get(url, timeout=5).json()["pid"])
        time.sleep(0.05)


def bench_bare(
    kit: Path,
    workdir: Path,
    files: dict[str, ModelFiles],
    bodies: Path,
    *,
    runtime: str,
    server_kind: str,
    seconds: int,
    start_timeout: float,
) -> list[Run]:
    label = f"bare-{runtime}"
    served = {m.name: m.file(runtime) for m in files.values() if m.file(runtime)}
    port = pb.free_ports()
    env = clean_env()
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.bare_django.settings",
            "PATH": f"{pb.VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "BARE_RUNTIME": runtime,
            "BARE_MODELS": ",".join(f"{k}={v}" for k, v in served.items()),
        }
    )
    command = bare_command(server_kind, port)
    server = pb.Server(
        label, command, env=env, cwd=REPO, log_path=workdir / f"{label}.log"
    )
    url = f"http://{HOST}:{port}/predict"
    runs: list[Run] = []
    with pb.running(server):
        server.wait_ready(url, timeout=start_timeout)
        wait_workers(server, url, start_timeout)
        log(f"{label} ({server_kind}) ready on port {port}")
        for name in served:
            for rows in ROWS:
                body = bodies / f"{name}_{rows}.json"
                warm_up(url, body, check_cache=False)
                runs += load_runs(
                    kit,
                    server="bare",
                    runtime=runtime,
                    batching="-",
                    model=name,
                    rows=rows,
                    url=url,
                    body=body,
                    seconds=seconds,
                )
    return runs


def bench_mlserver(
    kit: Path,
    workdir: Path,
    model: ModelFiles,
    bodies: Path,
    *,
    parallel_workers: int,
    seconds: int,
    start_timeout: float,
) -> list[Run]:
    # A name unique to this run: it finds the model repository that
    # mlserver_serve.sh makes under /tmp, to remove it.
    name = f"speed{os.getpid()}{model.name}"
    port = pb.free_ports(3)  # HTTP, gRPC, metrics
    env = clean_env()
    env["MLSERVER_PARALLEL_WORKERS"] = str(parallel_workers)
    server = pb.Server(
        f"mlserver-{model.name}",
        ["bash", str(kit / "mlserver_serve.sh"), str(port), f"{name}={model.joblib}"],
        env=env,
        cwd=workdir,
        log_path=workdir / f"mlserver_{model.name}.log",
    )
    base = f"http://{HOST}:{port}"
    runs: list[Run] = []
    try:
        with pb.running(server):
            server.wait_ready(
                f"{base}/v2/models/{name}/ready",
                timeout=start_timeout,
                progress=lambda s: log(f"  still waiting for MLServer ({s:.0f} s)"),
            )
            log(
                f"MLServer ready on port {port} ({model.name}, parallel_workers "
                f"{parallel_workers})"
            )
            url = f"{base}/v2/models/{name}/infer"
            for rows in ROWS:
                body = bodies / f"v2_{rows}.json"
                pb.warm_up_mlserver(url, body)
                runs += load_runs(
                    kit,
                    server="mlserver",
                    runtime="sklearn",
                    batching="-",
                    model=model.name,
                    rows=rows,
                    url=url,
                    body=body,
                    seconds=seconds,
                )
    finally:
        pb.remove_mlserver_repos(name)
    return runs


# --- analysis ------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def analyse(
    runs: list[Run],
    timings: list[Timing],
    serving: dict[str, dict],
    names: list[str],
) -> tuple[dict, list[dict]]:
    """Every ratio, and the targets."""
    by = {(r.server, r.runtime, r.batching, r.model, r.rows, r.conns): r for r in runs}
    inproc = {(t.model, t.runtime, t.rows): t for t in timings}

    def get(*key):
        return by.get(key)

    def effective(config: str, model: str) -> str | None:
        """The runtime the active version ran on under a configuration."""
        versions = serving.get(config, {}).get(model, {})
        return versions.get(VERSION)

    cells = [(m, rows, c) for m in names for rows in ROWS for c in CONNECTIONS]
    ours_configs = list(OURS_CONFIGS)
    ratios: dict[str, list[dict]] = {
        "ours_over_mlserver": [],
        "ours_over_bare": [],
        "batching_on_over_off": [],
        "onnx_over_sklearn": [],
        "p50_minus_inprocess_ms": [],
        "inprocess_sklearn_over_onnx": [],
    }
    for m, rows, c in cells:
        mls = get("mlserver", "sklearn", "-", m, rows, c)
        for rt, b in ours_configs:
            ours = get("ours", rt, b, m, rows, c)
            if ours is None:
                continue
            if mls is not None:
                ratios["ours_over_mlserver"].append(
                    {
                        "runtime": rt,
                        "batching": b,
                        "model": m,
                        "rows": rows,
                        "conns": c,
                        "rps_ratio": ratio(ours.rps, mls.rps),
                        "p99_ratio": ratio(ours.p99_ms, mls.p99_ms),
                    }
                )
            bare_rt = effective(f"{rt}-{b}", m) or rt
            bare = get("bare", bare_rt, "-", m, rows, c)
            if bare is not None:
                ratios["ours_over_bare"].append(
                    {
                        "runtime": rt,
                        "batching": b,
                        "bare_runtime": bare_rt,
                        "model": m,
                        "rows": rows,
                        "conns": c,
                        "rps_ratio": ratio(ours.rps, bare.rps),
                        "p99_ratio": ratio(ours.p99_ms, bare.p99_ms),
                    }
                )
        for rt in RUNTIMES:
            on, off = (
                get("ours", rt, "on", m, rows, c),
                get("ours", rt, "off", m, rows, c),
            )
            if on is not None and off is not None:
                ratios["batching_on_over_off"].append(
                    {
                        "runtime": rt,
                        "model": m,
                        "rows": rows,
                        "conns": c,
                        "rps_ratio": ratio(on.rps, off.rps),
                        "p99_ratio": ratio(on.p99_ms, off.p99_ms),
                    }
                )
        for server, b in (("ours", "off"), ("ours", "on"), ("bare", "-")):
            onnx = get(server, "onnx", b, m, rows, c)
            sk = get(server, "sklearn", b, m, rows, c)
            if onnx is not None and sk is not None:
                ratios["onnx_over_sklearn"].append(
                    {
                        "server": server,
                        "batching": b,
                        "model": m,
                        "rows": rows,
                        "conns": c,
                        "rps_ratio": ratio(onnx.rps, sk.rps),
                        "p99_ratio": ratio(onnx.p99_ms, sk.p99_ms),
                    }
                )
    for m in names:
        for rows in ROWS:
            sk, onnx = inproc.get((m, "sklearn", rows)), inproc.get((m, "onnx", rows))
            if sk is not None and onnx is not None:
                ratios["inprocess_sklearn_over_onnx"].append(
                    {
                        "model": m,
                        "rows": rows,
                        "median_ratio": ratio(sk.median_us, onnx.median_us),
                    }
                )
            servers = [("ours", rt, b) for rt, b in ours_configs]
            servers += [("bare", rt, "-") for rt in RUNTIMES]
            for server, rt, b in servers:
                run = get(server, rt, b, m, rows, 1)
                used = (effective(f"{rt}-{b}", m) if server == "ours" else rt) or rt
                base = inproc.get((m, used, rows))
                if run is None or base is None:
                    continue
                ratios["p50_minus_inprocess_ms"].append(
                    {
                        "server": server,
                        "runtime": rt,
                        "batching": b,
                        "inprocess_runtime": used,
                        "model": m,
                        "rows": rows,
                        "p50_ms": run.p50_ms,
                        "inprocess_median_ms": base.median_us / 1e3,
                        "difference_ms": run.p50_ms - base.median_us / 1e3,
                    }
                )
    return ratios, targets(get, inproc, effective)


def targets(get, inproc, effective) -> list[dict]:
    """Issue 11's targets; one row per request, "ours" = the defaults."""
    found = []

    def add(ident, text, value, shown, passed):
        found.append(
            {
                "id": ident,
                "target": text,
                "value": value,
                "measured": shown if value is not None else "not measured",
                "result": "n/a" if value is None else ("PASS" if passed else "FAIL"),
            }
        )

    def versus_mlserver(model, conns):
        ours = get("ours", "auto", "auto", model, 1, conns)
        mls = get("mlserver", "sklearn", "-", model, 1, conns)
        if ours is None or mls is None or not mls.requests:
            # not measured, or MLServer answered nothing (see the load runs)
            return None, None
        return ratio(ours.rps, mls.rps), ratio(ours.p99_ms, mls.p99_ms)

    rps, p99 = versus_mlserver("rf", 16)
    add(
        "1a", "RandomForest, 16 conns: ours >= 15x MLServer's req/s", rps,
        f"{rps or 0:.2f}x", rps is not None and rps >= 15,
    )  # fmt: skip
    add(
        "1b", "RandomForest, 16 conns: ours p99 <= 1/10 of MLServer's", p99,
        f"{p99 or 0:.3f}x", p99 is not None and p99 <= 0.1,
    )  # fmt: skip
    rps, _ = versus_mlserver("hgb", 16)
    add(
        "2", "HistGradientBoosting, 16 conns: ours >= 10x MLServer's req/s", rps,
        f"{rps or 0:.2f}x", rps is not None and rps >= 10,
    )  # fmt: skip
    rps, _ = versus_mlserver("lr", 16)
    add(
        "3a", "LogisticRegression, 16 conns: ours >= 3x MLServer's req/s", rps,
        f"{rps or 0:.2f}x", rps is not None and rps >= 3,
    )  # fmt: skip
    _, p99 = versus_mlserver("lr", 1)
    add(
        "3b", "LogisticRegression, 1 conn: ours p99 <= MLServer's", p99,
        f"{p99 or 0:.3f}x", p99 is not None and p99 <= 1,
    )  # fmt: skip
    used = effective("auto-auto", EXPERIMENT_MODEL)
    ours = get("ours", "auto", "auto", EXPERIMENT_MODEL, 1, 16)
    bare = get("bare", used, "-", EXPERIMENT_MODEL, 1, 16)
    share = ratio(ours.rps, bare.rps) if ours and bare else None
    add(
        "4",
        f"{MODEL_TITLES[EXPERIMENT_MODEL]} (monitoring on, experiment running), "
        f"16 conns: ours >= 85% of the bare Django view's req/s ({used or '?'})",
        share,
        f"{(share or 0) * 100:.0f}%",
        share is not None and share >= 0.85,
    )
    for model in MODEL_TITLES:
        used = effective("auto-auto", model)
        run = get("ours", "auto", "auto", model, 1, 1)
        base = inproc.get((model, used, 1))
        extra = run.p50_ms - base.median_us / 1e3 if run and base else None
        add(
            f"5{model}",
            f"{MODEL_TITLES[model]}, 1 conn: ours p50 <= in-process {used or '?'} "
            f"infer + {OVERHEAD_BUDGET_MS} ms",
            extra,
            f"{extra or 0:+.3f} ms",
            extra is not None and extra <= OVERHEAD_BUDGET_MS,
        )
    on = get("ours", "sklearn", "on", "rf", 1, 64)
    off = get("ours", "sklearn", "off", "rf", 1, 64)
    gain = ratio(on.rps, off.rps) if on and off else None
    add(
        "6", "RandomForest, sklearn, 64 conns: batching on >= 3x batching off",
        gain, f"{gain or 0:.2f}x", gain is not None and gain >= 3,
    )  # fmt: skip
    return found


# --- report --------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def runtime_label(run: Run, serving: dict) -> str:
    """Ours: the configured runtime, and the one that served v1 when that
    differs (auto, or an ONNX conversion that was refused)."""
    if run.server != "ours":
        return run.runtime
    config = serving.get(f"{run.runtime}-{run.batching}", {})
    used = config.get(run.model, {}).get(VERSION)
    return f"{run.runtime} ({used})" if used and used != run.runtime else run.runtime


def report(result: dict, runs: list[Run], timings: list[Timing]) -> None:
    config, serving, ratios = result["config"], result["serving"], result["ratios"]
    print()
    print(
        f"Load runs: {WORKERS} server processes, {config['seconds']} s per run, "
        f"wrk 1 thread on CPU 1, {config['cpus']} CPUs, load avg before "
        f"{config['loadavg_before']}, after {config['loadavg_after']}"
    )
    for label, sizes in config.get("rss_mb_per_web_worker", {}).items():
        print(f"RSS per web worker, three models loaded, {label}: {sizes} MB")
    print()
    print(
        pb.table(
            ["server", "runtime", "batching", "model", "rows", "conns", "req/s"]
            + ["p50 ms", "p99 ms", "errors"],
            [
                [
                    r.server,
                    runtime_label(r, serving),
                    r.batching,
                    r.model,
                    str(r.rows),
                    str(r.conns),
                    f"{r.rps:,.0f}",
                    f"{r.p50_ms:.2f}",
                    f"{r.p99_ms:.2f}",
                    str(r.errors),
                ]
                for r in runs
            ],
            left=4,
        )
    )
    print()
    print("In-process, the project's runtime classes, infer() on float64 rows (µs):")
    print(
        pb.table(
            ["model", "runtime", "rows", "calls", "median", "p99"],
            [
                [
                    t.model,
                    t.runtime,
                    str(t.rows),
                    str(t.calls),
                    f"{t.median_us:,.1f}",
                    f"{t.p99_us:,.1f}",
                ]
                for t in timings
            ],
        )
    )
    print_ratios(ratios, config["models"])
    print()
    print("Targets (one row per request; ours = the default configuration):")
    print(
        pb.table(
            ["id", "target", "measured", "result"],
            [
                [t["id"], t["target"], t["measured"], t["result"]]
                for t in result["targets"]
            ],
        )
    )


def print_ratios(ratios: dict, names: list[str]) -> None:
    def index(kind: str, *keys: str) -> dict:
        return {tuple(x[k] for k in keys): x for x in ratios[kind]}

    mls = index("ours_over_mlserver", "runtime", "batching", "model", "rows", "conns")
    bare = index("ours_over_bare", "runtime", "batching", "model", "rows", "conns")
    batch = index("batching_on_over_off", "runtime", "model", "rows", "conns")
    onnx = index("onnx_over_sklearn", "server", "batching", "model", "rows", "conns")

    def cell(table: dict, key: tuple, name: str = "rps_ratio", spec=".2f") -> str:
        item = table.get(key)
        return fmt(item[name] if item else None, spec)

    rows = []
    for m in names:
        for n in ROWS:
            for c in CONNECTIONS:
                rows.append(
                    [
                        m,
                        str(n),
                        str(c),
                        cell(mls, ("auto", "auto", m, n, c)),
                        cell(mls, ("auto", "auto", m, n, c), "p99_ratio", ".3f"),
                        cell(bare, ("auto", "auto", m, n, c)),
                        cell(bare, ("sklearn", "off", m, n, c)),
                        cell(bare, ("onnx", "off", m, n, c)),
                        cell(batch, ("sklearn", m, n, c)),
                        cell(batch, ("onnx", m, n, c)),
                        cell(onnx, ("ours", "off", m, n, c)),
                        cell(onnx, ("bare", "-", m, n, c)),
                    ]
                )
    print()
    print(
        "Ratios of req/s (p99 where said), same run. ours = the defaults; "
        "/bare = over the bare Django view on the same runtime; sk = "
        "scikit-learn; on/off = batching; onnx/sk with batching off:"
    )
    print(
        pb.table(
            ["model", "rows", "conns", "ours/MLS", "p99 ours/MLS", "ours/bare"]
            + ["sk off/bare", "onnx off/bare", "on/off sk", "on/off onnx"]
            + ["onnx/sk ours", "onnx/sk bare"],
            rows,
            left=1,
        )
    )
    diffs = index(
        "p50_minus_inprocess_ms", "server", "runtime", "batching", "model", "rows"
    )
    inproc = {
        (x["model"], x["rows"]): x["median_ratio"]
        for x in ratios["inprocess_sklearn_over_onnx"]
    }
    servers = [("ours", rt, b) for rt, b in OURS_CONFIGS]
    servers += [("bare", rt, "-") for rt in RUNTIMES]
    headers = ["model", "rows", "in-proc sk/onnx"] + [
        "ours" if rt == "auto" else f"{rt} {b}" if s == "ours" else f"bare {rt}"
        for s, rt, b in servers
    ]
    print()
    print(
        "One connection: p50 minus the in-process median of the runtime that "
        "served (ms); in-proc sk/onnx = scikit-learn's median over ONNX "
        "Runtime's:"
    )
    print(
        pb.table(
            headers,
            [
                [m, str(n), fmt(inproc.get((m, n)), ".1f")]
                + [
                    fmt(
                        (diffs.get((s, rt, b, m, n)) or {}).get("difference_ms"),
                        ".3f",
                    )
                    for s, rt, b in servers
                ]
                for m in names
                for n in ROWS
            ],
            left=1,
        )
    )


# --- main ----------------------------------------------------------------------


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seconds", type=int, default=4, help="seconds per wrk run (4)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help="where to write the results (default bench/results/speed.json)",
    )
    parser.add_argument(
        "--only",
        default=",".join(MODELS),
        help="comma-separated models among lr, rf, hgb (default all)",
    )
    parser.add_argument(
        "--no-mlserver", action="store_true", help="skip the MLServer runs"
    )
    parser.add_argument(
        "--bare-server",
        choices=["granian-wsgi", "uvicorn-asgi"],
        default="granian-wsgi",
        help="how the bare Django view is served: granian's WSGI interface "
        "(default; Django's fastest) or uvicorn ASGI workers like ours "
        "(Django's ASGI handler starts a thread per request)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=120,
        help="seconds to wait for our server and the bare view (120)",
    )
    parser.add_argument(
        "--mlserver-start-timeout",
        type=float,
        default=600,
        help="seconds to wait for MLServer, venv creation included (600)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory"
    )
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = set(args.models) - set(MODELS)
    if unknown or not args.models:
        parser.error(f"--only takes some of {', '.join(MODELS)}")
    args.models = [m for m in MODELS if m in args.models]
    if args.seconds < 1:
        parser.error("--seconds must be at least 1")
    return args


def run(args: argparse.Namespace, workdir: Path) -> tuple[dict, list, list]:
    kit = pb.shared_bench_dir()
    if not pb.PYTHON.exists():
        raise pb.BenchError(f"{pb.PYTHON} not found: create the project venv first")
    started = time.monotonic()
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    env = pb.django_env(workdir, cache_ttl=0)
    env.update(
        {
            "DEFAULT_MODEL_NAME": args.models[0],
            "DEFAULT_MODEL_VERSION": VERSION,
            "MONITORING_ENABLED": "true",
        }
    )
    # registry.demo and registry.compile need Django's settings: this
    # run's, set up in this process without leaving them in its environment
    # (the servers get theirs explicitly).
    with environ(env):
        import django

        django.setup()
    from django.conf import settings

    # For monitoring.prometheus's exit hook, which reads it from there.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.PROMETHEUS_MULTIPROC_DIR)
    files, X_test = train(workdir, args.models)
    setup_registry(env, workdir, args.models)
    bodies = write_bodies(workdir, args.models, X_test, kit)

    runtimes = list(RUNTIMES)
    timings = in_process(files, X_test, runtimes)

    runs: list[Run] = []
    serving: dict[str, dict] = {}
    common = {"seconds": args.seconds, "start_timeout": args.start_timeout}
    for runtime, batching in OURS_CONFIGS:
        new, serving[f"{runtime}-{batching}"] = bench_ours(
            kit,
            workdir,
            env,
            bodies,
            runtime=runtime,
            batching=batching,
            names=args.models,
            **common,
        )
        runs += new
    for runtime in runtimes:
        runs += bench_bare(
            kit,
            workdir,
            files,
            bodies,
            runtime=runtime,
            server_kind=args.bare_server,
            **common,
        )
    mlserver_workers = {}
    if not args.no_mlserver:
        for name, model in files.items():
            mlserver_workers[name] = MLSERVER_PARALLEL_WORKERS[name]
            runs += bench_mlserver(
                kit,
                workdir,
                model,
                bodies,
                parallel_workers=MLSERVER_PARALLEL_WORKERS[name],
                seconds=args.seconds,
                start_timeout=args.mlserver_start_timeout,
            )
    ratios, found = analyse(runs, timings, serving, args.models)
    config = {
        "rss_mb_per_web_worker": dict(MEMORY),
        "models": args.models,
        "model_types": {m.name: m.model_type for m in files.values()},
        "onnx_conversion": {m.name: m.onnx_detail for m in files.values()},
        "workers": WORKERS,
        "seconds": args.seconds,
        "connections": list(CONNECTIONS),
        "rows": list(ROWS),
        "ours_configs": [
            {"MODEL_RUNTIME": rt, "BATCHING": b} for rt, b in OURS_CONFIGS
        ],
        "experiment": {
            "model": EXPERIMENT_MODEL,
            "versions": [VERSION, "v2"],
            "split": 0.5,
        }
        if EXPERIMENT_MODEL in args.models
        else None,
        "prediction_cache_ttl": 0,
        "monitoring": True,
        "mlserver": not args.no_mlserver,
        "mlserver_parallel_workers": mlserver_workers,
        "bare_runtimes": runtimes,
        "bare_server": args.bare_server,
        "cpus": os.cpu_count(),
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "duration_s": round(time.monotonic() - started, 1),
    }
    result = {
        "config": config,
        "serving": serving,
        "inprocess": [asdict(t) for t in timings],
        "runs": [asdict(r) for r in runs],
        "ratios": ratios,
        "targets": found,
    }
    return result, runs, timings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))  # registry.* for training and in-process

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="speed-bench-"))
    log(f"working directory {workdir}")
    keep = args.keep
    try:
        result, runs, timings = run(args, workdir)
    except pb.BenchError as exc:
        print(f"speed_bench: error: {exc}", file=sys.stderr)
        keep = True  # logs and database, for a look
        return 1
    except KeyboardInterrupt:
        print("speed_bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(result, runs, timings)
    result = pb.rounded(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(f"JSON: {args.json.resolve()}")
    print("BENCHJSON " + json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
