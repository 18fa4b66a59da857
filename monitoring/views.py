"""GET /health and GET /metrics."""

import psutil
from django.views.generic import TemplateView
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mlserving.openapi import error_responses
from monitoring import health
from monitoring.counters import counters
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
        summary="Prediction counters of this server process",
        responses={200: MetricsSerializer, **error_responses(401)},
    )
    def get(self, request):
        process = psutil.Process()
        body = counters.snapshot()
        body["models_loaded"] = [
            f"{e.model}:{e.version}" for e in serving.model_cache.loaded()
        ]
        body["system"] = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "memory_percent": psutil.virtual_memory().percent,
            "process_rss_bytes": process.memory_info().rss,
        }
        return Response(body)


class DashboardView(TemplateView):
    """The page at /: test a prediction, see and switch model versions."""

    template_name = "dashboard.html"
