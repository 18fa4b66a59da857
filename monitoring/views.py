"""GET /health, GET /metrics, GET /metrics/prometheus, POST /feedback and
the dashboard."""

from urllib.parse import urlsplit

from django.http import HttpResponse
from django.views.generic import TemplateView
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from access.auth import READ, request_key
from access.services import health_details_allowed
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
    # Never refused and never throttled (probes); credentials only widen
    # what it says, so a wrong key is not an error here.
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(
        operation_id="health",
        summary="Liveness and readiness: database, Redis, loaded models",
        description=(
            "200 when the database answers, 503 when it does not. Anonymous "
            "callers get only `status` (unless HEALTH_DETAILS_PUBLIC); an API "
            "key or a staff session gets the whole report."
        ),
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request):
        report, status = health.health_report(serving=serving.status())
        # Django's request user: the session's (this view has no DRF
        # authenticators, so a wrong key is no error here)
        user, key = request._request.user, request_key(request)
        if not health_details_allowed(user=user, key=key):
            report = {"status": report["status"]}
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

    def render_to_response(self, context, **response_kwargs):
        response = super().render_to_response(context, **response_kwargs)
        response["Content-Security-Policy"] = dashboard_csp(context["websocket_url"])
        return response


def dashboard_csp(websocket_url: str) -> str:
    """The dashboard's Content-Security-Policy: scripts, styles and
    everything else from this origin only (the page has no inline script
    or style, and Chart.js is vendored), the API on this origin and the
    live-metrics websocket on its own origin (WEBSOCKET_URL may name
    another host or port), and no framing. Set on this one view, not by a
    middleware: its websocket origin varies per request, and no other page
    needs it (the admin and the API docs have their own needs)."""
    parts = urlsplit(websocket_url)
    connect = "'self'"
    if parts.scheme in ("ws", "wss") and parts.netloc:
        connect += f" {parts.scheme}://{parts.netloc}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src {connect}",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
        ]
    )


class FeedbackApi(APIView):
    # feedback on a prediction is part of using the model: a read
    access = READ
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
