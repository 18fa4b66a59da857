"""WSGI entry point: what serves HTTP, /predict included (see README,
"Why two servers")."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlserving.settings")

application = get_wsgi_application()

# Load the active versions now, so the first request is not the slow one.
from mlserving.dataplane.serving import warmup  # noqa: E402
from monitoring.roles import role_register  # noqa: E402

role_register("web")
warmup()
