"""The Open Inference Protocol V2 through the real URL routes (Django's
views) and through the HTTP front (the ASGI app): the same answers as
/predict, metadata with the signature, readiness, errors in the
protocol's shape, aliases and rows keyed by feature name."""

import json

import httpx
import numpy as np
import orjson
import pytest

from mlserving.asgi import application
from mlserving.dataplane import serving
from monitoring.events import writer
from monitoring.models import PredictionEvent
from registry import services
from tests.conftest import SEED_FEATURES, dump

ROWS = [SEED_FEATURES, [-v for v in SEED_FEATURES], [0.0] * 10]


def v2_body(rows, datatype="FP64", **extra) -> dict:
    flat = [v for row in rows for v in row]
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(rows[0])],
                "datatype": datatype,
                "data": flat,
            }
        ],
        **extra,
    }


def post(client, url, body, **extra):
    return client.post(
        url, data=json.dumps(body), content_type="application/json", **extra
    )


def predict(client, rows, **fields):
    response = post(client, "/predict", {"features": rows, **fields})
    assert response.status_code == 200, response.content
    return response.json()


def outputs(body) -> dict:
    return {o["name"]: o for o in body["outputs"]}


@pytest.mark.parametrize("version", ["v1.0", "v2.0"])
def test_infer_equals_predict_for_the_same_rows(client, two_versions, version):
    # given
    expected = predict(client, ROWS, model_version=version)["predictions"]
    # when
    response = post(
        client,
        f"/v2/models/default/versions/{version}/infer",
        v2_body(ROWS, id="req-7"),
    )
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_name"] == "default"
    assert body["model_version"] == version
    assert body["id"] == "req-7"
    found = outputs(body)
    assert found["label"]["shape"] == [3]
    assert found["label"]["datatype"] == "INT64"
    assert found["label"]["data"] == [p["prediction"] for p in expected]
    assert found["probabilities"]["shape"] == [3, 2]
    proba = np.array(found["probabilities"]["data"]).reshape(3, 2)
    want = np.array(
        [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in expected]
    )
    np.testing.assert_array_equal(proba, want)


def test_infer_without_a_version_follows_the_alias_and_says_so(client, two_versions):
    response = post(client, "/v2/models/default/infer", v2_body(ROWS))
    body = response.json()
    assert body["model_version"] == "v1.0"
    assert body["parameters"]["model_version"] == "v1.0"
    assert body["parameters"]["routing"] == "alias"
    assert body["parameters"]["routing_alias"] == "production"
    assert len(body["parameters"]["request_id"]) > 0


def test_requested_outputs_only_and_fp32_input(client, two_versions):
    response = post(
        client,
        "/v2/models/default/infer",
        v2_body(ROWS, datatype="FP32", outputs=[{"name": "label"}]),
    )
    assert response.status_code == 200, response.content
    assert [o["name"] for o in response.json()["outputs"]] == ["label"]


def test_infer_leaves_a_prediction_event(client, two_versions):
    response = post(client, "/v2/models/default/infer", v2_body(ROWS))
    writer.flush()
    event = PredictionEvent.objects.get(request_id=response["X-Request-ID"])
    assert (event.model, event.version, event.rows) == ("default", "v1.0", 3)


@pytest.mark.parametrize(
    "url,body,status,word",
    [
        pytest.param(
            "/v2/models/nope/infer", v2_body(ROWS), 404, "nope", id="unknown-model"
        ),
        pytest.param(
            "/v2/models/default/versions/v9/infer",
            v2_body(ROWS),
            404,
            "v9",
            id="unknown-version",
        ),
        pytest.param(
            "/v2/models/default/infer",
            v2_body([[1.0, 2.0, 3.0]]),
            422,
            "10 features",
            id="feature-count",
        ),
        pytest.param(
            "/v2/models/default/infer",
            v2_body(ROWS, datatype="BYTES"),
            422,
            "FP32",
            id="datatype",
        ),
        pytest.param(
            "/v2/models/default/infer",
            v2_body(ROWS, outputs=[{"name": "embedding"}]),
            422,
            "embedding",
            id="unknown-output",
        ),
        pytest.param(
            "/v2/models/default/infer", {"inputs": "x"}, 422, "inputs", id="inputs"
        ),
        pytest.param(
            "/v2/models/default@nope/infer", v2_body(ROWS), 404, "nope", id="alias"
        ),
    ],
)
def test_errors_have_the_protocol_shape(client, two_versions, url, body, status, word):
    response = post(client, url, body)
    assert response.status_code == status
    error = response.json()
    assert isinstance(error["error"], str)
    assert word in error["error"]
    assert error["code"]


def test_malformed_json_is_a_400_in_the_protocol_shape(client, two_versions):
    response = client.post(
        "/v2/models/default/infer", data=b"{", content_type="application/json"
    )
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


