"""Websocket routes, served by the ASGI process behind the auth middleware
and the origin check in mlserving/asgi.py. The live metrics consumer joins
this list with the monitoring work; until then no websocket path exists
and a connection attempt is refused."""

websocket_urlpatterns: list = []
