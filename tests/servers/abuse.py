"""Clients that misbehave, and one that does not, for the robustness tests
(test_robustness.py) and bench/robustness_bench.py. Loopback only: every
helper refuses another host.

- SteadyClient: one connection's worth of sequential /predict calls, each
  with a timeout; success rate, p99, what was answered when.
- idle_connections: TCP connections that never send a byte.
- HalfBodies: connections that send headers and half a body, then wait;
  when the server gives up on one, another takes its place.
- FeedbackWaiters: clients posting /feedback for ids nobody logged.
- overload: many concurrent keep-alive clients for a while; every
  answer's status, Retry-After and time.
- chunked_post: one request with a chunked body.
- steady_during, predict_ok, seconds_until, clients_of: small measures.
"""

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import psutil

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FEATURES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        raise ValueError(f"refusing to send traffic to {parts.hostname}")
    return parts.hostname, parts.port or 80


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Answer:
    sent: float  # time.time()
    latency: float  # seconds
    status: int | None  # None: no answer (timeout, refused, reset)
    request_id: str | None = None
    error: str = ""


class SteadyClient:
    """Sequential POST /predict on one keep-alive connection (a new one
    after a failure), each with `timeout`; runs in a thread until stop()."""

    def __init__(self, url: str, *, timeout: float = 5.0, body: dict | None = None):
        _host_port(url)
        self.url = url.rstrip("/") + "/predict"
        self.timeout = timeout
        self.body = body or {"features": FEATURES}
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._n = 0

    def start(self) -> "SteadyClient":
        self._thread.start()
        return self

    def _run(self) -> None:
        client = httpx.Client(timeout=self.timeout)
        while not self._stop.is_set():
            self._n += 1
            request_id = f"steady-{id(self):x}-{self._n}"
            sent, began = time.time(), time.perf_counter()
            try:
                response = client.post(
                    self.url, json=self.body, headers={"X-Request-ID": request_id}
                )
                self.answers.append(
                    Answer(
                        sent,
                        time.perf_counter() - began,
                        response.status_code,
                        request_id,
                    )
                )
            except httpx.HTTPError as exc:
                self.answers.append(
                    Answer(
                        sent,
                        time.perf_counter() - began,
                        None,
                        request_id,
                        type(exc).__name__,
                    )
                )
                client.close()
                client = httpx.Client(timeout=self.timeout)
                self._stop.wait(0.01)
        client.close()

    def stop(self) -> "SteadyClient":
        self._stop.set()
        self._thread.join(self.timeout + 5)
        return self

    def stats(self) -> dict:
        ok = [a for a in self.answers if a.status == 200]
        return {
            "requests": len(self.answers),
            "ok": len(ok),
            "success_rate": len(ok) / len(self.answers) if self.answers else None,
            "p50_ms": _ms(percentile([a.latency for a in ok], 50)),
            "p99_ms": _ms(percentile([a.latency for a in ok], 99)),
            "max_ms": _ms(max((a.latency for a in self.answers), default=None)),
            "failures": dict(
                Counter(
                    a.error or str(a.status) for a in self.answers if a.status != 200
                )
            ),
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 2)


def idle_connections(url: str, count: int) -> list[socket.socket]:
    """`count` connected sockets that send nothing."""
    host, port = _host_port(url)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=5)
        sockets.append(sock)
    return sockets


def closed_by_server(sockets: list[socket.socket]) -> int:
    """How many of `sockets` the server has closed (EOF readable)."""
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            if sock.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


class HalfBodies:
    """`count` connections, each sending a /predict request's headers and
    half its body, then nothing; when the server answers or closes one, a
    new one takes its place. Runs in a thread until stop()."""

    def __init__(self, url: str, count: int, path: str = "/predict"):
        self.host, self.port = _host_port(url)
        self.count, self.path = count, path
        body = json.dumps({"features": FEATURES}).encode()
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body[: len(body) // 2]
        self.statuses: Counter = Counter()  # what the server answered them
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "HalfBodies":
        self._thread.start()
        return self

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.sendall(self.head)
        sock.setblocking(False)
        self.opened += 1
        return sock

    def _run(self) -> None:
        live = [self._open() for _ in range(self.count)]
        while not self._stop.wait(0.1):
            for i, sock in enumerate(live):
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 "):
                    self.statuses[int(data[9:12])] += 1
                else:
                    self.statuses["closed"] += 1
                sock.close()
                live[i] = self._open()
        for sock in live:
            sock.close()

    def stop(self) -> "HalfBodies":
        self._stop.set()
        self._thread.join(5)
        return self


class FeedbackWaiters:
    """`count` threads posting /feedback for request ids nobody logged,
    one after the other, until stop()."""

    def __init__(self, url: str, count: int):
        _host_port(url)
        self.url = url.rstrip("/") + "/feedback"
        self.count = count
        self.statuses: Counter = Counter()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True)
            for i in range(count)
        ]

    def start(self) -> "FeedbackWaiters":
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, index: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                body = {"request_id": f"unknown-{index}-{n}", "converted": True}
                try:
                    self.statuses[client.post(self.url, json=body).status_code] += 1
                except httpx.HTTPError as exc:
                    self.statuses[type(exc).__name__] += 1

    def stop(self) -> "FeedbackWaiters":
        self._stop.set()
        for thread in self._threads:
            thread.join(35)
        return self


