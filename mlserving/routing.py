"""Websocket routes, served by the web processes behind the auth middleware
and the origin check in mlserving/asgi.py. Refusals (a user who may not
watch, an unknown path) are answered without the channel layer
(monitoring/consumers.py says why)."""

from django.urls import path, re_path

from monitoring.consumers import MetricsConsumer, watchers_only, websocket_not_found

websocket_urlpatterns = [
    path("ws/metrics/", watchers_only(MetricsConsumer.as_asgi())),
    re_path(r"", websocket_not_found),
]
