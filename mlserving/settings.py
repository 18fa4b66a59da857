"""Django settings, driven by the environment (django-environ).

Every key is listed with its default and meaning in `.env.example`. With
nothing configured the project runs on embedded defaults: SQLite under
`var/` and a Redis server the project starts itself (see
`mlserving/redis_url.py`). With DEBUG off, values that production cannot
guess (SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL, the Redis location) must be
given, or start-up stops with ImproperlyConfigured.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from mlserving import redis_url, throttling

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file is optional; real environment variables win over it.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
if env.str("API_KEYS", default=""):
    raise ImproperlyConfigured(
        "API_KEYS is gone: keys are stored hashed, named, scoped and "
        "revocable. Create them with `python manage.py apikey create NAME "
        "--scope write|predict` (or in the admin) and unset API_KEYS."
    )


def _path(value: str) -> Path:
    """A path from the environment; relative ones start at the project."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else BASE_DIR / path


VAR_DIR = _path(env.str("VAR_DIR", default="var"))


def _required_in_production(name: str, debug_default):
    """Return the env value, or the debug default; missing with DEBUG off
    is a start-up error."""
    if name in env.ENVIRON:
        return env.ENVIRON[name]
    if DEBUG:
        return debug_default
    raise ImproperlyConfigured(
        f"{name} must be set when DEBUG is off (see .env.example)."
    )


SECRET_KEY = _required_in_production(
    "SECRET_KEY", "django-insecure-dev-key-do-not-use-in-production"
)
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=(["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else []),
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "simple_history",
    # admin login attempts limited (AXES_* in "Security" below)
    "axes",
    "registry",
    "experiments",
    "monitoring",
    # API keys: djangorestframework-api-key's model with a scope
    # (access.admin hides the library's unscoped model from the admin)
    "rest_framework_api_key",
    "access",
]

# Kept short on purpose: every middleware runs on every /predict call.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as axes asks: turns a locked-out login into its 429 page
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mlserving.urls"
WSGI_APPLICATION = "mlserving.wsgi.application"
ASGI_APPLICATION = "mlserving.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
_sqlite_default = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": env.db_url_config(
        _required_in_production("DATABASE_URL", _sqlite_default)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web processes read while a worker writes; IMMEDIATE
    # transactions and a busy timeout make writers queue instead of failing
    # with "database is locked".
    # https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
    DATABASES["default"]["OPTIONS"] = {
        "init_command": ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests that start real server processes need a file, not :memory:.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, Celery, Channels ----------------------------------------------
REDIS_URL = redis_url.resolve(env.ENVIRON, var_dir=VAR_DIR, debug=DEBUG)
CELERY_BROKER_URL = redis_url.for_kombu(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Schedules live in the database (django-celery-beat), editable in the
# admin; `monitoring.schedules` creates the missing ones after migrate.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
ARTIFACT_VERIFY_INTERVAL = env.int("ARTIFACT_VERIFY_INTERVAL", 300)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [redis_url.channel_layer_host(REDIS_URL)]},
    }
}

# The shared cache (django-redis): throttling counters and admin login
# attempts, shared by every process on every host. Short timeouts: when
# Redis is down, throttling fails open (mlserving/throttling.py) and
# nothing waits long for it.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mlserving",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.25,
        },
    }
}

