"""POST /predict through the real URL routes."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mlserving.dataplane import serving
from tests.conftest import SEED_FEATURES, expected_label, flip_one_byte


def post(client, body, **extra):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/predict", data=data, content_type="application/json", **extra)


def test_seed_request_is_served_by_the_active_version(client, two_versions, estimators):
    # when
    response = post(
        client,
        {"features": SEED_FEATURES, "model_version": None, "use_ab_testing": True},
    )
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "v1.0"
    assert body["model"] == "default"
    assert body["prediction"] == expected_label(estimators["lr"], SEED_FEATURES)
    assert set(body["probabilities"]) == {"0", "1"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["routing"] == {"reason": "alias", "alias": "production"}
    assert body["processing_time_ms"] > 0
    assert response["X-Request-ID"] == body["request_id"]


def test_explicit_version_bypasses_the_alias(client, two_versions, estimators):
    response = post(client, {"features": SEED_FEATURES, "model_version": "v2.0"})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "v2.0"
    assert body["routing"] == {"reason": "explicit"}
    assert body["prediction"] == expected_label(estimators["rf"], SEED_FEATURES)


def test_batch_returns_one_result_per_row(client, two_versions, estimators):
    rows = [SEED_FEATURES, [-x for x in SEED_FEATURES], [0] * 10]
    response = post(client, {"features": rows})
    assert response.status_code == 200
    body = response.json()
    assert [p["prediction"] for p in body["predictions"]] == [
        expected_label(estimators["lr"], row) for row in rows
    ]
    assert "prediction" not in body


def test_client_request_id_is_echoed(client, two_versions):
    response = post(client, {"features": SEED_FEATURES}, HTTP_X_REQUEST_ID="abc-123")
    assert response.json()["request_id"] == "abc-123"


def test_steady_state_prediction_makes_no_database_query(
    client, two_versions, settings
):
    settings.MLSERVING = {**settings.MLSERVING, "REGISTRY_POLL_INTERVAL": 60}
    post(client, {"features": SEED_FEATURES})  # loads the catalog and model
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            assert post(client, {"features": SEED_FEATURES}).status_code == 200
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_prediction_cache_hit_is_flagged_and_identical(client, two_versions, settings):
    settings.MLSERVING = {**settings.MLSERVING, "PREDICTION_CACHE_TTL": 60}
    first = post(client, {"features": SEED_FEATURES}).json()
    second = post(client, {"features": SEED_FEATURES}).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["probabilities"] == second["probabilities"]
    assert first["request_id"] != second["request_id"]


BAD_INPUTS = [
    pytest.param(
        {"features": [1.0, 2.0, 3.0]}, 422, "feature_count_mismatch", id="wrong-count"
    ),
    pytest.param({"features": ["a"] * 10}, 422, "invalid_features", id="strings"),
    pytest.param({"features": [True] * 10}, 422, "invalid_features", id="booleans"),
    pytest.param({"features": [None] * 10}, 422, "invalid_features", id="nulls"),
    pytest.param({"features": None}, 422, "invalid_features", id="features-null"),
    pytest.param(
        b'{"features": [NaN, 1, 2, 3, 4, 5, 6, 7, 8, 9]}',
        422,
        "invalid_features",
        id="nan-literal",
    ),
    pytest.param(
        b'{"features": [Infinity, 1, 2, 3, 4, 5, 6, 7, 8, 9]}',
        422,
        "invalid_features",
        id="infinity-literal",
    ),
    pytest.param(
        b'{"features": [-Infinity, 1, 2, 3, 4, 5, 6, 7, 8, 9]}',
        422,
        "invalid_features",
        id="minus-infinity",
    ),
    pytest.param(
        b'{"features": [1e999, 1, 2, 3, 4, 5, 6, 7, 8, 9]}',
        422,
        "invalid_features",
        id="overflow-to-inf",
    ),
    pytest.param({"features": ["NaN"] * 10}, 422, "invalid_features", id="nan-string"),
    pytest.param({"features": []}, 422, "invalid_features", id="empty-list"),
    pytest.param({"features": [[]]}, 422, "invalid_features", id="empty-row"),
    pytest.param(
        {"features": [[1] * 10, [1] * 9]}, 422, "invalid_features", id="ragged"
    ),
    pytest.param(
        {"features": [[[1]] * 10]}, 422, "invalid_features", id="nested-garbage"
    ),
    pytest.param(
        {"features": [{"a": 1}] * 10}, 422, "feature_names_mismatch", id="objects"
    ),
    pytest.param(
        {"features": [1, [2], 3, 4, 5, 6, 7, 8, 9, 10]},
        422,
        "invalid_features",
        id="mixed",
    ),
    pytest.param({"features": "1,2,3"}, 422, "invalid_features", id="features-string"),
    pytest.param(
        {"features": {"x": 1}}, 422, "feature_names_mismatch", id="features-object"
    ),
    pytest.param({"feature": [1] * 10}, 422, "validation_error", id="missing-field"),
    pytest.param(
        {"features": [1] * 10, "use_ab_testing": "yes"},
        422,
        "validation_error",
        id="bad-flag",
    ),
    pytest.param(
        {"features": [1] * 10, "model_version": 2},
        422,
        "validation_error",
        id="version-not-string",
    ),
    pytest.param(b'{"features": [1, 2,', 400, "malformed_json", id="malformed-json"),
    pytest.param(b"not json at all", 400, "malformed_json", id="not-json"),
    pytest.param(b"", 400, "bad_request", id="empty-body"),
    pytest.param([1, 2, 3], 400, "bad_request", id="array-body"),
    pytest.param(b'"features"', 400, "bad_request", id="string-body"),
    pytest.param(
        {"features": [1] * 10, "model_version": "v9.9"},
        404,
        "model_version_not_found",
        id="unknown-version",
    ),
    pytest.param(
        {"features": [1] * 10, "model": "nope"},
        404,
        "model_not_found",
        id="unknown-model",
    ),
]


@pytest.mark.parametrize("body, status, code", BAD_INPUTS)
def test_bad_input_gets_a_json_error(client, two_versions, body, status, code):
    response = post(client, body)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]


def test_the_seeds_commented_example_gets_a_pointed_400(client, two_versions):
    # the seed's docs annotate the body with // comments, which JSON lacks
    body = (
        b'{"features": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],\n'
        b'  "model_version": "v1.0",  // optional\n'
        b'  "use_ab_testing": true    // optional, default: true\n}'
    )
    response = post(client, body)
    assert response.status_code == 400
    assert "JSON has no comments" in response.json()["error"]["message"]


def test_feature_count_message_names_the_expected_count(client, two_versions):
    error = post(client, {"features": [1, 2, 3]}).json()["error"]
    assert "expects 10 features" in error["message"]
    assert error["details"] == {"expected": 10, "got": 3, "model_version": "v1.0"}


def test_body_over_the_size_limit_is_413_json(client, two_versions, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post(client, {"features": [[0.123456789] * 10] * 50})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_too_many_rows_is_413(client, two_versions, settings):
    settings.MLSERVING = {**settings.MLSERVING, "MAX_BATCH_ROWS": 5}
    response = post(client, {"features": [[0] * 10] * 6})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_rows"


def test_wrong_method_is_405_json(client, two_versions):
    response = client.get("/predict")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_no_registered_model_is_404(client, db, artifacts_root):
    response = post(client, {"features": SEED_FEATURES})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_tampered_explicit_version_is_refused_with_422(client, two_versions):
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    response = post(client, {"features": SEED_FEATURES, "model_version": "v2.0"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "artifact_integrity_error"
    assert "model_v2.0.pkl" in error["message"]
    assert "sha256" in error["message"]
    two_versions["v2"].refresh_from_db()
    assert two_versions["v2"].status == "integrity_failed"


def test_tampered_active_artifact_falls_back_to_the_previous_version(
    client, two_versions
):
    # given: v2.0 activated after v1.0, then its file changes on disk
    client.generic("POST", "/models/v2.0/activate")
    serving.reset()  # a fresh process: must load v2.0 from disk
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    # when
    response = post(client, {"features": SEED_FEATURES})
    # then: the previous version keeps serving, and says so
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "v1.0"
    assert body["routing"]["reason"] == "fallback"
    assert body["routing"]["wanted"] == "v2.0"
    health = client.get("/health").json()
    assert health["status"] == "degraded"
    assert any("v2.0" in p for p in health["problems"])


def test_unknown_url_is_json_404(client, db):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
