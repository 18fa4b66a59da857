"""The event ingest process: database writes of prediction events, out of
the web processes.

Each web process's event writer (monitoring/events.py) hands its batches
of event rows to this process over a unix socket (EVENT_INGEST_SOCKET)
and waits for the answer; this process inserts them and answers once they
are committed. The inserts' CPU time, and the GIL they would hold, leave
the web processes; their writer threads only count, pickle and send
(measured: bench/README.md).

When no ingest process listens, a writer inserts its batches itself, as
before; a batch whose answer never came (the process died) is checked
against the table before it is sent again, so nothing is stored twice.

The protocol is a 4-byte big-endian length and a pickled list of row
tuples; the answer is one byte: OK, or FAILED followed by the error's text
(the transaction was rolled back or its commit is in doubt, and the
writer treats it as in doubt). The socket is created with mode 0600 and a
connection from another user is refused: pickle is for the deployment's
own processes only.
"""

import contextlib
import logging
import os
import pickle
import signal
import socket
import socketserver
import struct
import threading
from pathlib import Path

from django.db import DatabaseError, connection, connections

from mlserving.conf import monitoring_settings
from mlserving.redis_url import MAX_SOCKET_PATH
from monitoring.event_store import events_insert

logger = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
OK = b"\x00"
FAILED = b"\x01"
# A writer waits for the answer as long as the ingest process lives: an
# insert that hangs on the database hangs the same way in a writer that
# inserts itself, and giving up early could store a batch twice (the
# ingest process would still commit it after the writer wrote it too).
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_FRAME_BYTES = 256 * 1024 * 1024


# How a writer's last batch went, for /health and /metrics: "off" (no
# socket configured), "not used yet", "connected", "not listening" (the
# writer inserts itself) or "failed" (the last batch got no answer or an
# error; it was checked and written by the writer).
STATES = ("off", "not used yet", "connected", "not listening", "failed")


class IngestUnavailable(Exception):
    """No ingest process took the batch: nothing was sent."""


class IngestFailed(Exception):
    """The batch was sent but its commit is not confirmed."""


def socket_path() -> Path | None:
    path = monitoring_settings.EVENT_INGEST_SOCKET
    return Path(path) if path else None


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class IngestClient:
    """A writer's connection to the ingest process (one per process)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._sock: socket.socket | None = None
        self.state = "not used yet" if path else "off"  # one of STATES

    def _connect(self) -> socket.socket:
        if self._sock is None:
            if self.path is None:
                raise IngestUnavailable("no EVENT_INGEST_SOCKET")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT_SECONDS)
            try:
                sock.connect(str(self.path))
            except OSError as exc:  # no such file, refused: nobody listens
                sock.close()
                self.state = "not listening"
                raise IngestUnavailable(str(exc)) from exc
            sock.settimeout(None)
            self._sock = sock
        return self._sock

    def insert(self, rows: list[tuple]) -> None:
        """Have the ingest process store rows. IngestUnavailable: nothing
        was sent (insert them some other way); IngestFailed: sent, and
        maybe stored."""
        sock = self._connect()
        payload = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            sock.sendall(HEADER.pack(len(payload)) + payload)
        except OSError as exc:
            # The process is gone. It may have read part of the batch, not
            # committed it: a transaction needs the whole batch.
            self.close()
            self.state = "not listening"
            raise IngestUnavailable(str(exc)) from exc
        try:
            status = _recv_exactly(sock, 1)
            if status != OK:
                (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
                self.state = "failed"
                raise IngestFailed(_recv_exactly(sock, size).decode())
        except OSError as exc:  # died after taking the batch
            self.close()
            self.state = "failed"
            raise IngestFailed(f"no answer from the ingest process: {exc}") from exc
        self.state = "connected"

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# --- the ingest process -------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            self._serve(self.request)
        finally:
            connections.close_all()  # this thread's database connection

    def _serve(self, sock: socket.socket) -> None:
        if hasattr(socket, "SO_PEERCRED"):  # Linux; elsewhere the 0600 file
            uid = struct.unpack(
                "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            )[2]
            if uid != os.getuid():
                logger.warning("refused an ingest connection from uid %s", uid)
                return
        while True:
            try:
                (size,) = HEADER.unpack(_recv_exactly(sock, HEADER.size))
                if size > MAX_FRAME_BYTES:
                    logger.warning("refused a %d-byte ingest frame", size)
                    return
                payload = _recv_exactly(sock, size)
            except ConnectionError:
                return  # the writer's process ended
            try:
                rows = pickle.loads(payload)
            except Exception as exc:  # not a writer's batch: drop the link
                logger.warning("refused an unreadable ingest frame: %r", exc)
                return
            answer = self.server.store(rows)
            try:
                sock.sendall(answer)
            except OSError:
                return


class IngestServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per connected writer; inserts are serialized on SQLite
    (one writer at a time there anyway)."""

    daemon_threads = True  # a connection's thread waits for its next batch
    block_on_close = False

    def __init__(self, path: Path):
        self.path = Path(path)
        self.stored = 0
        self.failures = 0
        self._insert_lock = threading.Lock()
        self._state = threading.Condition()
        self._busy = 0
        self._stopping = False
        _claim(self.path)
        old_mask = os.umask(0o177)  # the socket file is created 0600
        try:
            super().__init__(str(self.path), _Handler)
        finally:
            os.umask(old_mask)

    def store(self, rows: list[tuple]) -> bytes:
        with self._state:
            if self._stopping:
                return _failed("the ingest process is stopping")
            self._busy += 1
        answer = FAILED
        try:
            answer = self._store(rows)
            return answer
        finally:
            with self._state:  # counts too: one connection thread each
                self._busy -= 1
                if answer == OK:
                    self.stored += len(rows)
                else:
                    self.failures += 1
                self._state.notify_all()

    def _store(self, rows: list[tuple]) -> bytes:
        serial = connection.vendor == "sqlite"
        try:
            with self._insert_lock if serial else contextlib.nullcontext():
                events_insert(rows)
        except DatabaseError as exc:
            logger.warning("ingest: insert of %d events failed: %s", len(rows), exc)
            if not connection.in_atomic_block:
                connection.close()  # a broken connection is not reused
            return _failed(str(exc))
        return OK

    def drain(self, timeout: float = 30.0) -> bool:
        """Refuse new batches and wait for those being inserted. Writers
        whose batch is refused insert it themselves."""
        with self._state:
            self._stopping = True
            return self._state.wait_for(lambda: self._busy == 0, timeout)

    def server_close(self) -> None:
        super().server_close()
        self.path.unlink(missing_ok=True)


def _failed(message: str) -> bytes:
    data = message.encode()
    return FAILED + HEADER.pack(len(data)) + data


def _claim(path: Path) -> None:
    """Remove a stale socket file left by a killed process; refuse to take
    over one that a live process is serving."""
    if len(str(path)) > MAX_SOCKET_PATH:  # only a path set by hand can be
        raise RuntimeError(
            f"{path} is too long for a unix socket ({MAX_SOCKET_PATH} "
            "characters at most): set EVENT_INGEST_SOCKET to a shorter path"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
    else:
        raise RuntimeError(f"an ingest process already listens on {path}")
    finally:
        probe.close()


def ingest_serve(path: Path, ready=None) -> IngestServer:
    """Serve until SIGTERM or SIGINT (the management command)."""
    server = IngestServer(path)

    def stop(signum, frame):
        # shutdown() waits for serve_forever, which runs in this thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ready is not None:
        ready()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()  # no new connections
        server.drain()
    return server
