"""The compiled runtime: ONNX conversion at registration, validation, the
runtime choice, and the converted file verified like any artifact."""

import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import LabelPropagation

from mlserving.dataplane import serving
from registry import artifacts, services
from registry.compile import CompileRefused, onnx_compile
from registry.demo import demo_dataset
from registry.models import ModelVersion
from registry.runtimes import OnnxRuntime, SklearnRuntime, runtime_load
from tests.conftest import dump, flip_one_byte


@pytest.fixture(scope="module")
def three_models():
    """The benchmark's three models, trained on the demo data."""
    X_train, X_test, y_train, _ = demo_dataset()
    models = {
        "lr": LogisticRegression(max_iter=1000),
        "rf": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0),
        "hgb": HistGradientBoostingClassifier(random_state=0),
    }
    for model in models.values():
        model.fit(X_train, y_train)
    return models, X_test


@pytest.mark.parametrize("name", ["lr", "rf", "hgb"])
def test_onnx_runtime_equals_sklearn_on_1000_random_rows(three_models, name):
    models, X_test = three_models
    estimator = models[name]
    compiled = onnx_compile(estimator, n_features=10)
    onnx = OnnxRuntime(compiled.payload)
    onnx.load()
    # random rows over the data's range, not the validation sample itself
    rng = np.random.default_rng(12345)
    low, high = X_test.min(axis=0), X_test.max(axis=0)
    rows = rng.uniform(low, high, size=(1000, 10))
    labels, proba = onnx.infer(rows)
    assert np.array_equal(labels, estimator.predict(rows))
    assert np.max(np.abs(proba - estimator.predict_proba(rows))) <= 1e-5
    assert onnx.signature().classes == [0, 1]
    # one row at a time answers the same as the batch
    for row in rows[:20]:
        one_label, one_proba = onnx.infer(row.reshape(1, -1))
        assert one_label[0] == estimator.predict(row.reshape(1, -1))[0]
        expected = estimator.predict_proba(row.reshape(1, -1))
        assert np.allclose(one_proba, expected, rtol=0, atol=1e-5)


def test_registration_compiles_and_the_catalog_serves_onnx(
    db, artifacts_root, three_models, client
):
    models, X_test = three_models
    path = dump(artifacts_root, "model_v1.0.pkl", models["hgb"])
    version = services.model_version_register(
        model_name="default", version="v1.0", source=path
    )
    services.model_version_activate(version=version)
    assert version.compiled_path == "default/v1.0/model.onnx"
    compiled = artifacts.resolve(version.compiled_path)
    assert artifacts.file_sha256(compiled) == version.compiled_sha256
    assert version.compiled_size_bytes == compiled.stat().st_size
    assert "labels identical" in version.compiled_detail
    assert (version.runtime, version.serving_runtime) == ("auto", "onnx")

    entry = serving.catalog.snapshot().models["default"].active
    assert (entry.runtime, entry.artifact_path) == ("onnx", version.compiled_path)
    row = X_test[0].tolist()
    answer = client.post(
        "/predict", json.dumps({"features": row}), content_type="application/json"
    ).json()
    assert answer["prediction"] == int(models["hgb"].predict([row])[0])
    expected = models["hgb"].predict_proba([row])[0].tolist()
    assert list(answer["probabilities"].values()) == pytest.approx(expected, abs=1e-5)
    listed = client.get("/models").json()["models"][0]
    assert listed["serving_runtime"] == "onnx"
    assert listed["compiled"]["available"] is True
    assert listed["compiled"]["sha256"] == version.compiled_sha256


