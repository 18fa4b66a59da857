"""The web front under abuse and process deaths, from the README's run
command with default settings (issue 10's table, measured):

    .venv/bin/python bench/robustness_bench.py [--baseline DIR] [--slow-seconds 120]

It starts ``./run.sh`` of this checkout (or of ``--baseline DIR``, another
commit's checkout with its .venv, to measure the same cases before a
change) with VAR_DIR and ARTIFACTS_ROOT in a temporary directory and a free
WEB_PORT; every other setting is the default (SQLite, the embedded Redis,
DEBUG on). Then, one case after the other, beside a steady one-connection
/predict client (each request with a 5 s timeout):

1. nothing else (the reference);
2. 250 TCP connections that send nothing;
3. 8 connections that send headers and half a body, then wait (each
   replaced when the server drops it), for --slow-seconds;
4. 4 clients posting /feedback for request ids nobody logged;
5. 300 concurrent clients for 8 s (v1.0, then v2.0): the answer mix,
   Retry-After on every 503/429, the slowest answer, and a steady client
   2 s later;
6. chunked bodies: /predict, /ab-test/configure and an activation's note;
7. SIGKILL of a web worker, the ingest process, the Celery worker and
   beat, one at a time, under 4 steady clients: seconds until /predict
   answers again, until the role runs again, the requests that failed,
   and (web worker) the answered predictions whose events were lost.

It prints one table per part and a final ``BENCHJSON {...}`` line. Load
goes only to 127.0.0.1 and every case is bounded in time.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers.abuse import (  # noqa: E402
    FEATURES,
    FeedbackWaiters,
    HalfBodies,
    SteadyClient,
    chunked_post,
    clients_of,
    closed_by_server,
    idle_connections,
    overload,
    predict_ok,
    seconds_until,
    steady_during,
)


def log(message: str) -> None:
    print(f"[robustness] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """./run.sh of a checkout, in its own session."""

    def __init__(self, checkout: Path, workdir: Path):
        self.checkout = checkout
        self.workdir = workdir
        self.port = free_port()
        self.var = workdir / "var"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")
            and not k.startswith(("GRANIAN_", "UVICORN_"))
        }
        env.update(
            VAR_DIR=str(self.var),
            ARTIFACTS_ROOT=str(workdir / "artifacts"),
            WEB_PORT=str(self.port),
            # the old layout's websocket port, unused by the new one
            WS_PORT=str(free_port()),
            LOG_LEVEL="WARNING",
            # the front's own defences are measured, not the throttle
            THROTTLE_ANON="",
            THROTTLE_KEY="",
        )
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 600) -> "Stack":
        self.log = open(self.workdir / "run.log", "ab")
        log(f"starting {self.checkout}/run.sh on port {self.port}")
        self.process = subprocess.Popen(
            ["./run.sh"],
            cwd=self.checkout,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"run.sh exited:\n{self.tail()}")
            if predict_ok(self.url) and self.roles_up():
                time.sleep(2)  # every worker warmed up
                return self
            time.sleep(0.5)
        raise RuntimeError(f"run.sh not ready in {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = (self.workdir / "run.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        """run.sh's process and all its descendants (their command lines
        read once)."""
        try:
            root = psutil.Process(self.process.pid)
            found = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        for proc in found:
            try:
                proc.info = {"cmdline": proc.cmdline()}
            except psutil.Error:
                proc.info = {"cmdline": []}
        return found

    def role(self, name: str) -> psutil.Process | None:
        """The main process of a role (by command line, in this session)."""
        for proc in self.processes():
            cmd = " ".join(proc.info["cmdline"] or [])
            if (proc.info["cmdline"] or [""])[0].endswith(("sh", "bash", "dash")):
                continue  # a shell that runs a role's command, not the role
            # a worker of this layout, or an older layout's server master
            if name == "web" and (
                "mlserving.serve" in cmd
                or ("granian" in cmd and "--interface wsgi" in cmd)
            ):
                return proc
            if name == "ingest" and "ingest_events" in cmd:
                return proc
            if name in ("worker", "beat") and "celery" in cmd and f" {name}" in cmd:
                # the main process, not one of its pool's children
                with contextlib.suppress(psutil.Error):
                    if proc.parent().name() != proc.name():
                        return proc
        return None

    def web_workers(self) -> list[psutil.Process]:
        """The web worker processes: mlserving.serve processes (one per
        worker), or the children of an older layout's server master."""
        workers = []
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                if "mlserving.serve" in " ".join(proc.info["cmdline"] or []):
                    workers.append(proc)
        if workers:
            return workers
        master = self.role("web")
        if master is None:
            return []
        with contextlib.suppress(psutil.Error):
            for child in master.children():
                with contextlib.suppress(psutil.Error):
                    if "resource_tracker" not in " ".join(child.cmdline()):
                        workers.append(child)
        return workers

    def roles_up(self) -> bool:
        return all(self.role(r) for r in ("web", "ingest", "worker", "beat"))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stored_request_ids(self) -> set[str]:
        with sqlite3.connect(self.var / "db.sqlite3", timeout=30) as db:
            rows = db.execute("SELECT request_id FROM monitoring_predictionevent")
            return {r[0] for r in rows}


