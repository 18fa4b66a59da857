"""No pickle is ever loaded because of an upload: a pickle carrying an
os.system payload is refused through the upload API, the admin and a
real web process, whatever it is called, and its payload never runs;
skops files load only with their types allowed; ONNX uploads serve;
names that would escape the artifacts root write nothing."""

import io
import json
import os
import pickle

import httpx
import joblib
import numpy as np
import pytest
import skops.io
from django.core.management import CommandError, call_command
from skl2onnx import to_onnx

from mlserving.dataplane import serving
from registry import services
from registry.errors import ArtifactLoadError
from registry.models import ModelVersion, RegisteredModel
from tests.conftest import SEED_FEATURES, dump


class Payload:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class PayloadThenModel:
    """Unpickling this runs `touch <marker>` and returns a real model, as
    a careful attacker's file would."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        code = (
            f"(__import__('os').system('touch {self.marker}'), "
            "__import__('sklearn.dummy', fromlist=['x'])"
            ".DummyClassifier().fit([[0.0] * 10, [1.0] * 10], [0, 1]))[1]"
        )
        return (eval, (code,))


def malicious_files(marker) -> dict[str, bytes]:
    """The same payloads as a plain pickle, joblib (plain and compressed),
    and a model-returning one; each offered under four names."""
    joblib_plain, joblib_zlib = io.BytesIO(), io.BytesIO()
    joblib.dump(Payload(marker), joblib_plain)
    joblib.dump(Payload(marker), joblib_zlib, compress=3)
    payloads = {
        "pickle": pickle.dumps(Payload(marker)),
        "pickle-protocol0": pickle.dumps(Payload(marker), protocol=0),
        "joblib": joblib_plain.getvalue(),
        "joblib-zlib": joblib_zlib.getvalue(),
        "model-returning": pickle.dumps(PayloadThenModel(marker)),
    }
    return {
        f"{kind}-as-model.{ext}": data
        for kind, data in payloads.items()
        for ext in ("pkl", "joblib", "skops", "onnx")
    }


def artifact_files(root):
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
    )


def upload(client, data: bytes, *, version: str, model="uploaded", filename=None):
    query = f"model={model}&version={version}"
    if filename:
        query += f"&filename={filename}"
    return client.post(
        f"/models/upload?{query}", data=data, content_type="application/octet-stream"
    )


def test_a_malicious_pickle_is_refused_by_the_upload_api_and_never_runs(
    client, two_versions, tmp_path
):
    # given
    marker = tmp_path / "pwned"
    root = two_versions["root"]
    before = artifact_files(root)
    rows_before = ModelVersion.objects.count()
    for filename, data in malicious_files(marker).items():
        # when
        response = upload(client, data, version="v6", filename=filename)
        # then: a clear 4xx, nothing ran, nothing stayed
        assert response.status_code == 422, (filename, response.content)
        error = response.json()["error"]
        assert error["code"] == "artifact_refused", filename
        assert "pickle" in error["message"], filename
        assert not marker.exists(), filename
    assert ModelVersion.objects.count() == rows_before
    assert not RegisteredModel.objects.filter(name="uploaded").exists()
    assert artifact_files(root) == before


def test_a_malicious_pickle_is_refused_by_the_admin_form(
    admin_client, two_versions, tmp_path
):
    marker = tmp_path / "pwned"
    before = artifact_files(two_versions["root"])
    for filename, data in list(malicious_files(marker).items())[:8]:
        handle = io.BytesIO(data)
        handle.name = filename
        response = admin_client.post(
            "/admin/registry/modelversion/add/",
            {"model_name": "default", "version": "v6", "artifact": handle},
        )
        assert response.status_code == 200
        assert "are not accepted by upload" in response.content.decode(), filename
        assert not marker.exists(), filename
    assert not ModelVersion.objects.filter(version="v6").exists()
    assert artifact_files(two_versions["root"]) == before


def test_a_real_web_process_refuses_it_too_and_nothing_runs_anywhere(
    two_versions, start_server, tmp_path
):
    # given a real web worker (uvicorn, the HTTP front, Django)
    marker = tmp_path / "pwned"
    server = start_server()
    for filename, data in list(malicious_files(marker).items())[::3]:
        answer = httpx.post(
            f"{server.url}/models/upload?model=default&version=v6&filename={filename}",
            content=data,
            headers={"content-type": "application/octet-stream"},
            timeout=30,
        )
        assert answer.status_code == 422, answer.text
    # and a restarted worker warms up what is registered: still nothing ran
    server.stop()
    start_server()
    call_command("verify_artifacts")
    assert not marker.exists()
    assert not ModelVersion.objects.filter(version="v6").exists()


def test_register_model_from_disk_refuses_pickles_when_not_allowed(
    db, artifacts_root, settings, tmp_path
):
    settings.MLSERVING = {**settings.MLSERVING, "ALLOW_PICKLE": False}
    marker = tmp_path / "pwned"
    path = artifacts_root / "model_v9.pkl"
    path.write_bytes(pickle.dumps(PayloadThenModel(marker)))
    with pytest.raises(CommandError, match="ALLOW_PICKLE"):
        call_command("register_model", str(path), "--name", "m", "--version", "v9")
    assert not marker.exists()
    assert not ModelVersion.objects.exists()


def test_a_pickle_from_disk_is_served_from_its_skops_copy(
    client, db, artifacts_root, estimators
):
    version = services.model_version_register(
        model_name="m",
        version="v1",
        source=dump(artifacts_root, "model_v1.pkl", estimators["rf"]),
        runtime="sklearn",
    )
    assert version.format == "joblib"
    assert version.skops_path == "m/v1/model.skops"
    assert version.trusted_types == ["sklearn.tree._tree.Tree"]
    services.model_version_activate(version=version)
    answer = client.post(
        "/predict",
        data=json.dumps({"features": SEED_FEATURES, "model": "m"}),
        content_type="application/json",
    ).json()
    want = estimators["rf"].predict_proba([SEED_FEATURES])[0]
    assert answer["probabilities"] == {"0": want[0], "1": want[1]}


def test_a_skops_random_forest_with_tree_allowed_predicts_exactly_as_the_original(
    client, two_versions, estimators
):
    # given
    forest = estimators["rf"]
    data = skops.io.dumps(forest)
    # when
    response = upload(client, data, model="forest", version="v1")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "skops"
    row = ModelVersion.objects.get(model__name="forest")
    assert row.trusted_types == ["sklearn.tree._tree.Tree"]
    assert row.sklearn_version
    rows = np.random.default_rng(0).normal(size=(50, 10))
    for runtime in ("sklearn", "onnx"):
        services.model_version_runtime_set(version=row, runtime=runtime)
        answer = client.post(
            "/predict",
            data=json.dumps(
                {"features": rows.tolist(), "model": "forest", "model_version": "v1"}
            ),
            content_type="application/json",
        ).json()
        got = np.array(
            [
                [p["probabilities"]["0"], p["probabilities"]["1"]]
                for p in answer["predictions"]
            ]
        )
        want = forest.predict_proba(rows)
        if runtime == "sklearn":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, atol=1e-5)
        labels = [p["prediction"] for p in answer["predictions"]]
        assert labels == forest.predict(rows).tolist()


def test_a_skops_file_with_a_type_outside_the_allow_list_is_refused_naming_it(
    client, two_versions, estimators, settings
):
    settings.MLSERVING = {**settings.MLSERVING, "SKOPS_TRUSTED_TYPES": []}
    before = artifact_files(two_versions["root"])
    response = upload(client, skops.io.dumps(estimators["rf"]), model="f", version="v1")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "artifact_untrusted_types"
    assert "sklearn.tree._tree.Tree" in error["message"]
    assert error["details"]["untrusted_types"] == ["sklearn.tree._tree.Tree"]
    assert not ModelVersion.objects.filter(model__name="f").exists()
    assert artifact_files(two_versions["root"]) == before


def test_an_onnx_upload_is_served_by_onnx_runtime(client, two_versions, estimators):
    model = to_onnx(
        estimators["lr"],
        np.zeros((1, 10), dtype=np.float64),
        options={id(estimators["lr"]): {"zipmap": False}},
    )
    response = upload(client, model.SerializeToString(), model="onnx", version="v1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["format"], body["serving_runtime"], body["n_features"]) == (
        "onnx",
        "onnx",
        10,
    )
    answer = client.post(
        "/predict",
        data=json.dumps(
            {"features": SEED_FEATURES, "model": "onnx", "model_version": "v1"}
        ),
        content_type="application/json",
    ).json()
    assert answer["prediction"] == estimators["lr"].predict([SEED_FEATURES])[0]


def test_uploads_over_the_size_cap_are_a_413(client, two_versions, settings):
    settings.MLSERVING = {**settings.MLSERVING, "UPLOAD_MAX_BYTES": 1000}
    response = upload(client, b"\x00" * 5000, version="v7")
    assert response.status_code == 413
    assert not ModelVersion.objects.filter(version="v7").exists()


def test_uploads_take_only_octet_stream(client, two_versions):
    response = client.post(
        "/models/upload?model=x&version=v1",
        data={"file": "x"},
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    "name,version",
    [
        ("../escaped", "v1"),
        ("a/b", "v1"),
        ("/tmp/abs", "v1"),
        ("ok", "../v1"),
        ("ok", "v1/../../x"),
        ("ok", "/etc"),
        ("..", "v1"),
    ],
)
def test_register_model_refuses_names_that_leave_the_root_and_writes_nothing(
    db, artifacts_root, estimators, tmp_path, name, version
):
    outside = dump(tmp_path / "src", "clf.joblib", estimators["lr"])
    watched = [artifacts_root, tmp_path, tmp_path.parent]
    before = {str(d): sorted(os.listdir(d)) for d in watched}
    with pytest.raises(CommandError):
        call_command(
            "register_model", str(outside), "--name", name, "--version", version
        )
    assert {str(d): sorted(os.listdir(d)) for d in watched} == before
    assert artifact_files(artifacts_root) == []
    assert not ModelVersion.objects.exists()


def test_compile_versions_gives_an_older_pickle_version_its_skops_copy(
    client, db, artifacts_root, estimators, settings
):
    # given a version as an older release registered it: no skops copy
    settings.MLSERVING = {**settings.MLSERVING, "MODEL_RUNTIME": "sklearn"}
    version = services.model_version_register(
        model_name="default",
        version="v1.0",
        source=dump(artifacts_root, "model_v1.0.pkl", estimators["lr"]),
    )
    services.model_version_activate(version=version)
    os.unlink(artifacts_root / version.skops_path)
    ModelVersion.objects.filter(pk=version.pk).update(
        skops_path="", skops_sha256="", trusted_types=[], compiled_detail=""
    )

    def predict():
        return client.post(
            "/predict",
            data=json.dumps({"features": SEED_FEATURES}),
            content_type="application/json",
        )

    # then the server does not unpickle it: it says what to run
    refused = predict()
    assert refused.status_code == 422
    assert "compile_versions" in refused.json()["error"]["message"]
    # when
    call_command("compile_versions")
    call_command("verify_artifacts")
    # then
    version.refresh_from_db()
    assert version.skops_path == "default/v1.0/model.skops"
    assert version.status == "ready"
    serving.catalog.invalidate()
    serving.catalog.poll(wait=True)
    answer = predict()
    assert answer.status_code == 200, answer.content
    assert answer.json()["prediction"] == estimators["lr"].predict([SEED_FEATURES])[0]


def test_a_server_process_refuses_to_unpickle_even_from_disk(
    db, artifacts_root, estimators, tmp_path, monkeypatch
):
    from registry.runtimes import sklearn as sklearn_runtime

    monkeypatch.setitem(sklearn_runtime._unpickling, "allowed", True)
    sklearn_runtime.unpickling_forbid()
    marker = tmp_path / "pwned"
    path = artifacts_root / "model_v1.pkl"
    path.write_bytes(pickle.dumps(PayloadThenModel(marker)))
    with pytest.raises(ArtifactLoadError, match="never unpickles"):
        services.model_version_register(model_name="m", version="v1", source=path)
    assert not marker.exists()
    assert not ModelVersion.objects.exists()
