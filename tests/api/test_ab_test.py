"""/ab-test/status, /ab-test/configure and experiment routing of /predict,
through the real URL routes; assignment checked over many requests with
the catalog entry the prediction path uses."""

import json

import numpy as np
import pytest
from scipy import stats

from experiments import services
from experiments.models import AuditEntry, Experiment
from experiments.tasks import experiments_evaluate_task
from mlserving.dataplane import serving
from mlserving.errors import Conflict
from monitoring.models import PredictionEvent
from monitoring.tasks import rollup_task
from registry import services as registry_services
from registry.faults import FailingClassifier, SlowClassifier
from tests.conftest import SEED_FEATURES, dump, flip_one_byte, settle_metrics


def post(client, url, body, **extra):
    return client.post(
        url, data=json.dumps(body), content_type="application/json", **extra
    )


def configure(client, **body):
    return post(client, "/ab-test/configure", body)


def predict(client, body=None, **extra):
    return post(client, "/predict", body or {"features": SEED_FEATURES}, **extra)


def running_entry():
    serving.catalog.invalidate()
    # wait: a background poll may hold the catalog's lock right now
    serving.catalog.poll(wait=True)
    return serving.catalog.current.experiments["default"]


def binomial_ok(successes: int, n: int, p: float, level: float = 0.999) -> bool:
    low, high = stats.binom.interval(level, n, p)
    return low <= successes <= high


@pytest.fixture
def failing_version(two_versions, estimators):
    version = registry_services.model_version_register(
        model_name="default",
        version="v3.0",
        source=dump(
            two_versions["root"], "model_v3.0.pkl", FailingClassifier(estimators["lr"])
        ),
    )
    return version


def test_status_without_an_experiment(client, two_versions):
    response = client.get("/ab-test/status")
    assert response.status_code == 200
    body = response.json()
    assert body["enabled"] is False
    assert body["arms"] == [] and body["history"] == []


def test_configure_runs_an_experiment_and_predict_names_the_arm(client, two_versions):
    # when
    response = configure(
        client,
        enabled=True,
        split_ratio=0.5,
        models=["v1.0", "v2.0"],
        strategy="random",
    )
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["enabled"] is True
    assert body["strategy"] == "random"
    assert body["split_ratio"] == 0.5
    assert body["models"] == ["v1.0", "v2.0"]
    assert [a["weight"] for a in body["arms"]] == [0.5, 0.5]
    assert body["history"][0]["status"] == "running"
    seen = set()
    for _ in range(40):
        answer = predict(client).json()
        routing = answer["routing"]
        assert routing["reason"] == "experiment"
        assert routing["experiment"] == body["experiment"]
        assert routing["strategy"] == "random"
        assert routing["arm"] == answer["model_version"]
        seen.add(routing["arm"])
    assert seen == {"v1.0", "v2.0"}


def test_random_70_30_over_10000_requests(client, two_versions):
    configure(client, enabled=True, split_ratio=0.7, models=["v1.0", "v2.0"])
    entry = running_entry()
    # 10,000 assignments by the code /predict runs
    arms = [
        entry.assign(body={}, header=None, request_id=str(i)).arm.name
        for i in range(10_000)
    ]
    assert binomial_ok(arms.count("v1.0"), 10_000, 0.7)
    # and through the API, with the counts reaching the status
    answers = [predict(client).json()["model_version"] for _ in range(400)]
    settle_metrics()
    status = client.get("/ab-test/status").json()
    counts = {a["arm"]: a["requests"] for a in status["arms"]}
    assert counts == {"v1.0": answers.count("v1.0"), "v2.0": answers.count("v2.0")}
    assert binomial_ok(answers.count("v1.0"), 400, 0.7)
    assert status["total_requests"] == 400


def test_hash_based_is_sticky_and_rebalancing_moves_few_subjects(client, two_versions):
    configure(
        client,
        enabled=True,
        split_ratio=0.5,
        models=["v1.0", "v2.0"],
        strategy="hash-based",
    )
    entry = running_entry()
    keys = [f"user-{i}" for i in range(1000)]

    def assign(entry):
        result = {}
        for key in keys:
            arms = {
                entry.assign(
                    body={"user_id": key}, header=None, request_id="r"
                ).arm.name
                for _ in range(5)
            }
            assert len(arms) == 1, f"{key} moved between arms: {arms}"
            result[key] = arms.pop()
        return result

    before = assign(entry)
    assert binomial_ok(list(before.values()).count("v1.0"), 1000, 0.5)
    # when: 50/50 -> 60/40
    configure(client, split_ratio=0.6)
    after = assign(running_entry())
    moved = [k for k in keys if before[k] != after[k]]
    # then: about 10% move, all of them towards the arm that grew
    assert 0.07 <= len(moved) / 1000 <= 0.13
    assert all(before[k] == "v2.0" and after[k] == "v1.0" for k in moved)
    assert binomial_ok(list(after.values()).count("v1.0"), 1000, 0.6)


