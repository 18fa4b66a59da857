"""Recently computed predictions, per process (PREDICTION_CACHE_TTL).

The seed cached predictions in Redis; here the cache lives in the process,
because a Redis round trip costs more than most models take to answer.
Keys carry the version id and the artifact's sha256, so an activation or a
changed artifact can never return another model's answer.
"""

import threading
import time
from collections import OrderedDict

from mlserving.conf import app_settings


class PredictionCache:
    def __init__(self, *, clock=time.monotonic):
        self._clock = clock
        self._items: OrderedDict = OrderedDict()
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
            expires, value = item
            if expires < self._clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        ttl = app_settings.PREDICTION_CACHE_TTL
        if ttl <= 0:
            return
        size = app_settings.PREDICTION_CACHE_SIZE
        with self._lock:
            self._items[key] = (self._clock() + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
