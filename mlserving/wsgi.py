"""WSGI entry point, for a plain WSGI deployment (and bench/front_bench.py).
The Procfile serves mlserving.asgi instead: its front answers /predict and
/feedback on an event loop and bounds slow clients (README, "HTTP
front")."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlserving.settings")

application = get_wsgi_application()

# Load the active versions now, so the first request is not the slow one.
from mlserving.dataplane.serving import warmup  # noqa: E402
from monitoring.roles import role_register  # noqa: E402
from registry.runtimes.sklearn import unpickling_forbid  # noqa: E402

role_register("web")
unpickling_forbid()
warmup()
