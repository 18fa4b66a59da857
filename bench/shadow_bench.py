#!/usr/bin/env python
"""Does a slow shadow version slow the primary down?

Two web servers (the Procfile's web process: 2 workers, DEBUG off,
PREDICTION_CACHE_TTL=0), each on its own SQLite database holding the demo
models and one running experiment that sends every request to v1.0:

- "shadow": the experiment also mirrors 100 % of requests to v3.0, a
  SlowClassifier (registry/faults.py) that sleeps --sleep seconds (200 ms)
  per prediction;
- "plain": the same experiment without a shadow.

Both answer through the same routing code; the shadow is the only
difference. The load alternates between them:

1. paced: sequential requests at --rate per second (5/s by default), slow
   enough that the shadow thread answers every copy, so each primary
   request really runs next to a 200 ms shadow prediction; client latency
   and the server's own processing_time_ms;
2. wrk at 1 and 16 connections for --seconds: throughput and latency with
   the shadow queue full (copies beyond SHADOW_QUEUE_SIZE dropped and
   counted).

Rounds alternate the order. The last line is BENCHJSON {...}.

    .venv/bin/python bench/shadow_bench.py [--rounds 3] [--quick]
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import predict_bench as pb

HOST = pb.HOST

SETUP = """
import joblib
from registry import services as registry_services
from registry.faults import SlowClassifier
from registry.models import ModelVersion
from experiments import services
from django.conf import settings

v1 = ModelVersion.objects.get(version="v1.0")
v2 = ModelVersion.objects.get(version="v2.0")
shadows = []
if {shadow}:
    source = settings.ARTIFACTS_ROOT / v1.artifact_path
    slow = SlowClassifier(joblib.load(source), {sleep})
    path = settings.ARTIFACTS_ROOT / "slow_v3.0.pkl"
    joblib.dump(slow, path)
    v3 = registry_services.model_version_register(
        model_name="default", version="v3.0", source=path
    )
    shadows = [(v3, 100.0)]
experiment = services.experiment_save(
    model=v1.model,
    spec=services.ExperimentSpec(
        variants=[(v1, 1.0), (v2, 0.0)], shadows=shadows
    ),
    name="bench",
)
services.experiment_start(experiment=experiment)
print("experiment ready, shadows:", [s[0].version for s in shadows])
"""

COUNT_SHADOWS = """
from monitoring.models import PredictionEvent
print("SHADOWS", PredictionEvent.objects.filter(shadow=True).count(),
      PredictionEvent.objects.filter(shadow=False).count())
