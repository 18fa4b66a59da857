"""Settings of the bare Django project: only what a request needs."""

import os

SECRET_KEY = "bare-django-bench-not-secret-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.bare_django.urls"
DATABASES: dict = {}
USE_I18N = False
USE_TZ = True
# The project's runtime classes read ONNX_THREADS here, as ours do.
MLSERVING = {"ONNX_THREADS": int(os.environ.get("ONNX_THREADS", "1"))}