@dataclass
class OverloadReport:
    clients: int
    seconds: float
    answers: Counter = field(default_factory=Counter)  # status -> count
    without_retry_after: int = 0  # 503/429 answers lacking Retry-After
    no_answer: int = 0  # timed out, reset or refused
    max_seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)  # "phase: Error" -> count
    seconds_of_answers: list = field(default_factory=list)

    def as_dict(self) -> dict:
        total = sum(self.answers.values())
        return {
            "clients": self.clients,
            "seconds": self.seconds,
            "answers": {str(k): v for k, v in sorted(self.answers.items())},
            "answered": total,
            "rate_per_second": round(total / self.seconds, 1),
            "without_retry_after": self.without_retry_after,
            "no_answer": self.no_answer,
            "p99_answer_seconds": round(self._p99(), 3),
            "max_answer_seconds": round(self.max_seconds, 3),
            "errors": dict(self.errors),
        }

    def _p99(self) -> float:
        ordered = sorted(self.seconds_of_answers)
        return ordered[int(len(ordered) * 0.99)] if ordered else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers


async def _overload(
    url: str, clients: int, seconds: float, timeout: float, body: dict
) -> OverloadReport:
    host, port = _host_port(url)
    payload = json.dumps(body).encode()
    request = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    report = OverloadReport(clients, seconds)
    stop_at = time.monotonic() + seconds

    async def one_client() -> None:
        reader = writer = None
        while time.monotonic() < stop_at:
            began = time.monotonic()
            phase = "connect"
            try:
                async with asyncio.timeout(timeout):
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    phase = "answer"
                    writer.write(request)
                    status, headers = await _read_response(reader)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                report.no_answer += 1
                report.errors[f"{phase}: {type(exc).__name__}"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.05)
                continue
            elapsed = time.monotonic() - began
            report.max_seconds = max(report.max_seconds, elapsed)
            report.seconds_of_answers.append(elapsed)
            report.answers[status] += 1
            if status in (429, 503) and "retry-after" not in headers:
                report.without_retry_after += 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return report


def overload(
    url: str,
    *,
    clients: int = 300,
    seconds: float = 8.0,
    timeout: float = 5.0,
    body: dict | None = None,
) -> OverloadReport:
    """`clients` concurrent keep-alive clients POSTing /predict for
    `seconds`; a request unanswered after `timeout` counts as no answer."""
    return asyncio.run(
        _overload(url, clients, seconds, timeout, body or {"features": FEATURES})
    )


def chunked_post(
    url: str, path: str, body: bytes, *, chunk: int = 7
) -> tuple[int, dict]:
    """POST `body` to `path` with Transfer-Encoding: chunked, in chunks of
    `chunk` bytes; (status, JSON answer)."""
    host, port = _host_port(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    encoded = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head + encoded + b"0\r\n\r\n")
        data = b""
        while chunk_read := sock.recv(65536):
            data += chunk_read
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(rest) if rest else {}


def steady_during(url: str, seconds: float) -> dict:
    """A SteadyClient's stats over `seconds`."""
    client = SteadyClient(url).start()
    time.sleep(seconds)
    return client.stop().stats()


def predict_ok(url: str, body: dict | None = None) -> bool:
    """Whether one /predict on a new connection answers 200 within 2 s."""
    _host_port(url)
    try:
        response = httpx.post(
            f"{url}/predict", json=body or {"features": FEATURES}, timeout=2
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def seconds_until(predicate, timeout: float) -> float | None:
    """Seconds until predicate() holds (polled every 50 ms), or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return round(time.monotonic() - started, 2)
        time.sleep(0.05)
    return None


def clients_of(process: psutil.Process, port: int) -> int:
    """Established client connections a server process holds on `port`."""
    try:
        connections = process.net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(
        1
        for c in connections
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
    )


def wait_until(predicate, timeout: float, interval: float = 0.25):
    """predicate()'s first truthy value within timeout (polled every
    interval), else its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
