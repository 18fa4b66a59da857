"""Settings dictionaries read lazily: `app_settings` (settings.MLSERVING,
the serving knobs) and `monitoring_settings` (settings.MONITORING).

Modules never read settings at import time; they ask when they need a
value, so tests can override settings and see the change.
"""

from django.conf import settings
from django.core.signals import setting_changed

SERVING_DEFAULTS = {
    "DEFAULT_MODEL_NAME": "default",
    "DEFAULT_MODEL_VERSION": "v1.0",
    "MAX_MODELS_IN_MEMORY": 3,
    "AB_TEST_ENABLED": False,
    "AB_TEST_SPLIT_RATIO": 0.5,
    "MAX_CONCURRENT_REQUESTS": 100,
    "REQUEST_TIMEOUT": 30.0,
    "REQUEST_BODY_TIMEOUT": 10.0,
    "INLINE_INFERENCE_BUDGET_MS": 10.0,
    "BATCHING": "auto",
    "BATCH_MAX_ROWS": 256,
    "HEADER_TIMEOUT": 10.0,
    "MODEL_RUNTIME": "auto",
    "ONNX_THREADS": 1,
    "PREDICTION_CACHE_TTL": 300.0,
    "PREDICTION_CACHE_SIZE": 10000,
    "PREDICTION_CACHE_MAX_BYTES": 64 * 1024 * 1024,
    "MAX_BATCH_ROWS": 1000,
    "REGISTRY_POLL_INTERVAL": 0.25,
    "READS_OPEN": True,
    "HEALTH_DETAILS_PUBLIC": True,
    "WRITES_OPEN": True,
    "API_KEY_CACHE_SECONDS": 5.0,
    "THROTTLE_ANON": "200/s",
    "THROTTLE_KEY": "2000/s",
    "ALIAS": "production",
    "ALLOW_PICKLE": True,
    "SKOPS_TRUSTED_TYPES": [
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    ],
    "UPLOAD_MAX_BYTES": 100 * 1024 * 1024,
    "ARTIFACT_MAX_UNPACKED_BYTES": 1024 * 1024 * 1024,
    "ARTIFACT_STORE": "database",
    "ARTIFACT_STORE_CHUNK_BYTES": 4 * 1024 * 1024,
    "ARTIFACT_CACHE_DIR": "",
    "ARTIFACT_MISS_RETRY": 10.0,
    "ARTIFACT_CACHE_MAX_BYTES": 10 * 1024**3,
    "ARTIFACT_S3_BUCKET": "",
    "ARTIFACT_S3_ENDPOINT_URL": "",
    "ARTIFACT_S3_REGION": "",
    "ARTIFACT_S3_PREFIX": "artifacts/",
}

MONITORING_DEFAULTS = {
    "ENABLED": True,
    "EVENT_FLUSH_INTERVAL": 0.25,
    "EVENT_BATCH_SIZE": 2000,
    "EVENT_BUFFER_SIZE": 200_000,
    "LOG_FEATURES": False,
    "ROLLUP_INTERVAL": 2,
    "SYSTEM_SAMPLE_INTERVAL": 10,
    "EVENT_RETENTION_HOURS": 48.0,
    "SYSTEM_RETENTION_HOURS": 168.0,
    "SNAPSHOT_MINUTES": 15,
    "METRICS_WINDOW": "1h",
    "WEBSOCKET_URL": "",
    "EVENT_WRITER_THREAD": True,
    "EVENT_INGEST_SOCKET": "",
}

EXPERIMENT_DEFAULTS = {
    "SHADOW_QUEUE_SIZE": 1000,
    "BANDIT_UPDATE_INTERVAL": 10.0,
    "GUARDRAIL_WINDOW_MINUTES": 10,
    "SEQUENTIAL_ALPHA": 0.05,
    "FEEDBACK_WAIT": 2.0,
}


class AppSettings:
    """Attribute access to one settings dict, with defaults; values are
    cached (they are read on every request) until the setting changes."""

    def __init__(self, setting: str, defaults: dict):
        self._setting = setting
        self._defaults = defaults
        setting_changed.connect(self._reload)

    def __getattr__(self, name: str):
        defaults = self.__dict__.get("_defaults", {})
        if name not in defaults:
            raise AttributeError(name)
        value = getattr(settings, self._setting, {}).get(name, defaults[name])
        self.__dict__[name] = value  # later reads skip __getattr__
        return value

    def _reload(self, *, setting: str, **kwargs) -> None:
        if setting == self._setting:
            for name in self._defaults:
                self.__dict__.pop(name, None)


app_settings = AppSettings("MLSERVING", SERVING_DEFAULTS)
monitoring_settings = AppSettings("MONITORING", MONITORING_DEFAULTS)
experiment_settings = AppSettings("EXPERIMENTS", EXPERIMENT_DEFAULTS)
