"""GET /health, GET /metrics, GET /metrics/prometheus, POST /feedback and
the dashboard."""

from django.http import HttpResponse
from django.views.generic import TemplateView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from mlserving.dataplane import serving
from mlserving.json import JSONOnlyNegotiation, ORJSONParser
from mlserving.openapi import error_responses
from monitoring import feedback, health, prometheus, selectors
from monitoring.serializers import (
    FeedbackRequestSerializer,
    FeedbackResponseSerializer,
    HealthSerializer,
    MetricsSerializer,
)


class HealthApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="health",
        summary="Liveness and readiness: database, Redis, loaded models",
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request):
        report, status = health.health_report(serving=serving.status())
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
                pattern=selectors.WINDOW_PATTERN,
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
        return Response(
            selectors.metrics_report(
                window=request.query_params.get("window"),
                model=request.query_params.get("model"),
                models_loaded=serving.loaded_labels(),
            )
        )


class PrometheusApi(APIView):
    # The answer is always the text exposition (version 0.0.4), whatever
    # Accept says: Prometheus asks for OpenMetrics with text/plain as a
    # fallback, curl sends */*, and either takes this format. DRF's
    # negotiation would match Accept against the JSON renderer (only
    # errors use it) and answer 406.
    content_negotiation_class = JSONOnlyNegotiation

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
        request = self.request
        context["websocket_url"] = selectors.websocket_url(
            host=request.get_host(), secure=request.is_secure()
        )
        return context


class FeedbackApi(APIView):
    # JSON only, as the HTTP front's /feedback (monitoring/endpoints.py):
    # the fields take JSON booleans and numbers, which a form cannot send.
    parser_classes = [ORJSONParser]

    @extend_schema(
        operation_id="feedback",
        summary="Report a conversion, reward or true label for a prediction",
        description=(
            "Idempotent per request_id: the same feedback again is "
            "`unchanged`; a field not sent before is merged (`updated`); a "
            "contradicting value is 409. It counts towards accuracy and "
            "conversion of the prediction's version and arm at the next "
            "rollup. An id not logged yet is looked for again for up to "
            "FEEDBACK_WAIT seconds (events are written in batches) before "
            "the 404. 422 for a true_label that is not one of the version's "
            "classes or a reward past 1e9 either side of 0; 409 "
            "`ambiguous_request_id` when several answered predictions carry "
            "the request_id."
        ),
        request=FeedbackRequestSerializer,
        responses={
            200: FeedbackResponseSerializer,
            201: FeedbackResponseSerializer,
            **error_responses(400, 401, 404, 408, 409, 413, 415, 422, 503),
        },
    )
    def post(self, request):
        serializer = FeedbackRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = feedback.feedback_record(**serializer.validated_data)
        return Response(
            feedback.feedback_dict(result),
            status=201 if result.status == "recorded" else 200,
        )
