"""Who may do what, through the real URL routes: hashed, named, scoped,
revocable keys (command and admin); writes closed to anonymous callers
and predict-scoped keys; anonymous /health says only up or down;
throttling on the shared Redis with 429 and Retry-After, failing open."""

import json
import logging
import os
import time

import httpx
import pytest
from django.core.management import call_command
from django.test import Client

from access import services
from access.models import ApiKey
from mlserving import throttling
from mlserving.asgi import application
from tests.conftest import SEED_FEATURES

WRITES = [
    ("POST", "/models/v2.0/activate", None),
    ("POST", "/models/rollback", None),
    ("PUT", "/models/aliases/champion", {"version": "v2.0"}),
    ("DELETE", "/models/aliases/champion", None),
    (
        "POST",
        "/ab-test/configure",
        {"enabled": True, "split_ratio": 0.0, "models": ["v1.0", "v2.0"]},
    ),
]


def send(client, method, path, body=None, **headers):
    if body is None:
        return client.generic(method, path, **headers)
    return client.generic(
        method, path, json.dumps(body), content_type="application/json", **headers
    )


def predict(client, **headers):
    return client.post(
        "/predict",
        json.dumps({"features": SEED_FEATURES}),
        content_type="application/json",
        **headers,
    )


@pytest.fixture
def closed_writes(settings):
    settings.MLSERVING = {**settings.MLSERVING, "WRITES_OPEN": False}


def test_keys_are_stored_hashed_named_scoped_and_listed_by_the_command(db, capsys):
    call_command("apikey", "create", "ci-deployer", "--scope", "write", "--json")
    created = json.loads(capsys.readouterr().out)
    secret = created["key"]
    assert created["name"] == "ci-deployer" and created["scope"] == "write"
    assert secret.startswith(created["prefix"] + ".")
    stored = ApiKey.objects.get(prefix=created["prefix"])
    # only a digest of the secret is kept
    assert secret not in (stored.id, stored.hashed_key)
    assert stored.hashed_key.startswith("sha512$$")
    assert services.principal_for(secret).scope == "write"
    call_command("apikey", "list", "--json")
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert [(k["name"], k["usable"]) for k in listed] == [("ci-deployer", True)]
    assert "key" not in listed[0]


