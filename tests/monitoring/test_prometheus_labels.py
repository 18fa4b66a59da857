"""GET /metrics/prometheus: answered in the text format whatever a scraper
accepts, and labelled by the registry's names, so that model names made up
by clients cannot add series without bound."""

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.events import writer
from tests.conftest import SEED_FEATURES

SCRAPER_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
ACCEPTS = {
    "text-plain": "text/plain",
    "openmetrics": "application/openmetrics-text",
    "prometheus-scraper": SCRAPER_ACCEPT,
    "any": "*/*",
    "none": None,
}


@pytest.mark.parametrize("accept", ACCEPTS.values(), ids=ACCEPTS.keys())
def test_the_exposition_is_text_whatever_is_accepted(client, db, accept):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = client.get("/metrics/prometheus", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert "mlserving_events_dropped" in names


def predict(client, **body):
    return client.post(
        "/predict",
        json.dumps({"features": SEED_FEATURES, **body}),
        content_type="application/json",
    )


def series(client) -> set[tuple]:
    """Every sample of the prediction metrics, as (name, labels)."""
    writer.flush()
    text = client.get("/metrics/prometheus").content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        if family.name.startswith("mlserving_prediction")
        for sample in family.samples
    }


def models_labelled(found: set[tuple]) -> set[str]:
    return {dict(labels).get("model") for _, labels in found}


def test_unknown_model_names_add_no_series(client, two_versions):
    # given: the series after one call naming a model nobody registered
    assert predict(client, model="nope-0").status_code == 404
    before = series(client)
    # when: 50 more, each naming another
    for i in range(1, 51):
        response = predict(client, model=f"nope-{i}")
        assert response.json()["error"]["code"] == "model_not_found"
    after = series(client)
    # then: not one series more, and none named after a request
    assert len(after) == len(before)
    assert not any(m.startswith("nope-") for m in models_labelled(after))
    assert any(
        dict(labels).get("model") == "unknown"
        and dict(labels).get("outcome") == "model_not_found"
        for _, labels in after
    )


def test_an_alias_reference_is_labelled_by_its_model(client, two_versions):
    # given: an alias that exists, and 20 that do not
    assert predict(client, model="default@production").status_code == 200
    for i in range(20):
        response = predict(client, model=f"default@nope-{i}")
        assert response.json()["error"]["code"] == "alias_not_found"
    # then: every one is counted under the model's own name
    labelled = models_labelled(series(client))
    assert not any("@" in (m or "") for m in labelled)
    assert "default" in labelled
