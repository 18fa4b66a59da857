"""MAX_MODELS_IN_MEMORY under rotation, and the warning when the versions
that must stay loaded do not fit."""

import json
import logging

from mlserving.dataplane import serving
from registry import services
from tests.conftest import dump, expected_label


def predict(client, **fields):
    body = json.dumps(fields)
    return client.post("/predict", body, content_type="application/json")


def test_ten_versions_in_rotation_never_exceed_max_models_in_memory(
    db, artifacts_root, estimators, client, settings
):
    settings.MLSERVING = {**settings.MLSERVING, "MAX_MODELS_IN_MEMORY": 3}
    path = dump(artifacts_root, "model.pkl", estimators["lr"])
    for number in range(1, 11):
        version = services.model_version_register(
            model_name="default", version=f"v{number}", source=path
        )
    services.model_version_activate(version=version)
    row = estimators["X"][0].tolist()
    most = 0
    for _ in range(3):
        for number in range(1, 11):
            response = predict(client, features=row, model_version=f"v{number}")
            assert response.status_code == 200, response.content
            body = response.json()
            assert body["model_version"] == f"v{number}"
            assert body["prediction"] == expected_label(estimators["lr"], row)
            loaded = serving.runtimes.cache.loaded()
            most = max(most, len(loaded))
            assert len(loaded) <= 3, [e.label for e in loaded]
    assert most == 3
    # the active version (pinned) stayed loaded through the rotation
    assert "default:v10" in [e.label for e in serving.runtimes.cache.loaded()]


def test_a_warning_when_the_serving_versions_exceed_the_limit(
    db, artifacts_root, estimators, settings, caplog
):
    settings.MLSERVING = {**settings.MLSERVING, "MAX_MODELS_IN_MEMORY": 3}
    path = dump(artifacts_root, "model.pkl", estimators["lr"])
    for name in ("a", "b", "c"):
        services.model_version_activate(
            version=services.model_version_register(
                model_name=name, version="v1", source=path
            )
        )
    with caplog.at_level(logging.WARNING, logger="mlserving.dataplane"):
        serving.catalog.invalidate()
        serving.catalog.poll(wait=True)
    assert "must stay loaded" not in caplog.text  # 3 fit in 3

    services.model_version_activate(
        version=services.model_version_register(
            model_name="d", version="v1", source=path
        )
    )
    with caplog.at_level(logging.WARNING, logger="mlserving.dataplane"):
        serving.catalog.invalidate()
        serving.catalog.poll(wait=True)
    assert "4 versions must stay loaded" in caplog.text
    assert "a:v1, b:v1, c:v1, d:v1" in caplog.text
    assert "MAX_MODELS_IN_MEMORY is 3" in caplog.text