def test_an_unsupported_model_is_served_by_sklearn_with_the_reason(
    db, artifacts_root, three_models, client
):
    X_train, _, y_train, _ = demo_dataset()
    estimator = LabelPropagation().fit(X_train[:300], y_train[:300])
    path = dump(artifacts_root, "model_v1.0.pkl", estimator)
    version = services.model_version_register(
        model_name="default", version="v1.0", source=path
    )
    services.model_version_activate(version=version)
    assert version.compiled_path == ""
    assert version.serving_runtime == "sklearn"
    assert "no converter for LabelPropagation" in version.compiled_detail
    assert list(artifacts_root.rglob("*.onnx")) == []
    listed = client.get("/models").json()["models"][0]
    assert listed["serving_runtime"] == "sklearn"
    assert listed["compiled"]["available"] is False
    assert "no converter" in listed["compiled"]["detail"]
    response = client.post(
        "/predict",
        json.dumps({"features": X_train[0].tolist()}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


class Disagreeing(LogisticRegression):
    """predict() is not argmax(predict_proba()); converted as a plain
    LogisticRegression, its ONNX form answers differently."""

    def predict(self, X):
        return 1 - super().predict(X)


def test_a_conversion_that_answers_differently_is_refused():
    from skl2onnx import update_registered_converter
    from skl2onnx.operator_converters.linear_classifier import (
        convert_sklearn_linear_classifier,
    )
    from skl2onnx.shape_calculators.linear_classifier import (
        calculate_linear_classifier_output_shapes,
    )

    update_registered_converter(
        Disagreeing,
        "TestDisagreeing",
        calculate_linear_classifier_output_shapes,
        convert_sklearn_linear_classifier,
        options={
            "zipmap": [True, False, "columns"],
            "nocl": [True, False],
            "raw_scores": [True, False],
        },
    )
    X_train, _, y_train, _ = demo_dataset()
    estimator = Disagreeing(max_iter=500).fit(X_train, y_train)
    with pytest.raises(CompileRefused) as refused:
        onnx_compile(estimator, n_features=10)
    assert "2,048 of 2,048 labels differ" in refused.value.reason


def test_a_changed_compiled_file_is_refused_like_any_artifact(
    db, artifacts_root, three_models, client
):
    models, X_test = three_models
    path = dump(artifacts_root, "model_v1.0.pkl", models["rf"])
    version = services.model_version_register(
        model_name="default", version="v1.0", source=path
    )
    services.model_version_activate(version=version)
    flip_one_byte(artifacts.resolve(version.compiled_path), offset=-100)

    entry = serving.catalog.snapshot().models["default"].active
    with pytest.raises(Exception) as refused:
        runtime_load(entry)
    assert type(refused.value).__name__ == "ArtifactIntegrityError"

    services.model_version_verify(version=version)
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.INTEGRITY_FAILED
    assert "model.onnx" in version.status_detail
    response = client.post(
        "/predict",
        json.dumps({"features": X_test[0].tolist()}),
        content_type="application/json",
    )
    # the same answer as for a changed joblib file (tests/api/test_models.py)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "artifact_integrity_error"


def test_the_setting_and_the_version_field_choose_the_runtime(
    db, artifacts_root, three_models, settings
):
    models, _ = three_models
    path = dump(artifacts_root, "model_v1.0.pkl", models["lr"])
    version = services.model_version_register(
        model_name="default", version="v1.0", source=path
    )

    def served():
        serving.reset()
        entry = serving.catalog.snapshot().models["default"].versions["v1.0"]
        loaded = runtime_load(entry)
        return entry.runtime, type(loaded)

    assert served() == ("onnx", OnnxRuntime)
    settings.MLSERVING = {**settings.MLSERVING, "MODEL_RUNTIME": "sklearn"}
    assert served() == ("sklearn", SklearnRuntime)
    # the version's own choice wins over the setting
    services.model_version_runtime_set(version=version, runtime="onnx")
    assert served() == ("onnx", OnnxRuntime)
    services.model_version_runtime_set(version=version, runtime="sklearn")
    settings.MLSERVING = {**settings.MLSERVING, "MODEL_RUNTIME": "auto"}
    assert served() == ("sklearn", SklearnRuntime)


def test_compile_versions_converts_versions_registered_before(
    db, artifacts_root, three_models
):
    from django.core.management import call_command

    models, _ = three_models
    path = dump(artifacts_root, "model_v1.0.pkl", models["lr"])
    version = services.model_version_register(
        model_name="default", version="v1.0", source=path
    )
    # as a version registered before the compiled runtime existed
    artifacts.resolve(version.compiled_path).unlink()
    ModelVersion.objects.filter(pk=version.pk).update(
        compiled_path="", compiled_sha256="", compiled_detail=""
    )
    version.refresh_from_db()
    assert version.serving_runtime == "sklearn"
    call_command("compile_versions")
    version.refresh_from_db()
    assert version.serving_runtime == "onnx"
    assert artifacts.file_sha256(artifacts.resolve(version.compiled_path)) == (
        version.compiled_sha256
    )
