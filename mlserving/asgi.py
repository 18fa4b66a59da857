"""ASGI entry point: websockets (Channels) and the same HTTP routes."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlserving.settings")

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import (  # noqa: E402
    AllowedHostsOriginValidator,
)

from mlserving.dataplane.serving import warmup_in_background  # noqa: E402
from mlserving.routing import websocket_urlpatterns  # noqa: E402
from monitoring.roles import role_register  # noqa: E402

role_register("ws")
# The ASGI process serves the HTTP routes too: load the active versions.
# ASGI servers import this module inside their event loop, where Django
# forbids database calls, hence a thread.
warmup_in_background()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
