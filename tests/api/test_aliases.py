"""PUT and DELETE /models/aliases/{alias}, and the aliases GET /models
reports, through the real URL routes."""

import json

import pytest

from registry.models import ModelAlias
from tests.conftest import SEED_FEATURES, dump

# What GET /models answered before aliases: none of it may change.
SEED_FIELDS = {
    "model",
    "registered_models",
    "alias",
    "active_version",
    "loaded_versions",
    "pid",
    "models",
    "history",
}
VERSION_FIELDS = {
    "version",
    "name",
    "is_active",
    "loaded",
    "status",
    "status_detail",
    "accuracy",
    "metrics",
    "model_type",
    "runtime",
    "serving_runtime",
    "compiled",
    "format",
    "n_features",
    "feature_names",
    "classes",
    "artifact_path",
    "sha256",
    "size_bytes",
    "created_at",
    "created_by",
    "metadata",
    "input_dtype",
    "sklearn_version",
    "trusted_types",
}


def put_alias(client, alias, body, query="", **extra):
    return client.put(
        f"/models/aliases/{alias}{query}",
        json.dumps(body),
        content_type="application/json",
        **extra,
    )


def aliases_in_db(model="default") -> dict[str, str]:
    return dict(
        ModelAlias.objects.filter(model__name=model).values_list(
            "name", "version__version"
        )
    )


def test_put_sets_then_moves_an_alias(client, two_versions):
    # when
    first = put_alias(client, "champion", {"version": "v2.0", "note": "wins"})
    # then
    assert first.status_code == 200
    body = first.json()
    assert body["model"] == "default"
    assert (body["alias"], body["version"]) == ("champion", "v2.0")
    assert body["previous_version"] is None
    change = body["change"]
    assert (change["alias"], change["action"]) == ("champion", "set")
    assert (change["from_version"], change["to_version"]) == ("", "v2.0")
    assert (change["actor"], change["note"]) == ("anonymous", "wins")
    # moving it
    moved = put_alias(client, "champion", {"version": "v1.0"}).json()
    assert (moved["previous_version"], moved["version"]) == ("v2.0", "v1.0")
    # where it already points: nothing recorded
    same = put_alias(client, "champion", {"version": "v1.0"})
    assert same.status_code == 200
    assert same.json()["change"] is None
    assert same.json()["previous_version"] is None
    history = client.get("/models").json()["history"]
    assert [(h["alias"], h["to_version"]) for h in history] == [
        ("champion", "v1.0"),
        ("champion", "v2.0"),
        ("production", "v1.0"),
    ]


def test_put_production_activates_the_version(client, two_versions):
    body = put_alias(client, "production", {"version": "v2.0"}).json()
    assert body["change"]["action"] == "activate"
    assert client.get("/models").json()["active_version"] == "v2.0"
    served = client.post(
        "/predict",
        json.dumps({"features": SEED_FEATURES}),
        content_type="application/json",
    )
    assert served.json()["model_version"] == "v2.0"


def test_models_reports_aliases_and_keeps_every_seed_field(client, two_versions):
    put_alias(client, "champion", {"version": "v2.0"})
    put_alias(client, "challenger", {"version": "v1.0"})
    body = client.get("/models").json()
    assert set(body) == SEED_FIELDS | {"aliases", "resolved"}
    assert body["aliases"] == {
        "challenger": "v1.0",
        "champion": "v2.0",
        "production": "v1.0",
    }
    assert body["resolved"] is None
    by_version = {v["version"]: v for v in body["models"]}
    for version in by_version.values():
        assert set(version) == VERSION_FIELDS | {"aliases"}
    assert by_version["v1.0"]["aliases"] == ["challenger", "production"]
    assert by_version["v2.0"]["aliases"] == ["champion"]
    assert body["active_version"] == "v1.0"
    assert body["alias"] == "production"


@pytest.mark.parametrize(
    ("ref", "resolved"),
    [
        ("default@champion", {"alias": "champion", "version": "v2.0"}),
        ("default@production", {"alias": "production", "version": "v1.0"}),
        ("@champion", {"alias": "champion", "version": "v2.0"}),
        ("default", None),
    ],
    ids=["champion", "production", "default-model", "no-alias"],
)
def test_models_resolves_model_at_alias(client, two_versions, ref, resolved):
    put_alias(client, "champion", {"version": "v2.0"})
    response = client.get("/models", {"model": ref})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "default"
    assert body["resolved"] == resolved


