"""ASGI application of the bare Django project (serve.py runs it)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.bare_django.settings")
os.environ["BARE_ASGI"] = "1"

from django.core.asgi import get_asgi_application  # noqa: E402

from bench.bare_django.signals import database_receivers_disconnect  # noqa: E402

application = get_asgi_application()
database_receivers_disconnect()
