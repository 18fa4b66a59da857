"""WSGI application of the bare Django project, models loaded at import
(each server worker imports it once):

    BARE_RUNTIME=sklearn BARE_MODELS=lr=/tmp/lr.joblib python -m granian \\
        --interface wsgi --workers 2 bench.bare_django.wsgi:application
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.bare_django.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

from bench.bare_django.signals import database_receivers_disconnect  # noqa: E402
from bench.bare_django.views import models_load  # noqa: E402

application = get_wsgi_application()
database_receivers_disconnect()
models_load()
