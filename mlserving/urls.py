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
from mlserving.dataplane.v2_views import (
    V2InferApi,
    V2LiveApi,
    V2ModelApi,
    V2ModelReadyApi,
    V2ReadyApi,
    V2ServerApi,
)
from mlserving.dataplane.views import PredictApi
from mlserving.errors import route_not_found
from monitoring.views import (
    DashboardView,
    FeedbackApi,
    HealthApi,
    MetricsApi,
    PrometheusApi,
)
from registry.views import (
    ModelActivateApi,
    ModelAliasApi,
    ModelRollbackApi,
    ModelsApi,
    ModelVersionUploadApi,
)

handler400 = "mlserving.errors.bad_request"
handler403 = "mlserving.errors.permission_denied"
handler404 = "mlserving.errors.page_not_found"
handler500 = "mlserving.errors.server_error"

_VERSION = r"(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{0,63})"

# /v2/models/{name}[@alias][/versions/{version}]: two routes each, so
# the schema shows both forms.
_V2_NAME = (
    r"v2/models/(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,99}(?:@[a-z][a-z0-9_-]{0,49})?)"
)
_V2_VERSIONED = rf"{_V2_NAME}/versions/(?P<version>[A-Za-z0-9][A-Za-z0-9._-]{{0,63}})"


def _v2(suffix: str, view, name: str) -> list:
    return [
        re_path(rf"^{_V2_NAME}{suffix}$", view.as_view(), name=name),
        re_path(rf"^{_V2_VERSIONED}{suffix}$", view.as_view(), name=f"{name}-version"),
    ]


urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    path("health", HealthApi.as_view(), name="health"),
    path("predict", PredictApi.as_view(), name="predict"),
    path("models", ModelsApi.as_view(), name="models"),
    path("models/rollback", ModelRollbackApi.as_view(), name="rollback"),
    path("models/upload", ModelVersionUploadApi.as_view(), name="upload"),
    # Any name reaches the view: an invalid one is a 422 that says why.
    path("models/aliases/<str:alias>", ModelAliasApi.as_view(), name="alias"),
    re_path(
        rf"^models/{_VERSION}/activate$",
        ModelActivateApi.as_view(),
        name="activate",
    ),
    path("v2", V2ServerApi.as_view(), name="v2"),
    path("v2/health/live", V2LiveApi.as_view(), name="v2-live"),
    path("v2/health/ready", V2ReadyApi.as_view(), name="v2-ready"),
    *_v2("", V2ModelApi, "v2-model"),
    *_v2("/ready", V2ModelReadyApi, "v2-model-ready"),
    *_v2("/infer", V2InferApi, "v2-infer"),
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
    # Last: every other path is a JSON 404 even with DEBUG on, where Django
    # would answer it with its HTML debug page (mlserving.errors). No "$":
    # a pattern without one need only match the path's start, so this one
    # also takes paths with a newline in them.
    re_path(r"^.*", route_not_found, name="not-found"),
]
