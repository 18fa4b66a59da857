"""The Open Inference Protocol V2 spoken by a client nobody here wrote:
tritonclient's HTTP client against a real web server process (the Procfile's
`web` command: the HTTP front answers /v2 infer on its event loop)."""

import time

import httpx
import numpy as np
import pytest

from experiments import services as experiment_services
from registry import services
from registry.models import RegisteredModel
from tests.conftest import dump

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_models(two_versions, artifacts_root, estimators):
    """default (v1.0 LogisticRegression active, v2.0 RandomForest) and
    small (3 features: v1 LogisticRegression active, v2 the same model
    fitted with another regularisation)."""
    from sklearn.linear_model import LogisticRegression

    X3 = np.random.default_rng(3).normal(size=(200, 3))
    y3 = (X3[:, 0] + X3[:, 1] > 0).astype(int)
    small_v1 = services.model_version_register(
        model_name="small",
        version="v1",
        source=dump(artifacts_root, "small/v1.joblib", estimators["lr3"]),
    )
    services.model_version_register(
        model_name="small",
        version="v2",
        source=dump(
            artifacts_root, "small/v2.joblib", LogisticRegression(C=0.01).fit(X3, y3)
        ),
    )
    services.model_version_activate(version=small_v1)
    return two_versions


def triton(server):
    import tritonclient.http as httpclient

    return httpclient, httpclient.InferenceServerClient(
        url=f"127.0.0.1:{server.port}", connection_timeout=10, network_timeout=10
    )


def predicted(server, model, version, rows):
    body = {"features": rows.tolist(), "model": model, "model_version": version}
    answer = httpx.post(f"{server.url}/predict", json=body, timeout=10).json()
    labels = np.array([p["prediction"] for p in answer["predictions"]])
    keys = sorted(answer["predictions"][0]["probabilities"], key=int)
    proba = np.array(
        [[p["probabilities"][k] for k in keys] for p in answer["predictions"]]
    )
    return labels, proba


def test_tritonclient_reads_health_metadata_and_infers_like_predict(
    two_models, start_server
):
    server = start_server()
    httpclient, client = triton(server)
    # health
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("default")
    assert client.is_model_ready("small", "v2")
    assert client.get_server_metadata()["name"] == "mlserving"
    # metadata
    meta = client.get_model_metadata("default")
    assert meta["versions"] == ["v1.0", "v2.0"]
    assert meta["inputs"][0]["shape"] == [-1, 10]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    assert client.get_model_metadata("small", "v2")["inputs"][0]["shape"] == [-1, 3]
    # infer: two models, two versions each, binary and JSON tensors
    rng = np.random.default_rng(0)
    for model, width in (("default", 10), ("small", 3)):
        for version in {"default": ("v1.0", "v2.0"), "small": ("v1", "v2")}[model]:
            rows = rng.normal(size=(8, width))
            want_labels, want_proba = predicted(server, model, version, rows)
            for binary in (True, False):
                tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
                tensor.set_data_from_numpy(rows, binary_data=binary)
                result = client.infer(
                    model,
                    [tensor],
                    model_version=version,
                    request_id=f"{model}-{version}-{binary}",
                    outputs=[
                        httpclient.InferRequestedOutput("label", binary_data=binary),
                        httpclient.InferRequestedOutput(
                            "probabilities", binary_data=binary
                        ),
                    ],
                )
                answer = result.get_response()
                assert answer["model_version"] == version
                assert answer["id"] == f"{model}-{version}-{binary}"
                np.testing.assert_array_equal(result.as_numpy("label"), want_labels)
                np.testing.assert_array_equal(
                    result.as_numpy("probabilities"), want_proba
                )


def test_v2_infer_without_a_version_follows_the_experiment_split(
    two_models, start_server
):
    # given a hash-based experiment on default, 50/50 between v1.0 and v2.0
    model = RegisteredModel.objects.get(name="default")
    experiment_services.ab_test_configure(
        model=model,
        enabled=True,
        split_ratio=0.5,
        versions=[two_models["v1"], two_models["v2"]],
        strategy="hash-based",
    )
    server = start_server()
    httpclient, client = triton(server)
    rows = np.random.default_rng(1).normal(size=(1, 10))
    seen = {}
    deadline = time.monotonic() + 5
    for subject in range(60):
        tensor = httpclient.InferInput("input-0", [1, 10], "FP64")
        tensor.set_data_from_numpy(rows)
        result = client.infer(
            "default", [tensor], parameters={"user_id": f"user-{subject}"}
        )
        answer = result.get_response()
        by_predict = httpx.post(
            f"{server.url}/predict",
            json={"features": rows[0].tolist(), "user_id": f"user-{subject}"},
            timeout=10,
        ).json()
        # then: the same subject gets the same arm on both protocols
        assert answer["parameters"]["routing"] == "experiment"
        assert answer["model_version"] == by_predict["model_version"]
        assert answer["parameters"]["routing_arm"] == by_predict["routing"]["arm"]
        seen[subject] = answer["model_version"]
        assert time.monotonic() < deadline + 30
    counts = {v: list(seen.values()).count(v) for v in set(seen.values())}
    assert set(counts) == {"v1.0", "v2.0"}, counts
    assert min(counts.values()) >= 15, counts
