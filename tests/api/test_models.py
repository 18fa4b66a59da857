"""GET /models, POST /models/{version}/activate, POST /models/rollback,
GET /health, GET /metrics, through the real URL routes."""

import json

import pytest

from registry.models import AliasChange
from tests.conftest import SEED_FEATURES, flip_one_byte, settle_metrics


def predict(client, **fields):
    body = {"features": SEED_FEATURES, **fields}
    return client.post("/predict", json.dumps(body), content_type="application/json")


def test_models_lists_every_version_with_metadata(client, two_versions):
    predict(client)  # loads v1.0 in this process
    body = client.get("/models").json()
    assert body["model"] == "default"
    assert body["active_version"] == "v1.0"
    assert body["loaded_versions"] == ["v1.0"]
    by_version = {v["version"]: v for v in body["models"]}
    assert set(by_version) == {"v1.0", "v2.0"}
    v1 = by_version["v1.0"]
    assert v1["is_active"] and v1["loaded"]
    assert v1["accuracy"] == 0.8
    assert v1["name"] == "Model v1.0"
    assert v1["model_type"] == "LogisticRegression"
    assert v1["n_features"] == 10
    assert v1["classes"] == [0, 1]
    assert len(v1["sha256"]) == 64
    assert v1["artifact_path"] == "model_v1.0.pkl"
    assert not by_version["v2.0"]["is_active"]
    assert [h["to_version"] for h in body["history"]] == ["v1.0"]


def test_activate_switches_serving_and_records_history(client, two_versions):
    # when: the seed's call, no body
    response = client.generic("POST", "/models/v2.0/activate")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "activated"
    assert (body["previous_version"], body["active_version"]) == ("v1.0", "v2.0")
    assert predict(client).json()["model_version"] == "v2.0"
    change = AliasChange.objects.first()
    assert (change.from_label, change.to_label, change.action) == (
        "v1.0",
        "v2.0",
        "activate",
    )


def test_activating_the_active_version_changes_nothing(client, two_versions):
    body = client.generic("POST", "/models/v1.0/activate").json()
    assert body["status"] == "unchanged"
    assert AliasChange.objects.count() == 1


def test_rollback_walks_back_the_activations(client, two_versions):
    client.generic("POST", "/models/v2.0/activate")
    first = client.generic("POST", "/models/rollback")
    assert first.status_code == 200
    assert first.json()["active_version"] == "v1.0"
    assert predict(client).json()["model_version"] == "v1.0"
    # v1.0 was the first version: nothing earlier to return to
    second = client.generic("POST", "/models/rollback")
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "no_previous_version"
    history = client.get("/models").json()["history"]
    assert [(h["action"], h["from_version"], h["to_version"]) for h in history] == [
        ("rollback", "v2.0", "v1.0"),
        ("activate", "v1.0", "v2.0"),
        ("activate", "", "v1.0"),
    ]


def test_activate_unknown_version_is_404(client, two_versions):
    response = client.generic("POST", "/models/v7.0/activate")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_version_not_found"


def test_activate_tampered_artifact_is_refused_and_v1_keeps_serving(
    client, two_versions
):
    # given: one byte of v2.0's artifact changes
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    # when
    response = client.generic("POST", "/models/v2.0/activate")
    # then
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "artifact_integrity_error"
    assert "model_v2.0.pkl" in error["message"]
    assert "sha256" in error["message"]
    assert predict(client).json()["model_version"] == "v1.0"
    versions = {v["version"]: v for v in client.get("/models").json()["models"]}
    assert versions["v2.0"]["status"] == "integrity_failed"
    assert client.get("/models").json()["active_version"] == "v1.0"


def test_activate_with_a_json_note(client, two_versions):
    response = client.post(
        "/models/v2.0/activate",
        json.dumps({"note": "better recall"}),
        content_type="application/json",
    )
    assert response.json()["change"]["note"] == "better recall"


def test_activate_with_malformed_json_is_400(client, two_versions):
    response = client.post(
        "/models/v2.0/activate", "{nope", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_api_keys_protect_writes_when_configured(
    client, two_versions, settings, api_key
):
    secret = api_key("write", "deploy-bot")
    settings.MLSERVING = {
        **settings.MLSERVING,
        "READS_OPEN": False,
        "WRITES_OPEN": False,
    }
    assert client.generic("POST", "/models/v2.0/activate").status_code == 401
    assert predict(client).status_code == 401
    wrong = client.generic(
        "POST", "/models/v2.0/activate", HTTP_AUTHORIZATION="Bearer nope"
    )
    assert wrong.json()["error"]["code"] == "authentication_failed"
    ok = client.generic(
        "POST", "/models/v2.0/activate", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert ok.status_code == 200
    assert ok.json()["change"]["actor"] == "api-key:deploy-bot"
    keyed = client.post(
        "/predict",
        json.dumps({"features": SEED_FEATURES}),
        content_type="application/json",
        HTTP_X_API_KEY=secret,
    )
    assert keyed.status_code == 200
    assert client.get("/health").status_code == 200


def test_health_reports_database_redis_and_models(client, two_versions):
    predict(client)
    body = client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["database"]["ok"] is True
    assert body["redis"]["required"] is False
    assert body["active_version"] == "v1.0"
    assert body["models_loaded"] == ["default:v1.0"]
    assert body["uptime_seconds"] >= 0


def test_metrics_counts_successes_and_errors(client, two_versions):
    for _ in range(3):
        predict(client)
    predict(client, model_version="v2.0")
    client.post("/predict", "{", content_type="application/json")
    settle_metrics()
    body = client.get("/metrics").json()
    assert body["scope"] == "all processes"
    assert body["total_requests"] == 5
    assert body["successful_predictions"] == 4
    assert body["errors_by_code"] == {"malformed_json": 1}
    assert body["success_rate"] == pytest.approx(0.8)
    shares = {v["model_version"]: v["predictions"] for v in body["by_version"]}
    assert shares == {"v1.0": 3, "v2.0": 1}


def test_a_staff_session_may_predict_and_activate_when_reads_and_writes_are_closed(
    two_versions, settings, admin_user
):
    from django.test import Client

    settings.MLSERVING = {
        **settings.MLSERVING,
        "READS_OPEN": False,
        "WRITES_OPEN": False,
    }
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    token = browser.get("/").cookies["csrftoken"].value
    ok = browser.post(
        "/predict",
        json.dumps({"features": SEED_FEATURES}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert ok.status_code == 200
    no_token = browser.generic("POST", "/models/v2.0/activate")
    assert no_token.status_code == 403
    activated = browser.generic("POST", "/models/v2.0/activate", HTTP_X_CSRFTOKEN=token)
    assert activated.json()["change"]["actor"] == "admin"


@pytest.mark.parametrize(
    "content_type,body",
    [
        ("application/x-www-form-urlencoded", "note=x"),
        ("multipart/form-data; boundary=b", "--b--\r\n"),
        ("text/plain", "{}"),
    ],
)
def test_a_cross_site_form_cannot_activate(client, two_versions, content_type, body):
    # a plain HTML form on any page can send these three, never JSON
    response = client.generic(
        "POST",
        "/models/v2.0/activate",
        body,
        content_type=content_type,
        HTTP_ORIGIN="http://evil.example",
    )
    assert response.status_code == 415
    assert client.get("/models").json()["active_version"] == "v1.0"


def test_a_json_null_body_is_refused(client, two_versions):
    response = client.post(
        "/models/v2.0/activate", "null", content_type="application/json"
    )
    assert response.status_code in (400, 422)
    assert client.get("/models").json()["active_version"] == "v1.0"
