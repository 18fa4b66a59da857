"""One web worker: a uvicorn server of mlserving.asgi (the HTTP front) on
its own listening socket, bound with SO_REUSEPORT, so that the kernel
spreads new connections over the workers that share the port.

    python -m mlserving.serve --host 127.0.0.1 --port 8000

The Procfile's `web` role is WEB_WORKERS of these, each supervised (and
restarted when it dies) by supervisord (mlserving/supervise.py). Why not
uvicorn's own --workers: its workers share one socket and a busy worker's
event loop accepts late, so one worker can take every connection of a
keep-alive client pool while the other idles (measured: 16 connections
split 16/0 in one wrk run out of eight, at a third of the throughput;
bench/README.md, "HTTP front"). With a socket per worker, the split follows
the connections' hash. The socket is bound after warm-up, so no connection
waits in the backlog of a worker that is still loading its models.

The server's settings are fixed here: uvloop, the httptools protocol with
the idle and header deadlines (mlserving/uvicorn_protocol.py), keep-alive
5 s, 20 s to finish requests on SIGTERM.
"""

import os

# One worker per core already: a model's own thread pools (OpenMP in
# HistGradientBoosting, OpenBLAS) would put a pool per core in every
# worker, spinning between calls on the cores the others need. Set before
# those libraries load, so that every thread (the event loop and the
# inference thread) gets one; a value in the environment wins.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402

import uvicorn  # noqa: E402

from mlserving.asgi import application  # noqa: E402  (sets Django up)
from mlserving.dataplane import serving  # noqa: E402
from mlserving.uvicorn_protocol import HttpProtocol  # noqa: E402
from registry.runtimes.sklearn import unpickling_forbid  # noqa: E402

logger = logging.getLogger("mlserving.front")

BACKLOG = 2048
KEEP_ALIVE_SECONDS = 5
GRACEFUL_SHUTDOWN_SECONDS = 20


def reuseport_socket(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A listening TCP socket on host:port that other workers may bind too
    (SO_REUSEPORT). OSError when the address is taken by another program."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(backlog)
    sock.set_inheritable(False)
    return sock


def gc_freeze() -> None:
    """Move everything alive after warm-up (Django, scikit-learn, ONNX
    Runtime, the loaded models: ~200,000 objects) out of the collector's
    sight. Otherwise each full collection walks them all, ~45 ms during
    which the event loop answers nothing; under load they come now and
    then, as buffered events and cached answers survive into the oldest
    generation (bench/README.md, "Tail latency")."""
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One web worker (HTTP front).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    # Loaded before the socket exists: until then the kernel sends this
    # port's connections to the other workers.
    from access.services import OpenWritesRefused, startup_check

    try:
        startup_check()  # production settings with unguarded writes
    except OpenWritesRefused as exc:
        logger.error("%s", exc)
        raise SystemExit(3) from None
    unpickling_forbid()  # before any model loads
    serving.warmup()
    gc_freeze()
    sock = reuseport_socket(args.host, args.port)
    logger.info("web worker %d serving on %s:%d", os.getpid(), args.host, args.port)
    config = uvicorn.Config(
        application,
        http=HttpProtocol,
        loop="uvloop",
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        backlog=BACKLOG,
        access_log=False,
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
