"""A bad item of a list field is a 422 naming the item, not a 500: DRF
keys a list item's errors by its integer index, which is no JSON key."""

import json

import orjson
import pytest
from rest_framework import serializers

from mlserving.errors import error_parts


@pytest.mark.parametrize(
    "models",
    [
        pytest.param(["", "v1.0"], id="blank-item"),
        pytest.param([None, "v1.0"], id="null-item"),
        pytest.param(["v" * 65, "v1.0"], id="65-character-item"),
    ],
)
def test_a_bad_models_item_is_a_422_naming_it(client, two_versions, models):
    # when
    response = client.post(
        "/ab-test/configure",
        data=json.dumps({"models": models}),
        content_type="application/json",
    )
    # then
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]["fields"]) == {"models[0]"}
    [message] = error["details"]["fields"]["models[0]"]
    assert isinstance(message, str) and message
    # nothing was configured
    assert client.get("/ab-test/status").json()["arms"] == []


def test_a_good_item_after_a_bad_one_is_not_blamed(client, two_versions):
    response = client.post(
        "/ab-test/configure",
        data=json.dumps({"models": ["v1.0", "", "v2.0", None]}),
        content_type="application/json",
    )
    assert response.status_code == 422, response.content
    fields = response.json()["error"]["details"]["fields"]
    assert set(fields) == {"models[1]", "models[3]"}


class _Arm(serializers.Serializer):
    version = serializers.CharField()


class _Nested(serializers.Serializer):
    grid = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField())
    )
    weights = serializers.DictField(child=serializers.FloatField())
    arms = _Arm(many=True)


def test_every_list_and_nested_error_gets_a_string_path(db):
    # given: errors of a list in a list, a dict field and many=True items
    serializer = _Nested(
        data={
            "grid": [[1, 2], [3, "x"]],
            "weights": {"a": "heavy"},
            "arms": [{"version": "v1"}, {}],
        }
    )
    assert not serializer.is_valid()
    # when
    parts = error_parts(serializers.ValidationError(serializer.errors))
    # then
    assert parts.status_code == 422
    assert set(parts.details["fields"]) == {
        "grid[1][1]",
        "weights.a",
        "arms[1].version",
    }
    assert orjson.loads(orjson.dumps(parts.details)) == parts.details


def test_plain_field_errors_keep_their_shape(client, two_versions):
    response = client.post(
        "/ab-test/configure",
        data=json.dumps({"split_ratio": 2, "models": ["v1.0"]}),
        content_type="application/json",
    )
    assert response.status_code == 422
    fields = response.json()["error"]["details"]["fields"]
    assert set(fields) == {"split_ratio", "models"}
    assert all(isinstance(messages, list) for messages in fields.values())