def abuse_cases(stack: Stack, args) -> dict:
    results = {}
    log(f"reference: steady client alone, {args.seconds} s")
    results["reference"] = {"steady": steady_during(stack.url, args.seconds)}

    log(f"250 idle connections, {args.seconds} s")
    try:
        idle = idle_connections(stack.url, 250)
    except OSError as exc:
        results["idle_250"] = {"error": f"could not open them: {exc}"}
    else:
        steady = steady_during(stack.url, args.seconds)
        results["idle_250"] = {
            "steady": steady,
            "closed_by_server": closed_by_server(idle),
        }
        for sock in idle:
            sock.close()

    log(f"8 half-sent bodies, {args.slow_seconds} s")
    half = HalfBodies(stack.url, 8).start()
    steady = steady_during(stack.url, args.slow_seconds)
    half.stop()
    results["half_bodies_8"] = {
        "steady": steady,
        "server_answers": {str(k): v for k, v in half.statuses.items()},
        "connections_opened": half.opened,
    }

    log(f"4 /feedback clients for unknown ids, {args.seconds} s")
    waiters = FeedbackWaiters(stack.url, 4).start()
    steady = steady_during(stack.url, args.seconds)
    waiters.stop()
    results["feedback_waits_4"] = {
        "steady": steady,
        "feedback_answers": {str(k): v for k, v in waiters.statuses.items()},
    }

    for version in ("v1.0", "v2.0"):
        log(f"300 concurrent clients, 8 s, {version}")
        body = {"features": FEATURES}
        if version != "v1.0":
            body["model_version"] = version
        report = overload(stack.url, clients=300, seconds=8, timeout=5, body=body)
        time.sleep(2)
        after = steady_during(stack.url, 3)
        results[f"overload_300_{version}"] = {
            **report.as_dict(),
            "steady_2s_after": after,
        }
    return results


def chunked_case(stack: Stack) -> dict:
    body = json.dumps({"features": FEATURES}).encode()
    found = {}
    for path, payload, check in (
        ("/predict", body, lambda a: a.get("model_version") == "v1.0"),
        (
            "/ab-test/configure",
            b'{"enabled": true, "split_ratio": 0.25, "models": ["v1.0", "v2.0"]}',
            lambda a: a.get("enabled") is True and a.get("split_ratio") == 0.25,
        ),
        (
            "/models/v2.0/activate",
            b'{"note": "sent in chunks"}',
            lambda a: (a.get("change") or {}).get("note") == "sent in chunks",
        ),
    ):
        try:
            status, answer = chunked_post(stack.url, path, payload)
            found[path] = {"status": status, "applied": bool(check(answer))}
        except (OSError, ValueError) as exc:
            found[path] = {"error": f"{type(exc).__name__}: {exc}"}
    # leave the experiment off and v1.0 active for what follows
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(
            f"{stack.url}/ab-test/configure", json={"enabled": False}, timeout=10
        )
        httpx.post(f"{stack.url}/models/v1.0/activate", timeout=10)
    return found


