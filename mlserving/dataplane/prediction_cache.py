"""Recently computed predictions, per process (PREDICTION_CACHE_TTL).

The seed cached predictions in Redis; here the cache lives in the process,
because a Redis round trip costs more than most models take to answer.
Keys carry the version id and the artifact's sha256, so an activation or a
changed artifact can never return another model's answer.

Bounded twice, least recently used out first: by entries
(PREDICTION_CACHE_SIZE) and by bytes (PREDICTION_CACHE_MAX_BYTES): the
rows in the key plus the cached arrays, so that clients sending large
distinct batches cannot grow a process by more than that.
"""

import sys
import threading
import time
from collections import OrderedDict

import numpy as np

from mlserving.conf import app_settings

# What an entry costs beyond the bytes of its rows and arrays: the dict
# slot, the key and value tuples, the bytes and array headers (measured
# with tracemalloc on CPython 3.11: ~0.6 KB).
ENTRY_OVERHEAD_BYTES = 768


def _array_bytes(value) -> int:
    """Bytes an array keeps alive: its own, or its base's when it is a
    view; for an object array, the objects too."""
    if not isinstance(value, np.ndarray):
        return 0
    base = value.base if isinstance(value.base, np.ndarray) else value
    size = max(value.nbytes, base.nbytes)
    if value.dtype == object:
        size += sum(sys.getsizeof(item) for item in value.flat)
    return size


def entry_bytes(key: tuple, value) -> int:
    """The bytes one cache entry holds: the key's row bytes and sha256,
    the cached arrays (labels, probabilities), plus a fixed overhead."""
    size = ENTRY_OVERHEAD_BYTES
    for part in key:
        if isinstance(part, (bytes, str)):
            size += len(part)
    parts = value if isinstance(value, tuple) else (value,)
    return size + sum(_array_bytes(part) for part in parts)


class PredictionCache:
    def __init__(self, *, clock=time.monotonic):
        self._clock = clock
        # key -> (expires, value, bytes); oldest use first
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(version_id: int, sha256: str, rows) -> tuple:
        return (version_id, sha256, rows.shape, rows.tobytes())

    def get(self, key):
        ttl = app_settings.PREDICTION_CACHE_TTL
        if ttl <= 0:
            return None
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value, _ = item
            if expires < self._clock():
                self._drop(key)
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        """Cache `value` for PREDICTION_CACHE_TTL seconds, then evict the
        least recently used entries until at most PREDICTION_CACHE_SIZE
        entries and PREDICTION_CACHE_MAX_BYTES bytes remain. An entry
        larger than the whole byte budget is not cached."""
        ttl = app_settings.PREDICTION_CACHE_TTL
        if ttl <= 0:
            return
        size = app_settings.PREDICTION_CACHE_SIZE
        budget = app_settings.PREDICTION_CACHE_MAX_BYTES
        nbytes = entry_bytes(key, value)
        with self._lock:
            self._drop(key)
            if nbytes > budget:
                return
            self._items[key] = (self._clock() + ttl, value, nbytes)
            self._bytes += nbytes
            while len(self._items) > size or self._bytes > budget:
                _, (_, _, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted

    def _drop(self, key) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[2]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes the cached entries hold, as entry_bytes() counts them."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
