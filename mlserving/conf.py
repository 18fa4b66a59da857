"""The serving knobs, read lazily from settings.MLSERVING.

Modules never read settings at import time; they ask `app_settings` when
they need a value, so tests can override settings and see the change.
"""

from django.conf import settings

DEFAULTS = {
    "DEFAULT_MODEL_NAME": "default",
    "DEFAULT_MODEL_VERSION": "v1.0",
    "MAX_MODELS_IN_MEMORY": 3,
    "AB_TEST_ENABLED": False,
    "AB_TEST_SPLIT_RATIO": 0.5,
    "MAX_CONCURRENT_REQUESTS": 100,
    "REQUEST_TIMEOUT": 30.0,
    "PREDICTION_CACHE_TTL": 300.0,
    "PREDICTION_CACHE_SIZE": 10000,
    "MAX_BATCH_ROWS": 1000,
    "REGISTRY_POLL_INTERVAL": 0.25,
    "API_KEYS": [],
    "ALIAS": "production",
}


class AppSettings:
    def __getattr__(self, name: str):
        if name not in DEFAULTS:
            raise AttributeError(name)
        return getattr(settings, "MLSERVING", {}).get(name, DEFAULTS[name])


app_settings = AppSettings()
