"""GET /metrics over a window, and /metrics/prometheus parsed by
prometheus_client's own parser."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring.models import MetricRollup
from monitoring.selectors import websocket_url
from tests.conftest import SEED_FEATURES, settle_metrics


def predict(client, **body):
    return client.post(
        "/predict",
        json.dumps({"features": SEED_FEATURES, **body}),
        content_type="application/json",
    )


def test_metrics_per_version_with_latency_percentiles(client, two_versions):
    for _ in range(6):
        predict(client)
    for _ in range(2):
        predict(client, model_version="v2.0")
    predict(client, features=[1, 2])  # wrong feature count: 422 on v1.0
    settle_metrics()
    body = client.get("/metrics?window=15m").json()
    assert (body["window"], body["window_seconds"]) == ("15m", 900)
    assert body["total_requests"] == 9
    assert body["failed_predictions"] == 1
    assert body["error_rate"] == pytest.approx(1 / 9, abs=1e-4)
    assert body["errors_by_code"] == {"feature_count_mismatch": 1}
    latency = body["processing_time_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert latency["p99"] <= latency["max"]
    versions = {v["model_version"]: v for v in body["by_version"]}
    assert versions["v1.0"]["predictions"] == 7
    assert versions["v1.0"]["failed_predictions"] == 1
    assert versions["v2.0"]["predictions"] == 2
    assert versions["v2.0"]["share"] == pytest.approx(2 / 9, abs=1e-4)
    assert 0.5 <= versions["v2.0"]["avg_confidence"] <= 1
    assert body["pipeline"]["events_written_here"] == 9
    assert body["pipeline"]["event_ingest"] == "not listening"  # none runs here
    assert body["ab_distribution"] == []


def test_the_window_leaves_out_older_minutes(client, db):
    now = timezone.now().replace(second=0, microsecond=0)
    for minutes_ago, count in ((0, 5), (30, 7), (300, 11)):
        MetricRollup.objects.create(
            minute=now - timedelta(minutes=minutes_ago),
            model="default",
            version="v1.0",
            count=count,
            errors=0,
            rows=count,
            latency_sum_ms=count,
            latency_p50_ms=1,
            latency_p95_ms=1,
            latency_p99_ms=1,
            latency_max_ms=1,
            latency_histogram={"10": count},
        )
    totals = {
        window: client.get(f"/metrics?window={window}").json()["total_requests"]
        for window in ("10m", "1h", "1d", "600")
    }
    assert totals == {"10m": 5, "1h": 12, "1d": 23, "600": 5}


@pytest.mark.parametrize(
    "window", ["0", "abc", "-5m", "91d", "1w", "1.5h", "2161h", ""]
)
def test_a_bad_window_is_a_422(client, db, window):
    response = client.get(f"/metrics?window={window}")
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "window"


def test_prometheus_counts_requests_by_outcome_and_parses(client, two_versions):
    def total(families, outcome=None):
        return sum(
            s.value
            for f in families
            if f.name == "mlserving_predictions"
            for s in f.samples
            if s.name == "mlserving_predictions_total"
            and (outcome is None or s.labels["outcome"] == outcome)
        )

    before = list(
        text_string_to_metric_families(
            client.get("/metrics/prometheus").content.decode()
        )
    )
    for _ in range(4):
        predict(client)
    predict(client, features="x")
    from monitoring.events import writer

    writer.flush()
    response = client.get("/metrics/prometheus")
    assert response["Content-Type"].startswith("text/plain")
    after = list(text_string_to_metric_families(response.content.decode()))
    assert total(after) - total(before) == 5
    assert total(after, "invalid_features") - total(before, "invalid_features") == 1
    names = {f.name for f in after}
    assert {
        "mlserving_prediction_latency_seconds",
        "mlserving_prediction_rows",
        "mlserving_events_dropped",
    } <= names


def test_batched_histogram_counts_equal_one_observe_per_value():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from monitoring import prometheus

    amounts = [0.0001, 0.0005, 0.0007, 0.001, 0.004, 0.02, 0.5, 3.0, 31.0, 0.002]

    def exposition(fill) -> list[str]:
        # a name of its own: in multiprocess mode same-named values share
        # their file
        name = f"h_{fill.__name__}"
        registry = CollectorRegistry()
        histogram = Histogram(
            name, "h", ["x"], buckets=prometheus.LATENCY_BUCKETS, registry=registry
        )
        fill(histogram.labels("a"))
        text = generate_latest(registry).decode().replace(name, "h")
        return [line for line in text.splitlines() if "_created" not in line]

    def one_by_one(child):
        for amount in amounts:
            child.observe(amount)

    def batched(child):
        prometheus.histogram_observe_many(child, amounts)

    assert exposition(batched) == exposition(one_by_one)


@pytest.mark.parametrize(
    "host, secure, expected",
    [
        ("127.0.0.1:8000", False, "ws://127.0.0.1:8000/ws/metrics/"),
        ("ml.example.com", True, "wss://ml.example.com/ws/metrics/"),
        ("[::1]:8000", False, "ws://[::1]:8000/ws/metrics/"),
    ],
)
def test_the_dashboard_finds_the_socket_on_its_own_origin(host, secure, expected):
    assert websocket_url(host=host, secure=secure) == expected


def test_a_configured_websocket_url_wins(client, db, settings):
    settings.MONITORING = {
        **settings.MONITORING,
        "WEBSOCKET_URL": "wss://ml.example.com/ws/metrics/",
    }
    page = client.get("/").content.decode()
    assert 'data-ws-url="wss://ml.example.com/ws/metrics/"' in page
