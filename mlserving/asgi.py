"""ASGI entry point: what every web process serves (Procfile `web`). The
HTTP front (mlserving/front.py) answers /predict and /feedback itself and
hands every other HTTP route to Django and websockets to Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlserving.settings")

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.db import connections  # noqa: E402

from access.services import startup_check  # noqa: E402
from mlserving import throttling  # noqa: E402
from mlserving.dataplane import endpoints, serving, v2  # noqa: E402
from mlserving.dataplane.offload import in_io_thread  # noqa: E402
from mlserving.front import Front, exit_with_parent  # noqa: E402
from mlserving.routing import websocket_urlpatterns  # noqa: E402
from monitoring import endpoints as monitoring_endpoints  # noqa: E402
from monitoring.events import writer  # noqa: E402
from monitoring.roles import role_register  # noqa: E402
from registry.runtimes.sklearn import unpickling_forbid  # noqa: E402


async def _start() -> None:
    role_register("web")
    await in_io_thread(startup_check)  # refuses production with open writes
    throttling.prepare()
    unpickling_forbid()
    exit_with_parent()
    # Loaded before the process takes its first request (mlserving.serve
    # warms up before it binds its socket; another server does it here).
    if not serving.warmed():
        await in_io_thread(serving.warmup)


async def _stop() -> None:
    # What the event buffer holds is written before the process exits.
    await in_io_thread(writer.close)
    await in_io_thread(connections.close_all)


application = Front(
    django=django_asgi_app,
    websocket=AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    ),
    routes={
        ("POST", "/predict"): endpoints.predict,
        ("POST", "/feedback"): monitoring_endpoints.feedback_post,
    },
    patterns=[("POST", v2.INFER_PATH, endpoints.v2_infer)],
    json_only=("/feedback",),
    refused={"/predict": endpoints.predict_refused},
    # probes answer even when the process is at its request limit
    exempt=("/health", "/v2/health/live", "/v2/health/ready"),
    on_startup=[_start],
    on_shutdown=[_stop],
)
