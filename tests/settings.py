"""Test settings: the project's settings with test-only state under
var/test, so tests never touch the development database or artifacts."""

import os
from pathlib import Path

_var = Path(__file__).resolve().parent.parent / "var" / "test"
os.environ.setdefault("VAR_DIR", str(_var))
os.environ.setdefault("ARTIFACTS_ROOT", str(_var / "artifacts"))
os.environ.setdefault("DEBUG", "true")

from mlserving.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Requests are not throttled in tests (many send hundreds a second from
# 127.0.0.1); tests/api/test_access.py turns throttling on where it is
# the subject.
MLSERVING = {**MLSERVING, "THROTTLE_ANON": "", "THROTTLE_KEY": ""}  # noqa: F405

# Tests write events synchronously (monitoring.events.writer.flush()) in
# their own transaction; server processes they start use the thread.
MONITORING = {**MONITORING, "EVENT_WRITER_THREAD": False}  # noqa: F405

# One SQLite test database per pytest process, so two test runs on one
# checkout never share (or delete) each other's file.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(_var / f"test_db_{os.getpid()}.sqlite3")
    }

# Connections opened in helper threads (Channels' database_sync_to_async)
# are closed after each use, so none is left open when the test database
# is dropped.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