def kill_cases(stack: Stack) -> dict:
    results = {}
    for role in ("web worker", "ingest", "worker", "beat"):
        if stack.process.poll() is not None:
            results[role] = {"error": "the stack is gone"}
            continue
        clients = [SteadyClient(stack.url).start() for _ in range(4)]
        time.sleep(3)
        if role == "web worker":
            # the one with the most clients
            workers = stack.web_workers()
            victim = max(workers, key=lambda p: clients_of(p, stack.port), default=None)
        else:
            victim = stack.role(role)
        if victim is None:
            for client in clients:
                client.stop()
            results[role] = {"error": "process not found"}
            continue
        before = {p.pid for p in stack.web_workers()}
        log(f"SIGKILL {role} (pid {victim.pid})")
        killed_at = time.time()
        victim.send_signal(signal.SIGKILL)
        answering = seconds_until(lambda: predict_ok(stack.url), 10)
        if role == "web worker":
            # back: a worker started after the kill answers /health
            back = seconds_until(lambda b=before: served_by_new(stack, b), 15)
        else:
            back = seconds_until(
                lambda r=role, v=victim: (
                    (p := stack.role(r)) is not None and p.pid != v.pid
                ),
                15,
            )
        time.sleep(5)
        for client in clients:
            client.stop()
        answers = [a for c in clients for a in c.answers]
        window = [a for a in answers if killed_at - 3 <= a.sent <= killed_at + 5]
        failed = [a for a in window if a.status != 200]
        entry = {
            "answering_again_s": answering,
            "role_back_s": back,
            "requests_in_window": len(window),
            "failed": len(failed),
            "failed_share": round(len(failed) / len(window), 5) if window else None,
        }
        time.sleep(2)  # the buffers flush (250 ms), the ingest writes
        answered = {a.request_id: a.sent for a in answers if a.status == 200}
        try:
            missing = set(answered) - stack.stored_request_ids()
            entry["answered_not_stored"] = len(missing)
            entry["not_stored_answered_s_before_kill"] = sorted(
                round(killed_at - answered[r], 3) for r in missing
            )[:5]
        except sqlite3.Error as exc:
            entry["answered_not_stored"] = f"could not read: {exc}"
        results[role] = entry
        log(f"  {entry}")
    return results


def served_by_new(stack: Stack, before: set[int]) -> bool:
    """Whether /health (on a new connection) was answered by a web worker
    that was not running before."""
    try:
        pid = httpx.get(f"{stack.url}/health", timeout=2).json().get("pid")
    except (httpx.HTTPError, ValueError):
        return False
    return pid not in before and pid in {p.pid for p in stack.web_workers()}


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:,.1f}"
    return str(value)


def print_tables(results: dict) -> None:
    print()
    print("Steady one-connection /predict client beside each case:")
    print(
        f"{'case':<20} {'requests':>9} {'answered':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>9}  failures"
    )
    for case, result in results["abuse"].items():
        steady = result.get("steady") or result.get("steady_2s_after")
        if case.startswith("overload"):
            case = case.replace("overload_300_", "2 s after 300: ")
        if steady is None:
            print(f"{case:<20} {result}")
            continue
        rate = steady["success_rate"]
        print(
            f"{case:<20} {steady['requests']:>9} {fmt(rate * 100 if rate is not None else None):>8}% "
            f"{fmt(steady['p50_ms']):>8} {fmt(steady['p99_ms']):>8} {fmt(steady['max_ms']):>9}  "
            f"{steady['failures']}"
        )
    print()
    print("300 concurrent clients, 8 s:")
    for case, result in results["abuse"].items():
        if case.startswith("overload"):
            print(
                f"  {case}: answers {result['answers']}, no answer {result['no_answer']}, "
                f"503/429 without Retry-After {result['without_retry_after']}, "
                f"p99 {result['p99_answer_seconds']} s, slowest {result['max_answer_seconds']} s, {result['rate_per_second']} answers/s"
            )
    print()
    print("Chunked bodies:", results["chunked"])
    print()
    print("SIGKILL under 4 steady clients:")
    print(
        f"{'role':<12} {'answering s':>11} {'back s':>7} {'failed':>12} {'lost events':>12}"
    )
    for role, entry in results["kills"].items():
        if "error" in entry:
            print(f"{role:<12} {entry['error']}")
            continue
        print(
            f"{role:<12} {fmt(entry['answering_again_s']):>11} {fmt(entry['role_back_s']):>7} "
            f"{entry['failed']:>5}/{entry['requests_in_window']:<6} "
            f"{fmt(entry.get('answered_not_stored')):>12}"
        )
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to measure")
    parser.add_argument("--seconds", type=float, default=15, help="per case (15)")
    parser.add_argument(
        "--slow-seconds", type=float, default=120, help="half-bodies case (120)"
    )
    parser.add_argument(
        "--parts",
        default="abuse,chunked,kills",
        help="comma-separated parts to run (abuse, chunked, kills)",
    )
    args = parser.parse_args(argv)
    checkout = (args.baseline or REPO).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="robustness-bench-"))
    stack = Stack(checkout, workdir)
    results: dict = {"checkout": str(checkout), "commit": commit_of(checkout)}
    try:
        stack.start()
        parts = set(args.parts.split(","))
        results["abuse"] = abuse_cases(stack, args) if "abuse" in parts else {}
        results["chunked"] = chunked_case(stack) if "chunked" in parts else {}
        results["kills"] = kill_cases(stack) if "kills" in parts else {}
    finally:
        stack.stop()
        log(f"logs in {workdir}")
    print_tables(results)
    print("BENCHJSON " + json.dumps(results, separators=(",", ":")))
    return 0


def commit_of(checkout: Path) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=checkout,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