def test_models_with_an_unknown_alias_is_404(client, two_versions):
    response = client.get("/models", {"model": "default@nope"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "alias_not_found"
    assert error["details"]["available"] == ["production"]


def test_delete_removes_an_alias_and_records_it(client, two_versions):
    put_alias(client, "champion", {"version": "v2.0"})
    # when
    response = client.delete("/models/aliases/champion")
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["alias"], body["version"]) == ("champion", None)
    assert body["previous_version"] == "v2.0"
    assert body["change"]["action"] == "remove"
    assert (body["change"]["from_version"], body["change"]["to_version"]) == (
        "v2.0",
        "",
    )
    models = client.get("/models").json()
    assert models["aliases"] == {"production": "v1.0"}
    assert models["history"][0]["action"] == "remove"
    gone = client.delete("/models/aliases/champion")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "alias_not_found"


def test_delete_with_a_note(client, two_versions):
    put_alias(client, "champion", {"version": "v2.0"})
    response = client.delete(
        "/models/aliases/champion",
        json.dumps({"note": "retired"}),
        content_type="application/json",
    )
    assert response.json()["change"]["note"] == "retired"


def test_the_default_alias_cannot_be_deleted(client, two_versions):
    response = client.delete("/models/aliases/production")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "alias_protected"
    assert aliases_in_db() == {"production": "v1.0"}


@pytest.mark.parametrize(
    ("alias", "body", "status", "code"),
    [
        ("champion", {"version": "v9.9"}, 404, "model_version_not_found"),
        ("Champion", {"version": "v2.0"}, 422, "alias_invalid"),
        ("a" * 51, {"version": "v2.0"}, 422, "alias_invalid"),
        ("champion", {}, 422, "validation_error"),
        ("champion", {"version": "v2.0", "note": "x" * 301}, 422, "validation_error"),
    ],
    ids=["unknown-version", "upper-case", "too-long", "no-version", "long-note"],
)
def test_put_refusals(client, two_versions, alias, body, status, code):
    response = put_alias(client, alias, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert aliases_in_db() == {"production": "v1.0"}


def test_put_with_malformed_json_is_400(client, two_versions):
    response = client.put(
        "/models/aliases/champion", "{nope", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_put_of_an_unknown_model_is_404(client, two_versions):
    response = put_alias(client, "champion", {"version": "v2.0"}, "?model=nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_aliases_of_another_model_with_model_param(client, two_versions, estimators):
    from registry import services

    services.model_version_register(
        model_name="iris",
        version="v1",
        source=dump(two_versions["root"], "iris_v1.pkl", estimators["lr3"]),
    )
    # a version of default is not a version of iris
    wrong = put_alias(client, "champion", {"version": "v2.0"}, "?model=iris")
    assert wrong.status_code == 404
    ok = put_alias(client, "champion", {"version": "v1"}, "?model=iris")
    assert ok.json()["model"] == "iris"
    assert aliases_in_db("iris") == {"champion": "v1"}
    assert "champion" not in aliases_in_db("default")
    assert client.delete("/models/aliases/champion?model=iris").status_code == 200
    assert aliases_in_db("iris") == {}


def test_api_keys_protect_alias_writes_as_they_protect_activation(
    client, two_versions, settings, api_key
):
    secret = api_key("write", "release")
    settings.MLSERVING = {**settings.MLSERVING, "WRITES_OPEN": False}
    assert put_alias(client, "champion", {"version": "v2.0"}).status_code == 401
    assert client.delete("/models/aliases/production").status_code == 401
    ok = put_alias(
        client, "champion", {"version": "v2.0"}, HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert ok.status_code == 200
    assert ok.json()["change"]["actor"] == "api-key:release"
    removed = client.delete(
        "/models/aliases/champion", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert removed.status_code == 200


def test_the_schema_documents_the_alias_endpoints(client, db):
    schema = client.get("/openapi.json").json()
    operations = schema["paths"]["/models/aliases/{alias}"]
    assert set(operations) >= {"put", "delete"}
    assert {"200", "404", "409", "422"} <= set(operations["put"]["responses"])
    assert {"200", "404", "409"} <= set(operations["delete"]["responses"])
    models = schema["paths"]["/models"]["get"]["responses"]["200"]
    ref = models["content"]["application/json"]["schema"]["$ref"]
    properties = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert {"aliases", "resolved"} <= set(properties)
