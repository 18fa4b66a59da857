"""POST /feedback refuses what it cannot join to one answer: values of the
wrong JSON type (however deeply nested), labels outside the version's
classes, rewards past REWARD_LIMIT, and request ids that several answered
predictions share. Through the Django view and through the HTTP front."""

import asyncio
import json

import httpx
import pytest

from mlserving.asgi import application
from monitoring.events import writer
from monitoring.models import Feedback
from tests.conftest import SEED_FEATURES, settle_metrics

DEPTH = 1000


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def feedback(client, **body):
    return client.post("/feedback", json.dumps(body), content_type="application/json")


def predict(client, body=None, **headers):
    return client.post(
        "/predict",
        json.dumps(body or {"features": SEED_FEATURES}),
        content_type="application/json",
        **headers,
    )


def front() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver"
    )


@pytest.fixture(autouse=True)
def _no_waiting(settings):
    settings.EXPERIMENTS = {**settings.EXPERIMENTS, "FEEDBACK_WAIT": 0.0}


@pytest.fixture
def logged(client, two_versions):
    """A one-row prediction of default:v1.0 (classes 0 and 1), written."""
    response = predict(client)
    assert response.status_code == 200
    settle_metrics()
    return response.json()


# --- deeply nested values -------------------------------------------------

FIELDS = ["true_label", "converted", "reward", "request_id"]


def deep_body(field: str, depth: int = DEPTH) -> bytes:
    fields = {"request_id": '"r-1"', field: nested(depth)}
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode()


@pytest.mark.parametrize("field", FIELDS)
def test_a_deeply_nested_value_is_a_422_from_the_django_view(client, db, field):
    response = client.post(
        "/feedback", deep_body(field), content_type="application/json"
    )
    assert response.status_code == 422, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"]


@pytest.mark.anyio
@pytest.mark.parametrize("field", FIELDS)
async def test_a_deeply_nested_value_is_a_422_from_the_front(field):
    async with front() as c:
        response = await c.post(
            "/feedback",
            content=deep_body(field),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 422, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]["fields"]