def test_metadata_shows_tensors_and_the_signature(
    client, db, artifacts_root, estimators
):
    # given a version registered with feature names
    names = [f"f{i}" for i in range(10)]
    services.model_version_register(
        model_name="named",
        version="v1",
        source=dump(artifacts_root, "named.pkl", estimators["rf"]),
        metadata={"feature_names": names},
    )
    # when
    response = client.get("/v2/models/named/versions/v1")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "named"
    assert body["versions"] == ["v1"]
    assert body["platform"] in ("onnxruntime_onnx", "sklearn_skops")
    assert body["inputs"] == [
        {"name": "input-0", "datatype": "FP64", "shape": [-1, 10]}
    ] or body["inputs"][0]["shape"] == [-1, 10]
    assert {o["name"]: o["shape"] for o in body["outputs"]} == {
        "label": [-1],
        "probabilities": [-1, 2],
    }
    signature = body["parameters"]["signature"]
    assert signature["feature_names"] == names
    assert signature["n_features"] == 10
    assert signature["classes"] == [0, 1]
    assert signature["sklearn_version"]
    assert signature["format"] == "joblib"


def test_health_live_and_ready_follow_what_is_loaded(client, two_versions):
    assert client.get("/v2/health/live").status_code == 200
    serving.reset()
    not_ready = client.get("/v2/health/ready")
    assert not_ready.status_code == 503
    assert "default" in not_ready.json()["waiting"]
    serving.warmup()
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def test_model_ready(client, two_versions):
    assert client.get("/v2/models/default/ready").status_code == 200
    assert client.get("/v2/models/default/versions/v2.0/ready").status_code == 200
    assert client.get("/v2/models/nope/ready").status_code == 404


def test_an_alias_is_addressable_on_predict_and_v2(client, two_versions):
    # given
    services.model_alias_set(version=two_versions["v2"], alias="challenger")
    # when
    by_predict = predict(client, ROWS, model="default@challenger")
    by_v2 = post(client, "/v2/models/default@challenger/infer", v2_body(ROWS)).json()
    # then
    assert by_predict["model_version"] == "v2.0"
    assert by_predict["routing"] == {"reason": "alias", "alias": "challenger"}
    assert by_v2["model_version"] == "v2.0"
    assert by_v2["parameters"]["routing_alias"] == "challenger"
    # and the default alias is untouched
    assert predict(client, ROWS)["model_version"] == "v1.0"


def named_version(artifacts_root, estimators):
    names = [f"f{i}" for i in range(10)]
    version = services.model_version_register(
        model_name="named",
        version="v1",
        source=dump(artifacts_root, "named.pkl", estimators["lr"]),
        metadata={"feature_names": names},
    )
    services.model_version_activate(version=version)
    return names


def test_rows_keyed_by_feature_name_equal_the_positional_answer(
    client, db, artifacts_root, estimators
):
    names = named_version(artifacts_root, estimators)
    positional = predict(client, ROWS, model="named")["predictions"]
    # keys in reverse order: order-independent
    keyed = [{n: row[i] for i, n in reversed(list(enumerate(names)))} for row in ROWS]
    by_name = predict(client, keyed, model="named")["predictions"]
    assert by_name == positional
    one = predict(client, keyed[0], model="named")
    assert one["prediction"] == positional[0]["prediction"]
    assert one["probabilities"] == positional[0]["probabilities"]


@pytest.mark.parametrize(
    "change,word",
    [
        pytest.param(lambda row: row.pop("f3"), "missing f3", id="missing"),
        pytest.param(lambda row: row.update(bogus=1.0), "unknown bogus", id="extra"),
    ],
)
def test_a_missing_or_unknown_feature_name_is_a_422_naming_it(
    client, db, artifacts_root, estimators, change, word
):
    names = named_version(artifacts_root, estimators)
    row = dict(zip(names, SEED_FEATURES, strict=True))
    change(row)
    response = post(client, "/predict", {"features": [row], "model": "named"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "feature_names_mismatch"
    assert word in error["message"]


def test_the_schema_documents_v2(client):
    schema = client.get("/openapi.json").json()
    infer = schema["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]
    assert {"200", "404", "422"} <= set(infer["responses"])
    assert "/v2/health/ready" in schema["paths"]


# --- through the HTTP front (the event loop path) -------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.anyio
async def test_the_front_answers_v2_infer_like_the_django_view(two_versions):
    from asgiref.sync import sync_to_async

    body = orjson.dumps(v2_body(ROWS, id="front"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://testserver"
    ) as front:
        answer = await front.post(
            "/v2/models/default/versions/v2.0/infer",
            content=body,
            headers={"content-type": "application/json"},
        )
        missing = await front.post("/v2/models/nope/infer", content=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "front"
    assert missing.status_code == 404
    assert "nope" in missing.json()["error"]

    def django_answer():
        from django.test import Client

        return Client().post(
            "/v2/models/default/versions/v2.0/infer",
            data=body,
            content_type="application/json",
        )

    expected = await sync_to_async(django_answer)()
    assert outputs(answer.json()) == outputs(expected.json())


def test_mlserver_output_names_are_answered_under_those_names(client, two_versions):
    # the body MLServer's scikit-learn runtime takes (../shared/bench/v2_body.py)
    body = v2_body(ROWS, datatype="FP32")
    body["outputs"] = [{"name": "predict"}, {"name": "predict_proba"}]
    response = post(client, "/v2/models/default/infer", body)
    assert response.status_code == 200, response.content
    found = outputs(response.json())
    assert list(found) == ["predict", "predict_proba"]
    assert found["predict_proba"]["shape"] == [3, 2]