def test_hash_based_through_the_api_body_header_and_request_id(client, two_versions):
    configure(
        client,
        enabled=True,
        models=["v1.0", "v2.0"],
        split_ratio=0.5,
        strategy="hash-based",
    )
    body = {"features": SEED_FEATURES, "user_id": "alice"}
    arms = {predict(client, body).json()["routing"]["arm"] for _ in range(5)}
    assert len(arms) == 1
    routing = predict(client, body).json()["routing"]
    assert routing["subject"] == "user_id"
    header = {"HTTP_X_SUBJECT_KEY": "bob"}
    by_header = {predict(client, **header).json()["routing"]["arm"] for _ in range(5)}
    assert len(by_header) == 1
    assert predict(client, **header).json()["routing"]["subject"] == "header"
    assert predict(client).json()["routing"]["subject"] == "request_id"


def test_explicit_version_and_use_ab_testing_false_bypass_the_experiment(
    client, two_versions
):
    configure(client, enabled=True, split_ratio=0.0, models=["v1.0", "v2.0"])
    explicit = predict(client, {"features": SEED_FEATURES, "model_version": "v1.0"})
    assert explicit.json()["routing"] == {"reason": "explicit"}
    alias = predict(client, {"features": SEED_FEATURES, "use_ab_testing": False})
    assert alias.json()["routing"]["reason"] == "alias"
    assert alias.json()["model_version"] == "v1.0"
    # split_ratio 0: every experiment request goes to v2.0
    assert {predict(client).json()["model_version"] for _ in range(20)} == {"v2.0"}


def test_disabling_pauses_and_the_alias_serves_again(client, two_versions):
    configure(client, enabled=True, split_ratio=0.0, models=["v1.0", "v2.0"])
    response = configure(client, enabled=False)
    assert response.json()["enabled"] is False
    assert response.json()["status"] == "paused"
    assert predict(client).json()["routing"]["reason"] == "alias"
    statuses = [h["status"] for h in response.json()["history"]]
    assert statuses[0] == "paused" and "running" in statuses


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"split_ratio": 1.5}, 422, "validation_error"),
        ({"strategy": "round-robin"}, 422, "validation_error"),
        ({"models": ["v1.0"]}, 422, "validation_error"),
        ({"models": ["v1.0", "v1.0"]}, 422, "validation_error"),
        ({"models": ["v1.0", "v9.9"]}, 404, "model_version_not_found"),
        ({"enabled": "yes please"}, 422, "validation_error"),
    ],
    ids=[
        "split-over-1",
        "unknown-strategy",
        "one-model",
        "same-twice",
        "unknown",
        "bad-bool",
    ],
)
def test_configure_rejects_bad_input(client, two_versions, body, status, code):
    response = configure(client, **body)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert not Experiment.objects.filter(status="running").exists()


def test_configure_refuses_a_version_that_fails_its_integrity_check(
    client, two_versions
):
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    response = configure(client, enabled=True, models=["v1.0", "v2.0"])
    assert response.status_code == 422
    assert "v2.0" in response.json()["error"]["message"]
    assert not Experiment.objects.exists()


def test_a_model_runs_at_most_one_experiment(client, two_versions):
    configure(client, enabled=True, models=["v1.0", "v2.0"])
    other = services.experiment_save(
        model=two_versions["v1"].model,
        spec=services.ExperimentSpec(
            variants=[(two_versions["v1"], 0.5), (two_versions["v2"], 0.5)]
        ),
        name="second",
    )
    with pytest.raises(Conflict):
        services.experiment_start(experiment=other)


def test_settings_give_the_initial_state(settings, client, two_versions):
    settings.MLSERVING = {
        **settings.MLSERVING,
        "AB_TEST_ENABLED": True,
        "AB_TEST_SPLIT_RATIO": 0.3,
    }
    # when: a web process starts
    serving.warmup()
    # then
    status = client.get("/ab-test/status").json()
    assert status["enabled"] is True
    assert status["split_ratio"] == 0.3
    assert status["models"] == ["v1.0", "v2.0"]
    assert status["history"][-1]["reason"] == "settings: AB_TEST_ENABLED"
    # and a second start changes nothing
    serving.warmup()
    assert Experiment.objects.count() == 1


def test_guardrail_pauses_a_failing_arm_at_the_next_evaluation(client, failing_version):
    # given: v3.0 raises on every prediction
    configure(client, enabled=True, split_ratio=0.5, models=["v1.0", "v3.0"])
    experiment = Experiment.objects.get()
    experiment.max_error_rate = 0.05
    experiment.min_requests = 10
    experiment.save()
    first = [predict(client).status_code for _ in range(60)]
    assert 500 in first and 200 in first
    # when: one rollup and one evaluation (the beat-scheduled tasks)
    settle_metrics_events_only()
    rollup_task()
    experiments_evaluate_task()
    # then: the arm is paused, audited, and nobody sees an error after that
    status = client.get("/ab-test/status").json()
    arm = next(a for a in status["arms"] if a["arm"] == "v3.0")
    assert arm["paused"] is True
    assert "error rate" in arm["paused_reason"]
    assert status["alerts"][0]["arm"] == "v3.0"
    # the control now takes the paused arm's traffic: no ratio check
    srm = status["statistics"]["sample_ratio_mismatch"]
    assert srm["applicable"] is False and srm["flagged"] is False
    assert AuditEntry.objects.filter(kind="guardrail", arm="v3.0").count() == 1
    serving.catalog.invalidate()
    after = [predict(client) for _ in range(100)]
    assert {r.status_code for r in after} == {200}
    assert {r.json()["model_version"] for r in after} == {"v1.0"}
    # the hash layout keeps its place for when the arm resumes
    routing = after[0].json()["routing"]
    assert routing["arm"] == "v1.0"


