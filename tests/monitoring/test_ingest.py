"""The ingest process's protocol and the writer's side of it: batches are
stored once, whether the ingest process answers, refuses, dies or is
absent. The server runs in a thread of the test process here, over a real
unix socket; tests/servers runs it as the Procfile's process."""

import socket
import threading
import time

import pytest

from mlserving.redis_url import short_socket_path
from monitoring import ingest
from monitoring.events import Event, EventWriter
from monitoring.ingest import IngestServer
from monitoring.models import PredictionEvent

pytestmark = pytest.mark.django_db(transaction=True)


def make_events(n: int, prefix: str = "r") -> list[Event]:
    now = time.time()
    return [
        Event(
            created=now + i * 1e-6,
            request_id=f"{prefix}{i}",
            model="default",
            version="v1.0",
            latency_ms=0.5,
            outcome="ok",
            status_code=200,
        )
        for i in range(n)
    ]


@pytest.fixture
def ingest_socket(tmp_path, settings):
    path = tmp_path / "ingest.sock"
    settings.MONITORING = {**settings.MONITORING, "EVENT_INGEST_SOCKET": str(path)}
    return path


@pytest.fixture
def serve(ingest_socket):
    """serve(ServerClass) -> a running server on the test's socket."""
    running: list[tuple[IngestServer, threading.Thread]] = []

    def start(server_class=IngestServer) -> IngestServer:
        server = server_class(ingest_socket)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(5)
        server.server_close()
        server.drain()


@pytest.fixture
def writer(ingest_socket):
    writer = EventWriter()  # reads EVENT_INGEST_SOCKET
    yield writer
    writer._ingest.close()


def record(writer: EventWriter, events: list[Event]) -> None:
    for event in events:
        writer.record(event)


def stored_ids() -> list[str]:
    return list(PredictionEvent.objects.values_list("request_id", flat=True))


def test_the_writer_hands_its_batches_to_the_ingest_process(serve, writer, settings):
    settings.MONITORING = {**settings.MONITORING, "EVENT_BATCH_SIZE": 500}
    server = serve()
    record(writer, make_events(1_200))
    assert writer.flush() is True
    # three batches of EVENT_BATCH_SIZE (500) went over the socket
    assert server.stored == 1_200
    assert writer.stats()["via_ingest"] == 1_200
    assert writer.stats()["written"] == 1_200
    assert writer.stats()["ingest"] == "connected"
    assert sorted(stored_ids()) == sorted(f"r{i}" for i in range(1_200))


def test_without_an_ingest_process_the_writer_inserts_itself(writer):
    record(writer, make_events(30))
    assert writer.flush() is True
    assert writer.stats()["via_ingest"] == 0
    assert writer.stats()["ingest"] == "not listening"
    assert PredictionEvent.objects.count() == 30


class AnswerLost(IngestServer):
    """Commits the batch, then answers as if it had failed: the answer to
    a committed batch is lost."""

    def _store(self, rows):
        super()._store(rows)
        return ingest._failed("connection reset after commit")


class Refuses(IngestServer):
    """Rolls back every batch (the database refused it)."""

    def _store(self, rows):
        return ingest._failed("database is locked")


def test_a_batch_committed_without_its_answer_is_not_stored_again(serve, writer):
    serve(AnswerLost)
    record(writer, make_events(700))
    assert writer.flush() is True
    # the first batch went through the ingest process, the writer checked
    # the table, found it, and wrote the rest itself
    ids = stored_ids()
    assert len(ids) == len(set(ids)) == 700
    assert writer.stats()["via_ingest"] == 0


def test_a_refused_batch_is_written_by_the_writer_itself(serve, writer):
    server = serve(Refuses)
    record(writer, make_events(700))
    assert writer.flush() is True
    assert server.failures == 1  # tried once, then not again in this flush
    assert writer.stats()["ingest"] == "failed"
    assert PredictionEvent.objects.count() == 700
    # the next flush tries the ingest process again
    record(writer, make_events(10, prefix="s"))
    writer.flush()
    assert server.failures == 2
    assert PredictionEvent.objects.count() == 710


def test_a_stopping_ingest_process_refuses_batches_and_the_writer_writes_them(
    serve, writer
):
    server = serve()
    record(writer, make_events(10))
    writer.flush()
    assert server.drain(timeout=1) is True  # nothing in hand
    record(writer, make_events(10, prefix="s"))
    assert writer.flush() is True
    assert server.stored == 10
    assert PredictionEvent.objects.count() == 20


def test_a_broken_connection_between_batches_stores_nothing_twice(serve, writer):
    server = serve()
    record(writer, make_events(10))
    writer.flush()
    # the ingest side of the connection goes away between two batches
    server.shutdown()
    server.server_close()
    writer._ingest._sock.shutdown(socket.SHUT_RDWR)
    record(writer, make_events(10, prefix="s"))
    assert writer.flush() is True
    ids = stored_ids()
    assert len(ids) == len(set(ids)) == 20


def test_a_second_ingest_process_is_refused_and_a_stale_socket_is_taken_over(
    serve, ingest_socket
):
    serve()
    with pytest.raises(RuntimeError, match="already listens"):
        IngestServer(ingest_socket)
    # a file nobody listens on (a SIGKILLed process's) is removed
    stale = ingest_socket.with_name("stale.sock")
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))
    leftover.close()
    assert stale.exists()
    server = IngestServer(stale)
    try:
        assert oct(stale.stat().st_mode & 0o777) == "0o600"
    finally:
        server.server_close()
    assert not stale.exists()


def test_a_deep_var_dir_gets_a_short_socket_path_that_binds(tmp_path):
    deep = tmp_path / ("d" * 120) / "run" / "ingest.sock"
    path = short_socket_path(deep, "ingest")
    assert len(str(path)) <= 100
    assert path.name.startswith("mlserving-ingest-")
    # stable for one VAR_DIR, distinct for another
    assert short_socket_path(deep, "ingest") == path
    assert short_socket_path(tmp_path / ("e" * 120) / "x.sock", "ingest") != path
    server = IngestServer(path)
    server.server_close()
    assert not path.exists()
    # a path that is short already stays where it was
    short = tmp_path / "a.sock"
    assert short_socket_path(short, "ingest") == short.resolve()


def test_a_socket_path_too_long_for_unix_sockets_is_refused_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="too long for a unix socket"):
        IngestServer(tmp_path / ("x" * 120) / "ingest.sock")


def test_an_oversized_frame_closes_the_connection(serve, ingest_socket, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_FRAME_BYTES", 1_000)
    serve()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(ingest_socket))
    client.sendall(ingest.HEADER.pack(10_000) + b"x" * 100)
    client.settimeout(5)
    try:  # closed without reading the body: EOF, or a reset for the unread bytes
        assert client.recv(1) == b""
    except ConnectionResetError:
        pass
    client.close()
    assert PredictionEvent.objects.count() == 0


def test_an_unreadable_frame_closes_the_connection_and_stores_nothing(
    serve, ingest_socket
):
    server = serve()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(ingest_socket))
    client.sendall(ingest.HEADER.pack(5) + b"hello")
    client.settimeout(5)
    assert client.recv(1) == b""  # closed without an answer
    client.close()
    assert server.stored == 0
    assert PredictionEvent.objects.count() == 0
