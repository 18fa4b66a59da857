"""OpenAPI, docs pages, error handling, settings, the ASGI app."""

import json
import re
import subprocess
import sys

import httpx
import pytest

from tests.conftest import ROOT, SEED_FEATURES

ERROR_REF = "#/components/schemas/Error"
V2_ERROR_REF = "#/components/schemas/V2Error"


def test_every_endpoint_documents_its_errors(client, db):
    schema = client.get("/openapi.json").json()
    operations = {
        (path, method): op
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
    }
    assert {p for p, _ in operations} >= {
        "/health",
        "/predict",
        "/models",
        "/models/{version}/activate",
        "/models/rollback",
        "/metrics",
    }
    for (path, method), op in operations.items():
        errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        if path == "/v2/health/live":  # 200 while the process runs, or nothing
            continue
        assert errors, f"{method.upper()} {path} documents no error"
        if path not in ("/health", "/v2/health/ready"):
            for status, response in errors.items():
                if path.endswith("/ready") and status == "503":
                    continue  # "not ready" is an answer, not an error
                ref = response["content"]["application/json"]["schema"]["$ref"]
                # /v2 errors have the protocol's shape, {"error": "..."}
                assert ref == (V2_ERROR_REF if path.startswith("/v2") else ERROR_REF)
    predict = schema["paths"]["/predict"]["post"]["responses"]
    assert {"400", "404", "408", "413", "422", "503"} <= set(predict)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(client, db, page):
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    urls += re.findall(r"""(?:url|src)\s*[:=]\s*['"]([^'"]+)['"]""", html)
    assert urls
    for url in urls:
        assert not re.match(r"^(https?:)?//", url), url
    for asset in [u for u in urls if u.startswith("/static/")]:
        assert client.get(asset).status_code == 200, asset


def test_redoc_page_forbids_other_hosts(client, db):
    # ReDoc's bundle renders its logo from cdn.redoc.ly whatever the
    # options; the page's CSP keeps the browser from fetching it.
    html = client.get("/redoc").content.decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp and "default-src 'self'" in csp[1] and "img-src 'self' data:" in csp[1]


def test_health_is_503_when_the_database_is_down(client, db, monkeypatch):
    from django.db import OperationalError

    from monitoring import health

    def broken():
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(health.connection, "cursor", broken)
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database"] == {
        "ok": False,
        "vendor": body["database"]["vendor"],
        "error": "connection refused",
    }


def test_an_unexpected_error_is_a_json_500(client, two_versions, monkeypatch):
    from registry.runtimes import RUNTIMES

    def explode(self, rows):
        raise RuntimeError("kaboom")

    for runtime in RUNTIMES.values():
        monkeypatch.setattr(runtime, "infer", explode)
    response = client.post(
        "/predict",
        json.dumps({"features": SEED_FEATURES}),
        content_type="application/json",
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "kaboom" not in error["message"]
    assert error["request_id"] == response["X-Request-ID"]


def test_batch_past_request_timeout_is_503(client, two_versions, settings):
    settings.MLSERVING = {**settings.MLSERVING, "REQUEST_TIMEOUT": 0}
    rows = [[0.5] * 10] * 600
    response = client.post(
        "/predict", json.dumps({"features": rows}), content_type="application/json"
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "request_timeout"


def test_large_batch_runs_in_chunks_and_keeps_row_order(
    client, two_versions, estimators
):
    import numpy as np

    rows = np.random.default_rng(0).normal(size=(600, 10)).round(4).tolist()
    response = client.post(
        "/predict", json.dumps({"features": rows}), content_type="application/json"
    )
    assert response.status_code == 200
    labels = [p["prediction"] for p in response.json()["predictions"]]
    assert labels == estimators["lr"].predict(np.array(rows)).tolist()


def test_oversized_body_on_other_endpoints_is_413(client, two_versions, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = client.post(
        "/models/v2.0/activate",
        json.dumps({"note": "x" * 500}),
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def settings_process(env: dict) -> subprocess.CompletedProcess:
    clean = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "mlserving.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def production_env(tmp_path) -> dict:
    return {
        "DEBUG": "false",
        "VAR_DIR": str(tmp_path),
        "SECRET_KEY": "k" * 50,
        "ALLOWED_HOSTS": "example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"]
)
def test_production_refuses_to_start_without_critical_values(tmp_path, missing):
    env = production_env(tmp_path)
    env.pop(missing)
    result = settings_process(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_production_starts_with_everything_set(tmp_path):
    result = settings_process(production_env(tmp_path))
    assert result.returncode == 0, result.stderr


def test_nothing_configured_runs_on_embedded_defaults(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.REDIS_URL, s.CELERY_BROKER_URL)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "mlserving.settings",
        },
        timeout=60,
    )
    engine, redis, broker = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert redis.startswith("unix://") and "6379" not in redis
    assert broker.startswith("redis+socket://")


@pytest.mark.anyio
@pytest.mark.django_db(transaction=True)
async def test_the_asgi_app_serves_the_same_http_routes(two_versions):
    from mlserving.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as c:
        response = await c.post("/predict", json={"features": SEED_FEATURES})
    assert response.status_code == 200
    assert response.json()["model_version"] == "v1.0"


def test_the_schema_generates_without_warnings(db):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
