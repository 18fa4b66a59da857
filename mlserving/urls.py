"""URL map: the seed's paths exactly as it spells them (no trailing
slash), the docs, the admin and the dashboard."""

from django.contrib import admin
from django.urls import path, re_path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularJSONAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from experiments.views import AbTestConfigureApi, AbTestStatusApi
from mlserving.dataplane.views import PredictApi
from monitoring.views import (
    DashboardView,
    FeedbackApi,
    HealthApi,
    MetricsApi,
    PrometheusApi,
)
from registry.views import ModelActivateApi, ModelRollbackApi, ModelsApi

handler400 = "mlserving.errors.bad_request"
handler403 = "mlserving.errors.permission_denied"
handler404 = "mlserving.errors.page_not_found"
handler500 = "mlserving.errors.server_error"

_VERSION = r"(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{0,63})"

urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    path("health", HealthApi.as_view(), name="health"),
    path("predict", PredictApi.as_view(), name="predict"),
    path("models", ModelsApi.as_view(), name="models"),
    path("models/rollback", ModelRollbackApi.as_view(), name="rollback"),
    re_path(
        rf"^models/{_VERSION}/activate$",
        ModelActivateApi.as_view(),
        name="activate",
    ),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("metrics/prometheus", PrometheusApi.as_view(), name="prometheus"),
    path("ab-test/status", AbTestStatusApi.as_view(), name="ab-test-status"),
    path("ab-test/configure", AbTestConfigureApi.as_view(), name="ab-test-configure"),
    path("feedback", FeedbackApi.as_view(), name="feedback"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    path("openapi.yaml", SpectacularAPIView.as_view(), name="schema-yaml"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("admin/", admin.site.urls),
]
