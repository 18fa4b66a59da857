"""Which HTTP server and interface for the web processes: the measurement
behind the Procfile's `web` line (README "Running in production",
bench/README.md "HTTP front").

    .venv/bin/python bench/front_bench.py [--rounds 2] [--seconds 8]

Serves this checkout's demo models (v1.0 LogisticRegression, v2.0
RandomForest) with 2 worker processes in each configuration below, one
after the other, fresh each round, and runs wrk (../shared/bench, one
thread on CPU 1) at 1 and 16 connections on POST /predict:

- ``uvicorn+front``: the Procfile's web process (uvicorn, httptools, uvloop,
  mlserving.asgi: /predict answered by the front on the event loop);
- ``uvicorn+front, thread``: the same with every inference call on the
  inference thread (INLINE_INFERENCE_BUDGET_MS=0), what the front would
  cost if it never ran a model on the loop;
- ``uvicorn+front, throttled``: the Procfile's web process with
  throttling counting every request on Redis (THROTTLE_ANON at a rate
  nothing reaches; the embedded Redis on its unix socket);
- ``uvicorn+front, inline``: every call on the loop
  (INLINE_INFERENCE_BUDGET_MS=1000);
- ``granian-asgi+front``: granian 2.8's ASGI interface serving the same
  application;
- ``granian-wsgi, 1 thread``: mlserving.wsgi (Django's handler and the DRF
  view) under granian's WSGI interface with one blocking thread, the
  previous web process;
- ``granian-wsgi, 8 threads``: the same with 8 blocking threads (what it
  would take for slow clients and /feedback waits not to stall it).

It prints req/s, p50 and p99 per configuration (medians over rounds) and
one ``BENCHJSON`` line. Load goes to 127.0.0.1 only.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import predict_bench as pb  # noqa: E402

HOST = "127.0.0.1"


def commands(port: int, workers: int) -> dict[str, tuple[list[str], dict]]:
    python = str(pb.PYTHON)
    granian = [python, "-m", "granian", "--host", HOST, "--port", str(port)]
    granian += ["--workers", str(workers), "--no-access-log"]
    return {
        "uvicorn+front": (pb.web_command(port, workers), {}),
        "uvicorn+front, thread": (
            pb.web_command(port, workers),
            {"INLINE_INFERENCE_BUDGET_MS": "0"},
        ),
        # throttling on, at a rate no client reaches: what counting each
        # request on Redis (the project's embedded one, started by main())
        # costs
        "uvicorn+front, throttled": (
            pb.web_command(port, workers),
            {"THROTTLE_ANON": "1000000000/s"},
        ),
        "uvicorn+front, inline": (
            pb.web_command(port, workers),
            {"INLINE_INFERENCE_BUDGET_MS": "1000"},
        ),
        "granian-asgi+front": (
            [
                *granian,
                "--interface",
                "asgi",
                "--runtime-mode",
                "st",
                "--backpressure",
                "2048",
                "mlserving.asgi:application",
            ],
            {},
        ),
        "granian-wsgi, 1 thread": (
            [
                *granian,
                "--interface",
                "wsgi",
                "--runtime-mode",
                "st",
                "--blocking-threads",
                "1",
                "--backpressure",
                "100",
                "mlserving.wsgi:application",
            ],
            {},
        ),
        "granian-wsgi, 8 threads": (
            [
                *granian,
                "--interface",
                "wsgi",
                "--runtime-mode",
                "st",
                "--blocking-threads",
                "8",
                "--backpressure",
                "2048",
                "mlserving.wsgi:application",
            ],
            {},
        ),
    }


def measure(kit, workdir, name, port, command, extra_env, versions, seconds) -> list:
    env = {**pb.django_env(workdir, cache_ttl=0), **extra_env}
    label = name.replace(" ", "").replace(",", "-").replace("+", "-")
    server = pb.Server(
        label, command, env=env, cwd=REPO, log_path=workdir / f"{label}.log"
    )
    runs = []
    with pb.running(server):
        base = f"http://{HOST}:{port}"
        server.wait_ready(f"{base}/health", timeout=120)
        for version in versions:
            body = pb.predict_body(version)
            body_file = workdir / f"body_{version}.json"
            body_file.write_text(json.dumps(body))
            pb.warm_up_ours(f"{base}/predict", body, version, cached=False, workers=2)
            runs += pb.load_runs(
                kit,
                server=name,
                version=version,
                url=f"{base}/predict",
                body=body_file,
                seconds=seconds,
            )
    return runs


def run_rounds(args, kit, workdir: Path, versions: list[str]) -> list:
    runs = []
    for round_number in range(args.rounds):
        port = pb.free_ports()
        for name, (command, extra) in commands(port, 2).items():
            if args.only and name not in args.only.split(";"):
                continue
            pb.log(f"round {round_number + 1}: {name}")
            for run in measure(
                kit, workdir, name, port, command, extra, versions, args.seconds
            ):
                run.round = round_number + 1
                runs.append(run)
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--versions", default="v1.0,v2.0")
    parser.add_argument(
        "--only", default="", help="configurations separated by ; (default all)"
    )
    args = parser.parse_args(argv)
    versions = [v for v in args.versions.split(",") if v]
    kit = pb.shared_bench_dir()
    workdir = Path(tempfile.mkdtemp(prefix="front-bench-"))
    env = pb.django_env(workdir, cache_ttl=0)
    pb.manage(env, "migrate", "--noinput", "-v0")
    pb.manage(env, "bootstrap_demo")
    # the embedded Redis the throttled configuration counts on
    redis = subprocess.Popen(
        [str(pb.PYTHON), "-m", "mlserving.embedded_redis"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        runs = run_rounds(args, kit, workdir, versions)
    finally:
        redis.terminate()
        redis.wait(10)
    groups: dict[tuple, list] = {}
    for run in runs:
        groups.setdefault((run.server, run.version, run.conns), []).append(run)
    print()
    print(
        f"POST /predict, 2 workers, wrk {args.seconds} s, medians of {args.rounds} rounds:"
    )
    print(
        f"{'configuration':<26} {'version':<8} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    )
    summary = []
    for (name, version, conns), items in groups.items():
        row = {
            "configuration": name,
            "version": version,
            "conns": conns,
            "rps": statistics.median(r.rps for r in items),
            "p50_ms": statistics.median(r.p50_ms for r in items),
            "p99_ms": statistics.median(r.p99_ms for r in items),
            "rps_by_round": [r.rps for r in items],
        }
        summary.append(row)
        print(
            f"{name:<26} {version:<8} {conns:>5} {row['rps']:>8,.0f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
        )
    print()
    print(
        "BENCHJSON "
        + json.dumps({"rounds": args.rounds, "summary": summary}, separators=(",", ":"))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