def test_the_command_refuses_an_unknown_prefix_with_exit_status_3(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as refused:
        call_command("apikey", "revoke", "nope1234")
    assert refused.value.returncode == 3


@pytest.mark.parametrize("method,path,body", WRITES)
def test_anonymous_writes_are_401_when_writes_are_closed(
    client, two_versions, closed_writes, method, path, body
):
    response = send(client, method, path, body)
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,path,body", WRITES)
def test_a_predict_only_key_gets_403_on_every_write_and_a_write_key_passes(
    client, two_versions, closed_writes, api_key, method, path, body
):
    reader = api_key("predict", "dashboard")
    writer = api_key("write", "release-bot")
    refused = send(client, method, path, body, HTTP_AUTHORIZATION=f"Bearer {reader}")
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"]["code"] == "permission_denied"
    assert "predict scope" in refused.json()["error"]["message"]
    # the same key predicts and reads
    assert predict(client, HTTP_X_API_KEY=reader).status_code == 200
    assert client.get("/models", HTTP_X_API_KEY=reader).status_code == 200
    if path == "/models/rollback":
        send(client, "POST", "/models/v2.0/activate", HTTP_X_API_KEY=writer)
    if method == "DELETE":
        send(
            client,
            "PUT",
            "/models/aliases/champion",
            {"version": "v2.0"},
            HTTP_X_API_KEY=writer,
        )
    allowed = send(client, method, path, body, HTTP_X_API_KEY=writer)
    assert allowed.status_code == 200, allowed.content


def test_an_upload_needs_the_write_scope(client, two_versions, closed_writes, api_key):
    reader = api_key("predict")
    response = client.generic(
        "POST",
        "/models/upload?model=default&version=v9",
        b"not a model",
        content_type="application/octet-stream",
        HTTP_X_API_KEY=reader,
    )
    assert response.status_code == 403
    anonymous = client.generic(
        "POST",
        "/models/upload?model=default&version=v9",
        b"not a model",
        content_type="application/octet-stream",
    )
    assert anonymous.status_code == 401


def test_a_revoked_or_expired_key_is_refused(client, two_versions, api_key, settings):
    settings.MLSERVING = {**settings.MLSERVING, "READS_OPEN": False}
    secret = api_key("predict", "laptop")
    assert predict(client, HTTP_X_API_KEY=secret).status_code == 200
    call_command("apikey", "revoke", secret.split(".")[0])
    revoked = predict(client, HTTP_X_API_KEY=secret)
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "authentication_failed"
    expiring, later = services.key_create(name="temp", expires_in_days=1)
    assert predict(client, HTTP_X_API_KEY=later).status_code == 200
    ApiKey.objects.filter(pk=expiring.pk).update(expiry_date="2020-01-01T00:00:00Z")
    services.cache_clear()
    assert predict(client, HTTP_X_API_KEY=later).status_code == 401


def test_a_key_created_in_the_admin_is_shown_once_and_works(
    admin_client, two_versions, closed_writes
):
    response = admin_client.post(
        "/admin/access/apikey/add/",
        {"name": "from-admin", "scope": "write"},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    (shown,) = [m for m in messages if m.startswith("The API key for")]
    created = ApiKey.objects.get(name="from-admin")
    secret = next(
        w.rstrip(".") for w in shown.split() if w.startswith(created.prefix + ".")
    )
    activated = Client().generic(
        "POST", "/models/v2.0/activate", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert activated.status_code == 200
    assert activated.json()["change"]["actor"] == "api-key:from-admin"


def test_a_staff_session_writes_a_plain_user_session_does_not(
    two_versions, closed_writes, admin_user, django_user_model
):
    staff = Client()
    staff.force_login(admin_user)
    assert staff.generic("POST", "/models/v2.0/activate").status_code == 200
    plain = Client()
    plain.force_login(django_user_model.objects.create_user("viewer", password="x"))
    refused = plain.generic("POST", "/models/rollback")
    assert refused.status_code == 403


def test_a_cross_site_form_post_is_refused_even_when_writes_are_open(
    client, two_versions
):
    # the request: a form on another site, no credentials
    response = client.post(
        "/ab-test/configure",
        "enabled=true&split_ratio=0.0",
        content_type="application/x-www-form-urlencoded",
        HTTP_ORIGIN="http://evil.example",
    )
    assert response.status_code == 415
    assert client.get("/ab-test/status").json()["enabled"] is False


def test_anonymous_health_says_only_up_or_down(client, two_versions, settings, api_key):
    settings.MLSERVING = {**settings.MLSERVING, "HEALTH_DETAILS_PUBLIC": False}
    anonymous = client.get("/health")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "healthy"}
    wrong = client.get("/health", HTTP_X_API_KEY="nope.nope")
    assert wrong.json() == {"status": "healthy"}
    detailed = client.get("/health", HTTP_X_API_KEY=api_key("predict")).json()
    assert {"pid", "redis", "models", "database"} <= set(detailed)


# --- throttling -----------------------------------------------------------


@pytest.fixture
def counters(redis_service):
    """The shared Redis, without the throttling counts of earlier runs (a
    window lasts up to a minute here)."""
    from django_redis import get_redis_connection

    redis = get_redis_connection("default")
    for key in redis.scan_iter(f"{throttling.KEY_PREFIX}*"):
        redis.delete(key)
    return redis


def test_anonymous_clients_past_the_rate_get_429_with_retry_after(
    client, two_versions, settings, counters
):
    settings.MLSERVING = {**settings.MLSERVING, "THROTTLE_ANON": "5/h"}
    statuses = [
        client.get("/models", REMOTE_ADDR="10.9.8.7").status_code for _ in range(7)
    ]
    assert statuses == [200] * 5 + [429] * 2
    refused = client.get("/models", REMOTE_ADDR="10.9.8.7")
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 3600
    # another client has its own count
    assert client.get("/models", REMOTE_ADDR="10.9.8.8").status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_the_front_throttles_predict_per_client_and_per_key(
    two_versions, settings, api_key, counters
):
    from asgiref.sync import sync_to_async

    secret = await sync_to_async(api_key)("predict", "batch-job")
    settings.MLSERVING = {
        **settings.MLSERVING,
        "THROTTLE_ANON": "3/h",
        "THROTTLE_KEY": "4/h",
    }
    body = {"features": SEED_FEATURES}
    transport = httpx.ASGITransport(app=application, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as c:
        anonymous = [
            (await c.post("/predict", json=body)).status_code for _ in range(4)
        ]
        # the first keyed request goes through Django (which verifies the
        # key and remembers it); the next ones are the front's own
        keyed = [
            (await c.post("/predict", json=body, headers={"X-API-Key": secret}))
            for _ in range(5)
        ]
        v2 = await c.post(
            "/v2/models/default/infer",
            json={
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 10],
                        "datatype": "FP64",
                        "data": SEED_FEATURES,
                    }
                ]
            },
        )
    assert anonymous == [200, 200, 200, 429]
    assert [r.status_code for r in keyed] == [200, 200, 200, 200, 429], keyed[0].text
    assert keyed[-1].json()["error"]["code"] == "rate_limited"
    assert int(keyed[-1].headers["retry-after"]) >= 1
    # the protocol's error shape on /v2
    assert v2.status_code == 429
    assert v2.json()["code"] == "rate_limited" and isinstance(v2.json()["error"], str)