def test_nesting_past_the_parser_limit_is_a_400_from_the_django_view(client, db):
    response = client.post(
        "/feedback", deep_body("true_label", 2000), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


@pytest.mark.anyio
async def test_nesting_past_the_parser_limit_is_a_400_from_the_front():
    async with front() as c:
        response = await c.post(
            "/feedback",
            content=deep_body("true_label", 2000),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


# --- types and values -------------------------------------------------------

REFUSED = {
    "label-not-a-class": ({"true_label": 7}, "true_label"),
    "label-text-not-a-class": ({"true_label": "cat"}, "true_label"),
    "converted-yes": ({"converted": "yes"}, "converted"),
    "converted-true-string": ({"converted": "true"}, "converted"),
    "converted-one": ({"converted": 1}, "converted"),
    "reward-true": ({"reward": True}, "reward"),
    "reward-string": ({"reward": "2.5"}, "reward"),
    "reward-past-limit": ({"reward": 1.7e308}, "reward"),
    "reward-below-limit": ({"reward": -1e9 - 1}, "reward"),
}


def field_named(error: dict) -> str | None:
    """The field a 422 names: a serializer error's key, or a service's
    `field`."""
    details = error["details"]
    if "field" in details:
        return details["field"]
    fields = details.get("fields") or {}
    return next(iter(fields)) if len(fields) == 1 else None


@pytest.mark.parametrize("body, field", REFUSED.values(), ids=REFUSED.keys())
def test_a_wrong_value_is_a_422_naming_the_field(client, logged, body, field):
    response = feedback(client, request_id=logged["request_id"], **body)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field_named(error) == field
    assert Feedback.objects.count() == 0


def test_a_label_outside_the_classes_lists_them(client, logged):
    response = feedback(client, request_id=logged["request_id"], true_label=7)
    details = response.json()["error"]["details"]
    assert details["classes"] == ["0", "1"]
    assert (details["model"], details["model_version"]) == ("default", "v1.0")


@pytest.mark.parametrize("as_text", [False, True], ids=["integer", "text"])
def test_a_class_is_taken_as_integer_or_text(client, logged, as_text):
    label = logged["prediction"]
    response = feedback(
        client,
        request_id=logged["request_id"],
        true_label=str(label) if as_text else label,
    )
    assert response.status_code == 201, response.content
    assert response.json()["correct"] is True
    assert response.json()["true_label"] == str(label)


@pytest.mark.parametrize("reward", [1e9, -1e9, 0, 12], ids=["max", "min", "0", "int"])
def test_rewards_up_to_the_limit_are_recorded(client, logged, reward):
    response = feedback(client, request_id=logged["request_id"], reward=reward)
    assert response.status_code == 201, response.content
    assert response.json()["reward"] == reward


def test_the_django_view_takes_json_only(client, logged):
    response = client.post(
        "/feedback", {"request_id": logged["request_id"], "converted": "true"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_the_front_refuses_a_label_outside_the_classes(two_versions):
    async with front() as c:
        predicted = await c.post("/predict", json={"features": SEED_FEATURES})
        assert predicted.status_code == 200
        await asyncio.to_thread(writer.flush)
        response = await c.post(
            "/feedback",
            json={"request_id": predicted.json()["request_id"], "true_label": 7},
        )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "true_label"


# --- the rewards' sums ---------------------------------------------------------


def test_rewards_past_the_limit_cannot_make_the_mean_null(client, two_versions):
    # given: an experiment and six predictions answered by its control arm
    configure = client.post(
        "/ab-test/configure",
        json.dumps({"enabled": True, "split_ratio": 0.5, "models": ["v1.0", "v2.0"]}),
        content_type="application/json",
    )
    assert configure.status_code == 200
    answers = []
    while len(answers) < 6:
        answer = predict(client).json()
        if answer["routing"]["arm"] == "v1.0":
            answers.append(answer)
    settle_metrics()
    # when: three rewards at the largest double and three at the limit
    huge = [
        feedback(client, request_id=a["request_id"], reward=1.7e308)
        for a in answers[:3]
    ]
    at_limit = [
        feedback(client, request_id=a["request_id"], reward=1e9) for a in answers[3:]
    ]
    settle_metrics()
    # then: the first are refused, and the arm's mean is the limit
    assert [r.status_code for r in huge] == [422] * 3
    assert [r.status_code for r in at_limit] == [201] * 3
    arms = {a["arm"]: a for a in client.get("/ab-test/status").json()["arms"]}
    assert arms["v1.0"]["rewards"] == 3
    assert arms["v1.0"]["reward_mean"] == 1e9


# --- one request id, several predictions -----------------------------------


def test_a_request_id_two_answers_share_is_a_409(client, two_versions):
    # given: two answered predictions sent with the same X-Request-ID
    for _ in range(2):
        answer = predict(client, HTTP_X_REQUEST_ID="order-7")
        assert answer.status_code == 200
    settle_metrics()
    # when
    response = feedback(client, request_id="order-7", converted=True)
    # then
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "ambiguous_request_id"
    assert error["details"]["predictions"] == 2
    assert "2 predictions" in error["message"]
    assert Feedback.objects.count() == 0


def test_a_retry_after_a_failure_is_the_one_answer_of_its_request_id(
    client, two_versions
):
    # given: a call refused (bad features), retried with the same id
    failed = predict(client, {"features": [1, 2]}, HTTP_X_REQUEST_ID="order-8")
    assert failed.status_code == 422
    answered = predict(client, HTTP_X_REQUEST_ID="order-8")
    assert answered.status_code == 200
    settle_metrics()
    # when
    response = feedback(
        client, request_id="order-8", true_label=answered.json()["prediction"]
    )
    # then: the feedback is about the answer, not the refusal
    assert response.status_code == 201, response.content
    assert response.json()["correct"] is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_the_front_refuses_an_ambiguous_request_id_too(two_versions):
    async with front() as c:
        for _ in range(3):
            answer = await c.post(
                "/predict",
                json={"features": SEED_FEATURES},
                headers={"X-Request-ID": "order-9"},
            )
            assert answer.status_code == 200
        await asyncio.to_thread(writer.flush)
        response = await c.post(
            "/feedback", json={"request_id": "order-9", "reward": 1.0}
        )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ambiguous_request_id"
    assert response.json()["error"]["details"]["predictions"] == 3
