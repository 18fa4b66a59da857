"""POST /feedback through the real URL route: idempotent per request id,
joined to the prediction log, feeding accuracy and conversion per arm."""

import json
import threading

import pytest

from monitoring.models import Feedback
from tests.conftest import SEED_FEATURES, settle_metrics


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def feedback(client, **body):
    return post(client, "/feedback", body)


def predict(client, body=None):
    response = post(client, "/predict", body or {"features": SEED_FEATURES})
    assert response.status_code == 200
    return response.json()


@pytest.fixture(autouse=True)
def _no_waiting(settings):
    settings.EXPERIMENTS = {**settings.EXPERIMENTS, "FEEDBACK_WAIT": 0.0}


@pytest.fixture
def logged(client, two_versions):
    """A prediction whose event is in the database."""
    answer = predict(client)
    settle_metrics()
    return answer


def test_feedback_is_recorded_then_idempotent(client, logged):
    request_id = logged["request_id"]
    first = feedback(client, request_id=request_id, converted=True)
    assert first.status_code == 201
    body = first.json()
    assert body["status"] == "recorded"
    assert body["converted"] is True
    assert body["model_version"] == logged["model_version"]
    again = feedback(client, request_id=request_id, converted=True)
    assert again.status_code == 200
    assert again.json()["status"] == "unchanged"
    assert Feedback.objects.count() == 1


def test_a_new_field_is_merged_and_a_contradiction_is_409(client, logged):
    request_id = logged["request_id"]
    feedback(client, request_id=request_id, converted=True)
    merged = feedback(client, request_id=request_id, reward=2.5)
    assert merged.status_code == 200
    assert merged.json()["status"] == "updated"
    assert merged.json()["reward"] == 2.5 and merged.json()["converted"] is True
    conflict = feedback(client, request_id=request_id, converted=False)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["details"]["field"] == "converted"
    assert Feedback.objects.get().converted is True


def test_true_label_is_compared_with_the_prediction(client, logged):
    right = feedback(
        client, request_id=logged["request_id"], true_label=logged["prediction"]
    )
    assert right.json()["correct"] is True


def test_unknown_request_id_is_404(client, two_versions):
    response = feedback(client, request_id="nope", converted=True)
    assert response.status_code == 404
    assert response.json()["error"]["details"]["request_id"] == "nope"


@pytest.mark.django_db(transaction=True)
def test_feedback_waits_for_a_prediction_still_in_the_buffer(
    settings, client, two_versions
):
    from django.db import connection

    from monitoring.events import writer

    def flush_in_another_thread():
        writer.flush()
        connection.close()

    settings.EXPERIMENTS = {**settings.EXPERIMENTS, "FEEDBACK_WAIT": 3.0}
    answer = predict(client)  # buffered, not yet written
    timer = threading.Timer(0.3, flush_in_another_thread)
    timer.start()
    try:
        response = feedback(client, request_id=answer["request_id"], converted=True)
    finally:
        timer.join()
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body, status",
    [
        ({"converted": True}, 422),
        ({"request_id": "x"}, 422),
        ({"request_id": "x", "converted": "maybe"}, 422),
        ({"request_id": "x", "reward": "NaN"}, 422),
        ({"request_id": "x", "true_label": [1, 2]}, 422),
    ],
    ids=["no-id", "no-field", "bad-bool", "nan-reward", "list-label"],
)
def test_bad_feedback_is_rejected(client, logged, body, status):
    if body.get("request_id") == "x":
        body["request_id"] = logged["request_id"]
    response = feedback(client, **body)
    assert response.status_code == status, response.content
    assert Feedback.objects.count() == 0


def test_malformed_json_is_400(client, two_versions):
    response = client.post("/feedback", data="{nope", content_type="application/json")
    assert response.status_code == 400


def test_a_label_for_a_batch_or_a_failed_prediction_is_refused(client, two_versions):
    batch = predict(client, {"features": [SEED_FEATURES, SEED_FEATURES]})
    failed = post(client, "/predict", {"features": [1, 2]})
    assert failed.status_code == 422
    settle_metrics()
    label = feedback(client, request_id=batch["request_id"], true_label=1)
    assert label.status_code == 422
    conversion = feedback(client, request_id=batch["request_id"], converted=True)
    assert conversion.status_code == 201
    on_failure = feedback(
        client, request_id=failed.json()["error"]["request_id"], converted=True
    )
    assert on_failure.status_code == 409


def test_feedback_feeds_accuracy_and_conversion_per_arm(client, two_versions):
    # given: an experiment, and predictions on both arms
    post(
        client,
        "/ab-test/configure",
        {"enabled": True, "split_ratio": 0.5, "models": ["v1.0", "v2.0"]},
    )
    answers = [predict(client) for _ in range(60)]
    settle_metrics()
    expected = {"v1.0": [0, 0, 0], "v2.0": [0, 0, 0]}  # converted, labels, correct
    for i, answer in enumerate(answers):
        arm = answer["routing"]["arm"]
        converted = i % 3 == 0
        true_label = answer["prediction"] if i % 2 == 0 else 1 - answer["prediction"]
        response = feedback(
            client,
            request_id=answer["request_id"],
            converted=converted,
            true_label=true_label,
        )
        assert response.status_code == 201
        expected[arm][0] += converted
        expected[arm][1] += 1
        expected[arm][2] += i % 2 == 0
    # when
    settle_metrics()
    # then
    body = client.get("/ab-test/status").json()
    for arm in body["arms"]:
        conversions, labels, correct = expected[arm["arm"]]
        assert arm["conversions"] == conversions
        assert arm["labels"] == labels
        assert arm["accuracy"] == pytest.approx(correct / labels, abs=1e-6)
        assert arm["conversion_rate"] == pytest.approx(
            conversions / arm["requests"], abs=1e-6
        )
    stats_arms = {a["name"]: a for a in body["statistics"]["arms"]}
    assert stats_arms["v2.0"]["versus_control"]["z_p_value"] is not None
    metrics = client.get("/metrics").json()
    assert metrics["labels"] == 60
    assert metrics["conversions"] == sum(v[0] for v in expected.values())
    # a second rollup with nothing new changes nothing
    settle_metrics()
    assert client.get("/ab-test/status").json()["arms"] == body["arms"]