# --- Static files ---------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Security -------------------------------------------------------------
# Browser-side headers and cookie flags, secure by default with DEBUG off
# (`manage.py check --deploy` has nothing to say), relaxed with DEBUG on.
# https://docs.djangoproject.com/en/5.2/ref/middleware/#module-django.middleware.security
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Kubernetes probes and Prometheus reach the pods over plain HTTP inside
# the cluster: these answer there instead of redirecting (patterns are
# searched in the path without its leading slash).
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^v2/health/", r"^metrics/prometheus$"]
# One year. Sent only on HTTPS responses. includeSubDomains covers the
# service's own host name and below; preload only makes the host eligible
# for the browsers' list (an owner submits the registrable domain at
# hstspreload.org). Set SECURE_HSTS_SECONDS=0 until HTTPS works everywhere.
SECURE_HSTS_SECONDS = env.int(
    "SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)


def _proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """'X-Forwarded-Proto' -> ('HTTP_X_FORWARDED_PROTO', 'https'); a value
    other than https after a colon ('X-Forwarded-Ssl:on'); blank: None."""
    name, _, wanted = value.strip().partition(":")
    if not name.strip():
        return None
    meta = "HTTP_" + name.strip().upper().replace("-", "_")
    return meta, wanted.strip() or "https"


# Behind a proxy that terminates TLS: the header it sets to say the client
# used HTTPS. Only when the proxy always sets it (a client could send it
# too); without it, SECURE_SSL_REDIRECT redirects every request, forever.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(
    env.str("SECURE_PROXY_SSL_HEADER", default="")
)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = env.bool("SESSION_COOKIE_HTTPONLY", default=True)
# Lax, Strict, None (browsers take it on secure cookies only) or false (no
# attribute).
_SAMESITE = env.str("SESSION_COOKIE_SAMESITE", default="Lax").capitalize()
if _SAMESITE not in ("Lax", "Strict", "None", "False"):
    raise ImproperlyConfigured(
        f"SESSION_COOKIE_SAMESITE must be Lax, Strict, None or false; got {_SAMESITE!r}."
    )
SESSION_COOKIE_SAMESITE = False if _SAMESITE == "False" else _SAMESITE
SECURE_CONTENT_TYPE_NOSNIFF = env.bool("SECURE_CONTENT_TYPE_NOSNIFF", default=True)
SECURE_REFERRER_POLICY = env.str("SECURE_REFERRER_POLICY", default="same-origin")
X_FRAME_OPTIONS = env.str("X_FRAME_OPTIONS", default="DENY")

# Admin login attempts (django-axes), counted in the shared cache (CACHES
# "default", Redis) so every process and host sees the same counts: after
# AXES_FAILURE_LIMIT failures for one username from one address, that pair
# is refused (429, even with the right password) for AXES_COOLOFF minutes.
# The handler fails open when Redis is unreachable
# (mlserving/login_attempts.py).
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "mlserving.login_attempts.FailOpenAxesCacheHandler"
AXES_CACHE = "default"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A successful login clears that pair's failures.
AXES_RESET_ON_SUCCESS = True

