"""GET /health, GET /metrics, GET /metrics/prometheus and the dashboard."""

import psutil
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse
from django.views.generic import TemplateView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mlserving.conf import monitoring_settings
from mlserving.openapi import error_responses
from monitoring import health, prometheus, selectors
from monitoring.events import writer
from monitoring.serializers import HealthSerializer, MetricsSerializer
from registry import serving


class HealthApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        summary="Liveness and readiness: database, Redis, loaded models",
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request):
        report, status = health.health_report()
        return Response(report, status=status)


class MetricsApi(APIView):
    @extend_schema(
        operation_id="metrics",
        summary="Prediction metrics of every server process over a window",
        description=(
            "Totals, per version and per experiment arm, from the per-minute "
            "rollups (fresh to within ROLLUP_INTERVAL plus the event flush). "
            "Latency percentiles over more than one minute are merged from "
            "histograms, accurate to about 5%."
        ),
        parameters=[
            OpenApiParameter(
                "window",
                str,
                required=False,
                description="How far back: 90s, 15m, 1h, 7d (default "
                "METRICS_WINDOW, 1h; at most 90d).",
            ),
            OpenApiParameter(
                "model", str, required=False, description="Only this model."
            ),
        ],
        responses={200: MetricsSerializer, **error_responses(401, 422)},
    )
    def get(self, request):
        label, seconds = selectors.window_parse(request.query_params.get("window"))
        body = {
            "window": label,
            "window_seconds": seconds,
            **selectors.metrics_summary(
                window_seconds=seconds, model=request.query_params.get("model")
            ),
        }
        body["pipeline"] = selectors.pipeline_status(writer_stats=writer.stats())
        body["models_loaded"] = [
            f"{e.model}:{e.version}" for e in serving.model_cache.loaded()
        ]
        body["system"] = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": psutil.virtual_memory().percent,
            "process_rss_bytes": psutil.Process().memory_info().rss,
        }
        body["system_sampled"] = selectors.system_latest()
        return Response(body)


class PrometheusApi(APIView):
    @extend_schema(
        operation_id="metrics_prometheus",
        summary="Prometheus text exposition, summed over every process",
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR,
                description="mlserving_predictions_total, "
                "mlserving_prediction_latency_seconds (histogram), "
                "mlserving_prediction_rows_total, mlserving_events_dropped_total, "
                "mlserving_events_buffered.",
            ),
            **error_responses(401),
        },
    )
    def get(self, request):
        return HttpResponse(prometheus.render(), content_type=prometheus.CONTENT_TYPE)


class DashboardView(TemplateView):
    """The page at /: live charts, a prediction form, model versions."""

    template_name = "dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["websocket_url"] = self._websocket_url()
        return context

    def _websocket_url(self) -> str:
        """Where the browser finds /ws/metrics/: WEBSOCKET_URL when set
        (behind a proxy), else this host on WS_PORT (the ASGI process)."""
        if monitoring_settings.WEBSOCKET_URL:
            return monitoring_settings.WEBSOCKET_URL
        request = self.request
        scheme = "wss" if request.is_secure() else "ws"
        host = request.get_host()
        if isinstance(request, ASGIRequest):  # the ASGI process: same origin
            return f"{scheme}://{host}/ws/metrics/"
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return f"{scheme}://{hostname}:{monitoring_settings.WS_PORT}/ws/metrics/"
