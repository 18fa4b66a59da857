"""Prediction events as rows: the `Event` the data plane hands over, its
row tuple (built on the request's thread, a few microseconds), and the
batch insert both the writer thread and the ingest process use.

The row layout is shared by the writer (monitoring/events.py), the ingest
process (monitoring/ingest.py) and the Prometheus counts
(monitoring/prometheus.py), which read fields by position.
"""

import functools
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import orjson
from django.db import connection, transaction

from monitoring.models import PredictionEvent

# The arm of a shadow prediction's event: a mirrored copy, not a request
# anyone made.
SHADOW_ARM = "shadow"


@dataclass(slots=True)
class Event:
    created: float  # time.time() at arrival
    request_id: str
    model: str
    version: str
    latency_ms: float
    outcome: str  # "ok" or the error code
    status_code: int
    labels: np.ndarray | None = None
    proba: np.ndarray | None = None
    experiment: str = ""
    arm: str = ""
    subject_key: str = ""
    cached: bool = False
    features: np.ndarray | None = None
    # Shadow predictions (experiments/shadow.py).
    shadow: bool = False
    agreed_rows: int | None = None
    primary_latency_ms: float | None = None


def _class_key(label) -> str:
    return str(label.item() if isinstance(label, np.generic) else label)


COLUMNS = (
    "request_id",
    "created_at",
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
    "shadow",
    "agreed_rows",
    "primary_latency_ms",
)
# Positions in a row that Prometheus counts by.
EVENT_MODEL = COLUMNS.index("model")
EVENT_VERSION = COLUMNS.index("version")
EVENT_ARM = COLUMNS.index("arm")
EVENT_OUTCOME = COLUMNS.index("outcome")
EVENT_LATENCY = COLUMNS.index("latency_ms")
EVENT_ROWS = COLUMNS.index("rows")


_second: tuple[int, str] = (-1, "")


def _sqlite_time(ts: float) -> str:
    """time.time() -> "YYYY-MM-DD HH:MM:SS.ffffff" UTC, as Django stores
    datetimes in SQLite (it drops ".000000"; strings with and without it
    sort the same way against Django's own). The date part is formatted
    once per second: formatting a datetime costs 5 µs, most of record()."""
    global _second
    second, micro = divmod(int(ts * 1_000_000), 1_000_000)
    cached, prefix = _second
    if cached != second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")
        _second = (second, prefix)
    return f"{prefix}.{micro:06d}"


def _aware_time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def timestamp_adapter():
    """time.time() -> the created_at parameter: an aware datetime, or for
    SQLite the naive UTC string Django itself would store (its adapter
    costs a few µs per call, mostly looking up the connection)."""
    return _sqlite_time if connection.vendor == "sqlite" else _aware_time


def to_row(event: Event, adapt_time) -> tuple:
    """The column values of an event, in COLUMNS order."""
    labels, proba = event.labels, event.proba
    rows = 0 if labels is None else len(labels)
    predicted, class_counts, confidence = "", None, None
    if rows == 1:
        predicted = _class_key(labels[0])
        if proba is not None:
            confidence = max(proba[0].tolist())
    elif rows > 1:
        keys, counts = np.unique(labels, return_counts=True)
        class_counts = orjson.dumps(
            {_class_key(k): int(c) for k, c in zip(keys, counts, strict=True)}
        ).decode()
        if proba is not None:
            confidence = float(proba.max(axis=1).mean())
    features = None
    if event.features is not None:
        features = orjson.dumps(event.features.tolist()).decode()
    return (
        event.request_id,
        adapt_time(event.created),
        event.model,
        event.version,
        event.experiment,
        event.arm,
        event.latency_ms,
        event.outcome,
        event.status_code,
        rows,
        predicted,
        class_counts,
        confidence,
        event.subject_key,
        event.cached,
        features,
        event.shadow,
        event.agreed_rows,
        event.primary_latency_ms,
    )


# SQLite: rows per INSERT statement. sqlite3's executemany steps the
# statement once per row and hands the GIL over at every step, which a
# saturated request thread pays for (bench/README.md); one multi-row
# statement per chunk steps once. Sent through the sqlite3 connection
# itself: Django's cursor rewrites the placeholders of so long a statement
# slower than SQLite inserts the rows. 100 rows per statement keeps each
# GIL-holding bind short (a request waiting for the GIL waits for it).
INSERT_CHUNK_ROWS = 100


@functools.lru_cache(maxsize=8)
def _insert_sql(vendor: str, rows: int = 1) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in COLUMNS)
    mark = "?" if vendor == "sqlite" else "%s"
    values = "(" + ", ".join([mark] * len(COLUMNS)) + ")"
    return (
        f"INSERT INTO {quote(PredictionEvent._meta.db_table)} ({columns}) "
        f"VALUES {', '.join([values] * rows)}"
    )


def events_insert(rows: list[tuple]) -> None:
    """Insert event rows (from to_row) in one transaction. Raw SQL:
    building model instances would cost more than everything else the
    writer does. DatabaseError when the database refuses."""
    vendor = connection.vendor
    with transaction.atomic():
        if vendor != "sqlite":
            # psycopg pipelines executemany: one round trip per batch.
            with connection.cursor() as cursor:
                cursor.executemany(_insert_sql(vendor), rows)
            return
        raw = connection.connection  # open: atomic() connected
        with connection.wrap_database_errors:
            for start in range(0, len(rows), INSERT_CHUNK_ROWS):
                chunk = rows[start : start + INSERT_CHUNK_ROWS]
                raw.execute(
                    _insert_sql(vendor, len(chunk)),
                    list(itertools.chain.from_iterable(chunk)),
                )


def batch_stored(rows: list[tuple]) -> bool:
    """Whether a batch whose insert raised was committed after all (the
    acknowledgement, not the commit, was lost). A batch is one transaction,
    so its first row tells: compared with the very values stored."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {quote(PredictionEvent._meta.db_table)} "
            f"WHERE {quote('request_id')} = %s AND {quote('created_at')} = %s",
            rows[0][:2],
        )
        return cursor.fetchone() is not None
