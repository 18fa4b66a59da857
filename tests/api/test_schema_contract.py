"""The OpenAPI schema against real answers: what the API sends validates
against what /openapi.json says it sends (jsonschema, which
drf-spectacular itself depends on), and what the schema says a client
may send is what the endpoints take."""

import json

import jsonschema
import pytest

from experiments import services as experiment_services
from tests.conftest import NAMES, SEED_FEATURES

REF_PREFIX = "#/components/schemas/"


def as_json_schema(node):
    """An OpenAPI 3.0 schema object as JSON Schema: `nullable: true`
    becomes "or null"."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        key: as_json_schema(value) for key, value in node.items() if key != "nullable"
    }
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@pytest.fixture
def schema(client, db):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operation(schema: dict, path: str, method: str = "post") -> dict:
    return schema["paths"][path][method]


def body_schema(schema: dict, node: dict) -> dict:
    """A JSON Schema validating what `node` (a response or request body
    object of the OpenAPI document) describes as application/json."""
    wanted = node["content"]["application/json"]["schema"]
    return {
        **as_json_schema(wanted),
        "components": as_json_schema(schema["components"]),
    }


def assert_valid(json_schema: dict, instance) -> None:
    validator = jsonschema.Draft4Validator(json_schema)
    errors = sorted(validator.iter_errors(instance), key=str)
    assert not errors, "\n".join(e.message for e in errors[:5])


def response_schema(schema: dict, path: str, status: int, method="post") -> dict:
    return body_schema(
        schema, operation(schema, path, method)["responses"][str(status)]
    )


def post(client, path: str, body, **extra):
    return client.post(
        path, data=json.dumps(body), content_type="application/json", **extra
    )


# --- /predict -------------------------------------------------------------


def test_predict_documents_its_json_request_body(schema):
    body = operation(schema, "/predict")["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": REF_PREFIX + "PredictRequest"
    }
    features = schema["components"]["schemas"]["PredictRequest"]["properties"]
    assert "features" in features


BODIES = {
    "one-row": {"features": SEED_FEATURES},
    "batch": {"features": [SEED_FEATURES, SEED_FEATURES[::-1]]},
    "named-row": {"features": dict(zip(NAMES, SEED_FEATURES, strict=True))},
    "named-batch": {
        "features": [dict(zip(NAMES, SEED_FEATURES, strict=True))] * 2,
        "model_version": "v2.0",
    },
}


@pytest.mark.parametrize("kind", list(BODIES))
def test_predict_answers_validate_against_the_schema(
    client, two_versions, schema, kind
):
    # given: a body the schema accepts
    body = BODIES[kind]
    assert_valid(
        body_schema(schema, operation(schema, "/predict")["requestBody"]), body
    )
    # when
    response = post(client, "/predict", body)
    # then
    assert response.status_code == 200, response.content
    answer = response.json()
    assert ("predictions" in answer) is kind.endswith("batch")
    assert_valid(response_schema(schema, "/predict", 200), answer)


def test_an_experiment_answer_validates(client, two_versions, schema):
    experiment_services.ab_test_configure(
        model=two_versions["v1"].model,
        enabled=True,
        split_ratio=0.5,
        versions=[two_versions["v1"], two_versions["v2"]],
        strategy="hash-based",
    )
    body = {"features": [SEED_FEATURES] * 3, "user_id": "u-1"}
    answer = post(client, "/predict", body).json()
    assert answer["routing"]["reason"] == "experiment"
    assert_valid(response_schema(schema, "/predict", 200), answer)


def test_one_shape_does_not_pass_for_the_other(client, two_versions, schema):
    one = post(client, "/predict", BODIES["one-row"]).json()
    batch = post(client, "/predict", BODIES["batch"]).json()
    components = schema["components"]["schemas"]
    row_shape = {
        **as_json_schema(components["PredictRowResponse"]),
        "components": as_json_schema(schema["components"]),
    }
    batch_shape = {
        **as_json_schema(components["PredictBatchResponse"]),
        "components": as_json_schema(schema["components"]),
    }
    assert jsonschema.Draft4Validator(row_shape).is_valid(one)
    assert not jsonschema.Draft4Validator(row_shape).is_valid(batch)
    assert jsonschema.Draft4Validator(batch_shape).is_valid(batch)
    assert not jsonschema.Draft4Validator(batch_shape).is_valid(one)


def test_predict_errors_validate(client, two_versions, schema):
    response = post(client, "/predict", {"features": [1.0, 2.0]})
    assert response.status_code == 422
    assert_valid(response_schema(schema, "/predict", 422), response.json())


# --- rollback, configure ----------------------------------------------------


def test_rollback_documents_422_and_its_answer_validates(client, two_versions, schema):
    assert "422" in operation(schema, "/models/rollback")["responses"]
    # when: a note past its 300 characters
    response = post(client, "/models/rollback", {"note": "n" * 301})
    # then
    assert response.status_code == 422
    assert_valid(response_schema(schema, "/models/rollback", 422), response.json())


def test_a_configure_item_error_validates(client, two_versions, schema):
    response = post(client, "/ab-test/configure", {"models": ["", "v1.0"]})
    assert response.status_code == 422
    assert_valid(response_schema(schema, "/ab-test/configure", 422), response.json())


# --- security ---------------------------------------------------------------


def guarded(schema: dict):
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            if op.get("security") != [{}]:  # the probes are always open
                yield f"{method.upper()} {path}", op["security"]


def test_an_open_api_documents_anonymous_access(schema):
    operations = dict(guarded(schema))
    assert {"POST /predict", "POST /models/rollback", "GET /models"} <= set(operations)
    for name, security in operations.items():
        assert {} in security, name
        assert security[-1] == {}, name  # credentials first, then none
        assert len(security) >= 2, name


def test_with_reads_and_writes_closed_no_anonymous_access_is_documented(
    client, db, settings, api_key
):
    key = api_key("predict")
    settings.MLSERVING = {
        **settings.MLSERVING,
        "READS_OPEN": False,
        "WRITES_OPEN": False,
    }
    response = client.get("/openapi.json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    schema = response.json()
    operations = dict(guarded(schema))
    assert "POST /predict" in operations
    for name, security in operations.items():
        assert {} not in security, name
        assert {"ApiKey": []} in security, name
