"""Websocket routes, served by the web processes behind the auth middleware
and the origin check in mlserving/asgi.py."""

from django.urls import path

from monitoring.consumers import MetricsConsumer

websocket_urlpatterns = [
    path("ws/metrics/", MetricsConsumer.as_asgi()),
]
