"""One worker of the bare Django project, started as ours is
(mlserving/serve.py): models loaded first, then its own SO_REUSEPORT
socket, uvicorn with uvloop and httptools, keep-alive 5 s, no access log.

    BARE_RUNTIME=sklearn BARE_MODELS=lr=/tmp/lr.joblib \\
        python -m bench.bare_django.serve --port 8100

Run it once per worker, as the Procfile's web role is.
"""

import argparse
import socket

import uvicorn

BACKLOG = 2048
KEEP_ALIVE_SECONDS = 5


def reuseport_socket(host: str, port: int) -> socket.socket:
    # As mlserving.serve.reuseport_socket; importing that module would set
    # up the project's own Django settings in this process.
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(BACKLOG)
    sock.set_inheritable(False)
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One bare Django worker.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args(argv)
    from bench.bare_django.asgi import application
    from bench.bare_django.views import models_load

    models_load()
    sock = reuseport_socket(args.host, args.port)
    config = uvicorn.Config(
        application,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        backlog=BACKLOG,
        access_log=False,
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
