"""Experiment services without HTTP: the bandit's state in the database,
the sequential test's running p-value, promotion, guardrail details."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from experiments import selectors, services
from experiments.models import AllocationRecord, Experiment
from mlserving.dataplane import serving
from mlserving.errors import Conflict
from monitoring.models import MetricRollup
from registry import selectors as registry_selectors


def experiment_with(two_versions, *, strategy="random", weights=(0.5, 0.5), **options):
    experiment = services.experiment_save(
        model=two_versions["v1"].model,
        spec=services.ExperimentSpec(
            variants=[
                (two_versions["v1"], weights[0]),
                (two_versions["v2"], weights[1]),
            ],
            strategy=strategy,
            options=options,
        ),
        name="exp",
    )
    experiment = services.experiment_start(experiment=experiment)
    # as if it had been running for a while: rollups of the last minutes count
    Experiment.objects.filter(pk=experiment.pk).update(
        started_at=timezone.now() - timedelta(minutes=5)
    )
    experiment.refresh_from_db()
    return experiment


def rollup(experiment, arm, *, count, conversions=0, errors=0, minutes_ago=1, p99=1.0):
    minute = (timezone.now() - timedelta(minutes=minutes_ago)).replace(
        second=0, microsecond=0
    )
    MetricRollup.objects.create(
        minute=minute,
        model=experiment.model.name,
        version=arm,
        experiment=experiment.name,
        arm=arm,
        count=count,
        errors=errors,
        rows=count,
        latency_sum_ms=count * 0.5,
        latency_p50_ms=0.5,
        latency_p95_ms=p99,
        latency_p99_ms=p99,
        latency_max_ms=p99,
        latency_histogram={"80": count},
        conversions=conversions,
        conversion_trials=conversions,
    )


def test_weighted_allocation_lives_in_the_database_and_reaches_routing(two_versions):
    # given: v2.0 converts 9% against v1.0's 5%
    experiment = experiment_with(two_versions, strategy="weighted", min_share=0.1)
    rollup(experiment, "v1.0", count=2000, conversions=100)
    rollup(experiment, "v2.0", count=2000, conversions=180)
    # when
    report = services.experiments_evaluate(rng=np.random.default_rng(1), push=False)
    # then
    shares = report.allocations["exp"]
    assert shares["v2.0"] > 0.85 and shares["v1.0"] >= 0.1 - 1e-9
    record = AllocationRecord.objects.get()
    assert record.shares == shares
    assert record.inputs["v2.0"]["successes"] == 180
    serving.catalog.invalidate()
    serving.catalog.poll(wait=True)
    entry = serving.catalog.current.experiments["default"]
    assert [round(a.share, 6) for a in entry.arms] == [shares["v1.0"], shares["v2.0"]]
    status = selectors.experiment_status(model_name="default")
    assert status["allocations"][0]["shares"] == shares
    # not recomputed before BANDIT_UPDATE_INTERVAL has passed
    again = services.experiments_evaluate(push=False)
    assert again.allocations == {}
    assert AllocationRecord.objects.count() == 1


def test_guardrail_on_p99_latency_and_the_control_is_never_paused(two_versions):
    experiment = experiment_with(two_versions, max_p99_latency_ms=50, min_requests=10)
    rollup(experiment, "v1.0", count=100, p99=80)
    rollup(experiment, "v2.0", count=100, p99=200)
    # histogram buckets decide the merged p99: put them where the values are
    MetricRollup.objects.filter(version="v1.0").update(latency_histogram={"120": 100})
    MetricRollup.objects.filter(version="v2.0").update(latency_histogram={"130": 100})
    services.experiments_evaluate(push=False)
    arms = {v.name: v for v in experiment.variants.select_related("version")}
    assert arms["v2.0"].paused is True
    assert "p99 latency" in arms["v2.0"].paused_reason
    assert arms["v1.0"].paused is False
    alerts = selectors.experiment_status(model_name="default")["alerts"]
    assert {a["arm"] for a in alerts} == {"v1.0", "v2.0"}
    # resumed by staff
    services.arm_resume(variant=arms["v2.0"])
    assert not experiment.variants.filter(paused=True).exists()


def test_guardrail_waits_for_enough_requests(two_versions):
    experiment = experiment_with(two_versions, max_error_rate=0.05, min_requests=50)
    rollup(experiment, "v2.0", count=10, errors=10)
    services.experiments_evaluate(push=False)
    assert not experiment.variants.filter(paused=True).exists()


def test_auto_promote_activates_the_winner_when_the_sequential_test_says_so(
    two_versions,
):
    experiment = experiment_with(two_versions, auto_promote=True)
    rollup(experiment, "v1.0", count=5000, conversions=250)
    rollup(experiment, "v2.0", count=5000, conversions=450)
    report = services.experiments_evaluate(push=False)
    assert report.promoted == ["exp"]
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.COMPLETED
    model = two_versions["v1"].model
    assert registry_selectors.model_version_get_active(model=model).version == "v2.0"
    assert experiment.audit.filter(kind="promotion", arm="v2.0").exists()


def test_no_promotion_without_a_winner(two_versions):
    experiment = experiment_with(two_versions, auto_promote=True)
    rollup(experiment, "v1.0", count=500, conversions=25)
    rollup(experiment, "v2.0", count=500, conversions=27)
    assert services.experiments_evaluate(push=False).promoted == []
    with pytest.raises(Conflict):
        services.experiment_promote(experiment=experiment)
    # the always-valid p-value is kept as a running minimum
    v2 = experiment.variants.get(version__version="v2.0")
    assert 0 < v2.sequential_p <= 1


def test_changing_an_experiment_is_kept_in_its_history(two_versions, django_user_model):
    user = django_user_model.objects.create(username="ana", is_staff=True)
    experiment = experiment_with(two_versions)
    services.experiment_save(
        model=experiment.model,
        experiment=experiment,
        spec=services.ExperimentSpec(
            variants=[(two_versions["v1"], 0.8), (two_versions["v2"], 0.2)],
            strategy="hash-based",
        ),
        user=user,
        reason="more control",
    )
    history = selectors.experiment_history(experiment=experiment)
    assert history[0]["strategy"] == "hash-based"
    assert history[0]["by"] == "ana"
    assert history[0]["reason"] == "more control"
    assert {h["status"] for h in history} >= {"draft", "running"}
    weights = [
        h.weight for h in experiment.variants.get(version__version="v1.0").history.all()
    ]
    assert weights[:2] == [0.8, 0.5]


def test_a_completed_experiment_cannot_be_restarted(two_versions):
    experiment = services.experiment_stop(experiment=experiment_with(two_versions))
    with pytest.raises(Conflict):
        services.experiment_start(experiment=experiment)


def test_guardrail_on_accuracy_waits_for_enough_labels(two_versions):
    experiment = experiment_with(two_versions, min_accuracy=0.8, min_labels=50)
    rollup(experiment, "v2.0", count=100)
    MetricRollup.objects.filter(version="v2.0").update(labels=40, correct=10)
    services.experiments_evaluate(push=False)
    assert not experiment.variants.filter(paused=True).exists()  # 40 < 50 labels
    MetricRollup.objects.filter(version="v2.0").update(labels=60, correct=30)
    services.experiments_evaluate(push=False)
    v2 = experiment.variants.get(version__version="v2.0")
    assert v2.paused and "accuracy 50.0% < 80.0%" in v2.paused_reason


def test_ratio_check_counts_only_assignments_under_the_current_weights(two_versions):
    # given: 30/70 for a while, flagged against 50/50
    experiment = experiment_with(two_versions, weights=(0.3, 0.7))
    rollup(experiment, "v1.0", count=300, minutes_ago=4)
    rollup(experiment, "v2.0", count=700, minutes_ago=4)
    # when: the weights become 50/50 two minutes ago, and traffic follows
    services.experiment_save(
        model=experiment.model,
        experiment=experiment,
        spec=services.ExperimentSpec(
            variants=[(two_versions["v1"], 0.5), (two_versions["v2"], 0.5)]
        ),
    )
    Experiment.objects.filter(pk=experiment.pk).update(
        weights_changed_at=timezone.now() - timedelta(minutes=2)
    )
    rollup(experiment, "v1.0", count=510, minutes_ago=1)
    rollup(experiment, "v2.0", count=490, minutes_ago=1)
    experiment.refresh_from_db()
    # then: only the second period is checked, and it is fine
    srm = selectors.experiment_status(model_name="default")["statistics"][
        "sample_ratio_mismatch"
    ]
    assert srm["applicable"] is True
    assert srm["counts"] == [510, 490]
    assert srm["flagged"] is False
    # whereas a real mismatch under the current weights is flagged
    rollup(experiment, "v1.0", count=400, minutes_ago=0)
    srm = selectors.experiment_status(model_name="default")["statistics"][
        "sample_ratio_mismatch"
    ]
    assert srm["counts"] == [910, 490] and srm["flagged"] is True


def test_auto_promote_keeps_the_control_when_it_beats_every_arm(two_versions):
    experiment = experiment_with(two_versions, auto_promote=True)
    rollup(experiment, "v1.0", count=5000, conversions=450)
    rollup(experiment, "v2.0", count=5000, conversions=250)
    assert services.experiments_evaluate(push=False).promoted == ["exp"]
    model = two_versions["v1"].model
    assert registry_selectors.model_version_get_active(model=model).version == "v1.0"
    assert experiment.audit.filter(kind="promotion", arm="v1.0").exists()