# --- Request limits -------------------------------------------------------
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
# Admin uploads of artifacts go to a temporary file past this size.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- REST framework and OpenAPI -------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["mlserving.json.ORJSONRenderer"],
    # API writes take JSON only (415 otherwise): a form on another site
    # cannot post JSON without CORS, so no cross-site form can activate a
    # version or start an experiment. The admin uses Django forms, not this.
    "DEFAULT_PARSER_CLASSES": ["mlserving.json.ORJSONParser"],
    # The key first: its scheme is what a 401's WWW-Authenticate names.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["access.auth.ApiAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["access.auth.SharedRateThrottle"],
    "EXCEPTION_HANDLER": "mlserving.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mlserving.openapi.request_schema_precise",
    ],
    "TITLE": "ML model serving API",
    "DESCRIPTION": (
        "Predictions from registered scikit-learn models, a versioned "
        "registry with activation history, and monitoring. Every error "
        'has the shape {"error": {"code", "message", "details"}}.'
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Serving (the seed's keys keep their names) ---------------------------
ARTIFACTS_ROOT = _path(env.str("ARTIFACTS_ROOT", default="artifacts"))
_BATCHING = env.str("BATCHING", default="auto").lower()
if _BATCHING not in ("auto", "on", "off"):
    raise ImproperlyConfigured(f"BATCHING must be auto, on or off; got {_BATCHING!r}.")
_MODEL_RUNTIME = env.str("MODEL_RUNTIME", default="auto").lower()
if _MODEL_RUNTIME not in ("auto", "sklearn", "onnx"):
    raise ImproperlyConfigured(
        f"MODEL_RUNTIME must be auto, sklearn or onnx; got {_MODEL_RUNTIME!r}."
    )
MLSERVING = {
    # Registered model the seed's endpoints act on; blank means "the only
    # registered model".
    "DEFAULT_MODEL_NAME": env.str("DEFAULT_MODEL_NAME", default="default"),
    # Version activated when the default model has no active version yet.
    "DEFAULT_MODEL_VERSION": env.str("DEFAULT_MODEL_VERSION", default="v1.0"),
    "MAX_MODELS_IN_MEMORY": env.int("MAX_MODELS_IN_MEMORY", 3),
    "AB_TEST_ENABLED": env.bool("AB_TEST_ENABLED", False),
    "AB_TEST_SPLIT_RATIO": env.float("AB_TEST_SPLIT_RATIO", 0.5),
    # HTTP requests at once per web process; past it the front answers 503
    # with Retry-After at once (mlserving/front.py).
    "MAX_CONCURRENT_REQUESTS": env.int("MAX_CONCURRENT_REQUESTS", 100),
    "REQUEST_TIMEOUT": env.float("REQUEST_TIMEOUT", 30.0),
    # Seconds a request body may take to arrive (408 past it), and a
    # request's headers after its first byte (the connection is closed).
    "REQUEST_BODY_TIMEOUT": env.float("REQUEST_BODY_TIMEOUT", 10.0),
    "HEADER_TIMEOUT": env.float("HEADER_TIMEOUT", 10.0),
    # An inference call expected to take longer than this runs on the web
    # process's inference thread instead of its event loop (0: always).
    "INLINE_INFERENCE_BUDGET_MS": env.float("INLINE_INFERENCE_BUDGET_MS", 10.0),
    # Concurrent calls for one version on the inference thread stacked
    # into one runtime call (mlserving/dataplane/batching.py): "auto"
    # where that is cheaper (scikit-learn, or measured), "on", "off"; at
    # most BATCH_MAX_ROWS rows per stacked call.
    "BATCHING": _BATCHING,
    "BATCH_MAX_ROWS": env.int("BATCH_MAX_ROWS", 256),
    # Which runtime serves a version whose own `runtime` field is "auto":
    # "auto" (ONNX Runtime where the version's ONNX conversion validated at
    # registration, else scikit-learn), "sklearn" or "onnx".
    "MODEL_RUNTIME": _MODEL_RUNTIME,
    # Threads of each ONNX Runtime session (per version, per process): one
    # row costs ~10 us, far less than a thread hand-over (bench/README.md).
    "ONNX_THREADS": env.int("ONNX_THREADS", 1),
    "PREDICTION_CACHE_TTL": env.float("PREDICTION_CACHE_TTL", 300.0),
    "PREDICTION_CACHE_SIZE": env.int("PREDICTION_CACHE_SIZE", 10000),
    # Bytes each process's prediction cache may hold (the rows of the
    # keys plus the cached labels and probabilities); least recently used
    # entries go first, and an answer larger than this is not cached.
    "PREDICTION_CACHE_MAX_BYTES": env.int(
        "PREDICTION_CACHE_MAX_BYTES", 64 * 1024 * 1024
    ),
    "MAX_BATCH_ROWS": env.int("MAX_BATCH_ROWS", 1000),
    # How often a process checks whether the registry changed (seconds).
    "REGISTRY_POLL_INTERVAL": env.float("REGISTRY_POLL_INTERVAL", 0.25),
    # Who may call the API without credentials (access/services.py):
    # reads and predictions (open by default, as the seed), and writes
    # (activate, rollback, aliases, experiments, uploads: open only in
    # development). Otherwise a key (`manage.py apikey create`) or a staff
    # session. With DEBUG off and WRITES_OPEN unset, a web process refuses
    # to start until a key with the write scope exists.
    "READS_OPEN": env.bool("READS_OPEN", True),
    # Whether anonymous GET /health gets the whole report (process id,
    # Redis location, models) or only its status.
    "HEALTH_DETAILS_PUBLIC": env.bool("HEALTH_DETAILS_PUBLIC", DEBUG),
    "WRITES_OPEN": env.bool("WRITES_OPEN", DEBUG),
    # Seconds a process trusts a key it verified (a revocation takes
    # effect within this time).
    "API_KEY_CACHE_SECONDS": env.float("API_KEY_CACHE_SECONDS", 5.0),
    # Requests per client on every host together (mlserving/throttling.py):
    # "N/s", "N/min" or "N/h"; blank for no limit. Anonymous clients are
    # counted by address, keys by key; past the rate, 429 with Retry-After.
    "THROTTLE_ANON": env.str("THROTTLE_ANON", "200/s"),
    "THROTTLE_KEY": env.str("THROTTLE_KEY", "2000/s"),
    "ALIAS": "production",
    # joblib/pickle files run code when loaded: they may be registered
    # only from the server's own disk (register_model, sync_artifacts; the
    # seed's convention), only while this is on, and are converted to
    # skops there; no other process ever unpickles (registry/formats.py).
    "ALLOW_PICKLE": env.bool("ALLOW_PICKLE", True),
    # Types beyond skops' defaults an uploaded skops file may build: the
    # tree structures of scikit-learn's forests and boosting models.
    # https://skops.readthedocs.io/en/stable/persistence.html
    "SKOPS_TRUSTED_TYPES": env.list(
        "SKOPS_TRUSTED_TYPES",
        default=[
            "sklearn.tree._tree.Tree",
            "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        ],
    ),
    # An uploaded artifact's size, and what a skops (zip) file may unpack
    # to (its central directory is checked before anything is read).
    "UPLOAD_MAX_BYTES": env.int("UPLOAD_MAX_BYTES", 100 * 1024 * 1024),
    "ARTIFACT_MAX_UNPACKED_BYTES": env.int(
        "ARTIFACT_MAX_UNPACKED_BYTES", 1024 * 1024 * 1024
    ),
    # The shared, content-addressed artifact store every host reads a
    # version's files from when it lacks them (registry/store.py):
    # "database" (chunks of ARTIFACT_STORE_CHUNK_BYTES in the registry's
    # database). Each host keeps what it fetched in ARTIFACT_CACHE_DIR
    # (blank: VAR_DIR/artifact-cache), keyed by sha256; a file neither
    # there, in ARTIFACTS_ROOT nor in the store is asked for again after
    # ARTIFACT_MISS_RETRY seconds.
    "ARTIFACT_STORE": env.str("ARTIFACT_STORE", default="database").lower(),
    "ARTIFACT_STORE_CHUNK_BYTES": env.int(
        "ARTIFACT_STORE_CHUNK_BYTES", 4 * 1024 * 1024
    ),
    "ARTIFACT_CACHE_DIR": str(
        _path(env.str("ARTIFACT_CACHE_DIR", default=str(VAR_DIR / "artifact-cache")))
    ),
    "ARTIFACT_MISS_RETRY": env.float("ARTIFACT_MISS_RETRY", 10.0),
    # Bytes this host's cache may hold (0: no limit); past it the least
    # recently used objects are removed (fetched again when needed).
    "ARTIFACT_CACHE_MAX_BYTES": env.int("ARTIFACT_CACHE_MAX_BYTES", 10 * 1024**3),
    # ARTIFACT_STORE=s3: the bucket (any S3 API; credentials from boto3's
    # usual places: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a role).
    "ARTIFACT_S3_BUCKET": env.str("ARTIFACT_S3_BUCKET", default=""),
    "ARTIFACT_S3_ENDPOINT_URL": env.str("ARTIFACT_S3_ENDPOINT_URL", default=""),
    "ARTIFACT_S3_REGION": env.str("ARTIFACT_S3_REGION", default=""),
    "ARTIFACT_S3_PREFIX": env.str("ARTIFACT_S3_PREFIX", default="artifacts/"),
}

if MLSERVING["ARTIFACT_STORE"] not in ("database", "s3"):
    raise ImproperlyConfigured(
        f"ARTIFACT_STORE must be database or s3; got {MLSERVING['ARTIFACT_STORE']!r}."
    )
if MLSERVING["ARTIFACT_STORE"] == "s3" and not MLSERVING["ARTIFACT_S3_BUCKET"]:
    raise ImproperlyConfigured("ARTIFACT_STORE=s3 needs ARTIFACT_S3_BUCKET.")
# a malformed rate stops start-up, not the first request
for _rate in (MLSERVING["THROTTLE_ANON"], MLSERVING["THROTTLE_KEY"]):
    throttling.parse_rate(_rate)

# --- Experiments ----------------------------------------------------------
EXPERIMENTS = {
    # Mirrored requests waiting for shadow versions, per process; past it
    # copies are dropped and counted (the caller never waits).
    "SHADOW_QUEUE_SIZE": env.int("SHADOW_QUEUE_SIZE", 1000),
    # How often (s) a weighted experiment's Thompson allocation is
    # recomputed from rollups.
    "BANDIT_UPDATE_INTERVAL": env.float("BANDIT_UPDATE_INTERVAL", 10.0),
    # Guardrails judge each arm on the last N minutes of rollups.
    "GUARDRAIL_WINDOW_MINUTES": env.int("GUARDRAIL_WINDOW_MINUTES", 10),
    # The sequential test's level for declaring (and auto-promoting) a
    # winner.
    "SEQUENTIAL_ALPHA": env.float("SEQUENTIAL_ALPHA", 0.05),
    # How long POST /feedback waits for a just-made prediction to reach the
    # event log before answering 404 (events are written in batches).
    "FEEDBACK_WAIT": env.float("FEEDBACK_WAIT", 2.0),
}

# --- Monitoring -----------------------------------------------------------
MONITORING = {
    # Off: no prediction events and no Prometheus counters (benchmarks
    # compare the two).
    "ENABLED": env.bool("MONITORING_ENABLED", True),
    # Each web process buffers events in memory and writes them in batches
    # from a background thread: every EVENT_FLUSH_INTERVAL seconds, or at
    # once when EVENT_BATCH_SIZE are waiting.
    "EVENT_FLUSH_INTERVAL": env.float("EVENT_FLUSH_INTERVAL", 0.25),
    # 2,000, not 500: at 4,000 req/s per worker a flush then comes every
    # interval instead of eight times a second, and the p99 at one
    # connection fell from 2.5-2.7 to 1.7-2.0 ms (bench/README.md, "Tail
    # latency"); the interval still bounds what a killed worker loses.
    "EVENT_BATCH_SIZE": env.int("EVENT_BATCH_SIZE", 2000),
    # Events a process holds while the database is unreachable; past this,
    # new events are dropped and counted (events_dropped in /metrics).
    "EVENT_BUFFER_SIZE": env.int("EVENT_BUFFER_SIZE", 200_000),
    # Store each request's feature rows with its event (for drift checks).
    "LOG_FEATURES": env.bool("LOG_FEATURES", False),
    # Whole seconds between rollup runs, and between psutil samples: the
    # initial beat schedules (editable in the admin afterwards).
    "ROLLUP_INTERVAL": env.int("ROLLUP_INTERVAL", 2),
    "SYSTEM_SAMPLE_INTERVAL": env.int("SYSTEM_SAMPLE_INTERVAL", 10),
    # Raw events older than this are deleted; rollups stay.
    "EVENT_RETENTION_HOURS": env.float("EVENT_RETENTION_HOURS", 48.0),
    # System samples older than this are deleted.
    "SYSTEM_RETENTION_HOURS": env.float("SYSTEM_RETENTION_HOURS", 168.0),
    # Minutes of rollups a dashboard gets when its websocket connects.
    "SNAPSHOT_MINUTES": env.int("SNAPSHOT_MINUTES", 15),
    # Default window of GET /metrics.
    "METRICS_WINDOW": env.str("METRICS_WINDOW", "1h"),
    # Absolute ws:// or wss:// URL of /ws/metrics/ as browsers reach it,
    # when a proxy routes it elsewhere; blank: the page's own origin.
    "WEBSOCKET_URL": env.str("WEBSOCKET_URL", ""),
    # The background writer thread; tests write synchronously instead.
    "EVENT_WRITER_THREAD": True,
    # Unix socket of this host's event ingest process (`manage.py
    # ingest_events`, started by run.sh): writers hand it their batches and
    # it does the database writes, out of the web processes. When nothing
    # listens there a writer inserts its batches itself. Blank: always.
    "EVENT_INGEST_SOCKET": env.str(
        "EVENT_INGEST_SOCKET",
        default=str(
            redis_url.short_socket_path(VAR_DIR / "run" / "ingest.sock", "ingest")
        ),
    ),
}

# Prometheus counters are shared by every process of this deployment
# through files in this directory (prometheus_client's multiprocess mode);
# run.sh empties it at start. Set before prometheus_client is imported.
PROMETHEUS_MULTIPROC_DIR = _path(
    env.str("PROMETHEUS_MULTIPROC_DIR", default=str(VAR_DIR / "prometheus"))
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "registry": {"level": env.str("LOG_LEVEL", "INFO")},
        "monitoring": {"level": env.str("LOG_LEVEL", "INFO")},
        "mlserving": {"level": env.str("LOG_LEVEL", "INFO")},
    },
}

STATIC_ROOT.mkdir(parents=True, exist_ok=True)