def settle_metrics_events_only():
    from monitoring.events import writer

    writer.flush()


def test_shadow_gets_a_copy_and_agreement_is_measured(client, two_versions, estimators):
    # given: v1.0 serves everything, v2.0 answers a mirrored copy
    configure(client, enabled=True, split_ratio=1.0, models=["v1.0", "v2.0"])
    experiment = Experiment.objects.get()
    services.experiment_save(
        model=experiment.model,
        experiment=experiment,
        spec=services.ExperimentSpec(
            variants=[(two_versions["v1"], 1.0), (two_versions["v2"], 0.0)],
            shadows=[],
        ),
    )
    # v2.0 cannot be both an arm and a shadow: use a third version
    v3 = registry_services.model_version_register(
        model_name="default",
        version="v3.0",
        source=dump(two_versions["root"], "model_v3.0.pkl", estimators["rf"]),
    )
    services.experiment_save(
        model=experiment.model,
        experiment=experiment,
        spec=services.ExperimentSpec(
            variants=[(two_versions["v1"], 1.0), (two_versions["v2"], 0.0)],
            shadows=[(v3, 100.0)],
        ),
    )
    rows = estimators["X"][:60]
    expected = int(
        np.count_nonzero(
            estimators["lr"].predict(rows) == estimators["rf"].predict(rows)
        )
    )
    serving.catalog.invalidate()
    # when
    for row in rows:
        answer = predict(client, {"features": row.tolist()})
        assert answer.json()["model_version"] == "v1.0"
    assert serving.shadow_runner.drain()
    settle_metrics()
    # then
    status = client.get("/ab-test/status").json()
    (mirror,) = status["shadows"]
    assert mirror["version"] == "v3.0"
    assert mirror["requests"] == 60
    assert mirror["compared_rows"] == 60
    assert mirror["agreement_rate"] == pytest.approx(expected / 60, abs=1e-6)
    shadow_ids = set(
        PredictionEvent.objects.filter(shadow=True).values_list("request_id", flat=True)
    )
    primary_ids = set(
        PredictionEvent.objects.filter(shadow=False).values_list(
            "request_id", flat=True
        )
    )
    assert shadow_ids == primary_ids
    metrics = client.get("/metrics").json()
    assert metrics["total_requests"] == 60  # mirrored copies are not requests
    assert metrics["shadow"][0]["predictions"] == 60


def test_a_full_shadow_queue_drops_and_counts(
    settings, client, two_versions, estimators
):
    settings.EXPERIMENTS = {**settings.EXPERIMENTS, "SHADOW_QUEUE_SIZE": 1}
    slow = registry_services.model_version_register(
        model_name="default",
        version="v3.0",
        source=dump(
            two_versions["root"],
            "model_v3.0.pkl",
            SlowClassifier(estimators["lr"], 0.2),
        ),
    )
    configure(client, enabled=True, split_ratio=1.0, models=["v1.0", "v2.0"])
    experiment = Experiment.objects.get()
    services.experiment_save(
        model=experiment.model,
        experiment=experiment,
        spec=services.ExperimentSpec(
            variants=[(two_versions["v1"], 1.0), (two_versions["v2"], 0.0)],
            shadows=[(slow, 100.0)],
        ),
    )
    serving.catalog.invalidate()
    answers = [predict(client) for _ in range(10)]
    assert {a.status_code for a in answers} == {200}
    assert serving.shadow_runner.stats()["dropped"] >= 5
    assert serving.shadow_runner.drain()


@pytest.fixture(autouse=True)
def _fresh_shadow_runner():
    serving.shadow_runner.reset()
    yield
    serving.shadow_runner.drain()
    serving.shadow_runner.reset()


def test_an_arm_whose_artifact_breaks_falls_back_to_the_control(client, two_versions):
    configure(client, enabled=True, split_ratio=0.0, models=["v1.0", "v2.0"])
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    serving.reset()  # a fresh process: v2.0 must be loaded from disk
    answers = [predict(client) for _ in range(5)]
    assert {a.status_code for a in answers} == {200}
    routing = answers[0].json()["routing"]
    assert routing["arm"] == "v1.0" and routing["fallback_from"] == "v2.0"
    assert routing["error"] == "artifact_integrity_error"
    assert answers[0].json()["model_version"] == "v1.0"
