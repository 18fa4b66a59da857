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