def test_throttling_fails_open_with_a_log_line_when_redis_is_unreachable(
    client, two_versions, settings, caplog
):
    settings.MLSERVING = {**settings.MLSERVING, "THROTTLE_ANON": "1/h"}
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25},
        }
    }
    with caplog.at_level(logging.WARNING, logger="mlserving.throttling"):
        assert client.get("/models").status_code == 200
        # this process's sync (every 50 ms) finds Redis gone: from then
        # on nothing is counted
        time.sleep(0.5)
        statuses = [client.get("/models").status_code for _ in range(5)]
    assert statuses == [200] * 5
    warnings = [r for r in caplog.records if "fails open" in r.getMessage()]
    assert len(warnings) == 1


def test_counts_of_several_processes_add_up_on_redis(counters):
    """Two processes' counters (as two web workers, or two hosts): each
    admits on its own count until a sync shows it the shared total."""
    first, second = throttling.SharedCounter(), throttling.SharedCounter()
    for counter in (first, second):
        counter._pid = os.getpid()  # synced by hand here, no thread
    rate = "5/h"
    assert [first.retry_after("addr:a", rate) for _ in range(3)] == [None] * 3
    # second has not heard of first's three yet
    assert [second.retry_after("addr:a", rate) for _ in range(3)] == [None] * 3
    first.sync()
    second.sync()
    # second read the shared total (6): past the limit
    assert second.retry_after("addr:a", rate) is not None
    # first read 3 at its sync; it learns the total at its next sync
    # after a request (the bounded overshoot of counting in each process)
    assert first.retry_after("addr:a", rate) is None
    first.sync()
    assert first.retry_after("addr:a", rate) is not None
    # another client is not affected
    assert first.retry_after("addr:b", rate) is None
    total = int(
        counters.get(next(counters.scan_iter(f"{throttling.KEY_PREFIX}addr:a:*")))
    )
    assert total == 7


@pytest.mark.parametrize(
    "rate,parsed",
    [("200/s", (200, 1)), ("5 / min", (5, 60)), ("10/hour", (10, 3600)), ("", None)],
)
def test_throttle_rates_parse(rate, parsed):
    assert throttling.parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["200", "0/s", "5/fortnight", "-1/s", "x/s"])
def test_a_bad_throttle_rate_is_a_configuration_error(rate):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        throttling.parse_rate(rate)