"""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--paced", type=int, default=100, help="requests per round")
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.paced = 1, 3, 30
    return args


def paced(url: str, body: dict, *, count: int, rate: float) -> dict:
    """Sequential requests at a fixed rate: client and server latency."""
    client_ms, server_ms = [], []
    interval = 1.0 / rate
    with httpx.Client(timeout=30) as client:
        next_at = time.monotonic()
        for _ in range(count):
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            started = time.perf_counter()
            response = client.post(url, json=body)
            client_ms.append((time.perf_counter() - started) * 1e3)
            if response.status_code != 200:
                raise pb.BenchError(f"{url}: {response.status_code} {response.text}")
            data = response.json()
            if data["model_version"] != "v1.0":
                raise pb.BenchError(f"answered by {data['model_version']}")
            server_ms.append(float(data["processing_time_ms"]))
    return {
        "client_p50_ms": statistics.median(client_ms),
        "client_p99_ms": pb.percentile(client_ms, 99),
        "server_p50_ms": statistics.median(server_ms),
        "server_p99_ms": pb.percentile(server_ms, 99),
    }


def shadow_dropped(base: str) -> float:
    text = httpx.get(f"{base}/metrics/prometheus", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("mlserving_shadow_dropped_total"):
            total += float(line.split()[-1])
    return total


def run(args, root: Path) -> dict:
    kit = pb.shared_bench_dir()
    servers: dict[str, dict] = {}
    body = {"features": pb.FEATURES}
    body_file = root / "body.json"
    body_file.write_text(json.dumps(body))
    results: dict[str, dict[str, list]] = {"shadow": {}, "plain": {}}
    with contextlib.ExitStack() as stack:
        for mode in ("shadow", "plain"):
            workdir = root / mode
            workdir.mkdir()
            env = pb.django_env(workdir, cache_ttl=0)
            pb.manage(env, "migrate", "--noinput", "-v0")
            pb.manage(env, "bootstrap_demo")
            pb.manage(
                env,
                "shell",
                "-c",
                SETUP.format(shadow=mode == "shadow", sleep=args.sleep),
            )
            port = pb.free_ports()
            server = pb.Server(
                f"web-{mode}",
                pb.web_command(port, args.workers),
                env=env,
                cwd=pb.REPO,
                log_path=workdir / "web.log",
            )
            stack.enter_context(pb.running(server))
            base = f"http://{HOST}:{port}"
            server.wait_ready(f"{base}/health", timeout=120)
            servers[mode] = {"base": base, "url": f"{base}/predict", "env": env}
        for server in servers.values():
            pb.warm_up_ours(
                server["url"], body, "v1.0", cached=False, workers=args.workers
            )
        for round_no in range(args.rounds):
            order = ("shadow", "plain") if round_no % 2 == 0 else ("plain", "shadow")
            for mode in order:
                result = paced(
                    servers[mode]["url"], body, count=args.paced, rate=args.rate
                )
                results[mode].setdefault("paced", []).append(result)
                pb.log(
                    f"round {round_no + 1} {mode:6} paced {args.rate:g}/s: client "
                    f"p50 {result['client_p50_ms']:.2f} ms p99 "
                    f"{result['client_p99_ms']:.2f} ms, server p50 "
                    f"{result['server_p50_ms']:.3f} ms"
                )
            # let the shadow answer what is queued before the saturated runs
            time.sleep(args.sleep * 4)
            for conns in pb.CONNECTIONS:
                for mode in order:
                    raw = pb.wrk(
                        kit,
                        url=servers[mode]["url"],
                        body=body_file,
                        conns=conns,
                        seconds=args.seconds,
                    )
                    results[mode].setdefault(f"wrk{conns}", []).append(raw)
                    pb.log(
                        f"round {round_no + 1} {mode:6} {conns:2} conn: "
                        f"{raw['rps']:.0f} req/s, p50 {raw['p50_ms']:.2f} ms, "
                        f"p99 {raw['p99_ms']:.2f} ms, errors {raw.get('errors', 0)}"
                    )
        time.sleep(1.0)  # the last events reach the database
        dropped = shadow_dropped(servers["shadow"]["base"])
    counts = subprocess_count(servers["shadow"]["env"])
    return summarize(args, results, dropped, counts)


def subprocess_count(env) -> dict:
    import subprocess

    result = subprocess.run(
        [str(pb.PYTHON), "manage.py", "shell", "-c", COUNT_SHADOWS],
        cwd=pb.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for line in result.stdout.splitlines():
        if line.startswith("SHADOWS"):
            _, shadow, primary = line.split()
            return {"shadow_answered": int(shadow), "primary_events": int(primary)}
    return {}


def summarize(args, results, dropped, counts) -> dict:
    def med(mode, part, key):
        return statistics.median(r[key] for r in results[mode][part])

    rows = []
    summary = {"args": vars(args), "dropped": dropped, **counts, "parts": {}}
    for part, keys in (
        ("paced", ("client_p50_ms", "client_p99_ms", "server_p50_ms", "server_p99_ms")),
        ("wrk1", ("rps", "p50_ms", "p99_ms")),
        ("wrk16", ("rps", "p50_ms", "p99_ms")),
    ):
        for key in keys:
            plain, shadow = med("plain", part, key), med("shadow", part, key)
            summary["parts"].setdefault(part, {})[key] = {
                "plain": plain,
                "shadow": shadow,
                "ratio": shadow / plain if plain else None,
            }
            rows.append(
                [part, key, f"{plain:.3f}", f"{shadow:.3f}", f"{shadow / plain:.3f}"]
            )
    print()
    print(
        f"Shadow {args.sleep * 1000:.0f} ms vs none, medians of {args.rounds} "
        "alternating rounds"
    )
    print(pb.table(["load", "figure", "plain", "with shadow", "ratio"], rows))
    print(
        f"shadow predictions answered: {counts.get('shadow_answered')}, "
        f"dropped (queue full): {dropped:.0f}; primary events "
        f"{counts.get('primary_events')}"
    )
    print("BENCHJSON " + json.dumps(summary, default=str))
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shadowbench-") as tmp:
        try:
            run(args, Path(tmp))
        except pb.BenchError as exc:
            print(f"shadow_bench: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
