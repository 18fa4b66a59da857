"""A path no route takes is a JSON 404 in the one error shape, with DEBUG
on (the default outside production, where Django would answer with its
HTML debug page) as with DEBUG off; trailing-slash redirects stay for GET
and never turn a POST into HTML."""

import httpx
import pytest

from mlserving.asgi import application
from tests.conftest import SEED_FEATURES


@pytest.fixture(params=[True, False], ids=["debug", "no-debug"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def assert_json_404(response, path: str) -> dict:
    assert response.status_code == 404, response.content[:300]
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["details"]["path"] == path
    return error


CASES = {
    "get-unknown": ("get", "/nope"),
    "get-unknown-slash": ("get", "/nope/deeper/"),
    "post-unknown": ("post", "/nope"),
    "post-predict-slash": ("post", "/predict/"),
    "post-feedback-slash": ("post", "/feedback/"),
    "get-metrics-slash": ("get", "/metrics/"),
    "delete-unknown": ("delete", "/models/v1.0/nope"),
}


@pytest.mark.parametrize("method, path", CASES.values(), ids=CASES.keys())
def test_an_unknown_path_is_a_json_404(client, db, debug, method, path):
    body = {} if method == "get" else {"data": b'{"features": [1]}'}
    response = getattr(client, method)(path, content_type="application/json", **body)
    assert_json_404(response, path)


def test_a_get_without_its_slash_is_still_redirected(client, db, debug):
    response = client.get("/admin")
    assert response.status_code == 301
    assert response["Location"] == "/admin/"


def test_a_post_without_its_slash_is_a_404_that_names_the_route(client, db, debug):
    # Django redirects it to a GET (losing the body), or with DEBUG on
    # raises a RuntimeError, an HTML 500
    response = client.post("/admin", {"a": "b"})
    error = assert_json_404(response, "/admin")
    assert error["details"]["did_you_mean"] == "/admin/"


def test_the_routes_still_answer(client, two_versions, debug):
    response = client.post(
        "/predict",
        f'{{"features": {SEED_FEATURES}}}',
        content_type="application/json",
    )
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302  # to the login page


@pytest.mark.anyio
async def test_the_front_hands_unknown_paths_to_the_same_404(settings):
    settings.DEBUG = True
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver"
    ) as c:
        response = await c.post("/predict/", json={"features": SEED_FEATURES})
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"
