"""The experiments admin, driven like a staff user would: create with
variants inline, start, see the statistics and the history, and the
configuration shows in /ab-test/status."""

from experiments.models import Experiment

ADD_URL = "/admin/experiments/experiment/add/"


def form_data(two_versions, *, weights=(0.5, 0.5), shadows=(), **fields):
    data = {
        "name": "checkout-button",
        "model": two_versions["v1"].model.pk,
        "description": "",
        "strategy": "hash-based",
        "subject_key": "user_id",
        "reward": "conversion",
        "min_share": "0.05",
        "error_penalty": "0",
        "latency_penalty_per_ms": "0",
        "max_error_rate": "0.05",
        "max_p99_latency_ms": "",
        "min_requests": "20",
        "min_accuracy": "",
        "min_labels": "100",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "2",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-position": "0",
        "variants-0-version": two_versions["v1"].pk,
        "variants-0-weight": str(weights[0]),
        "variants-1-position": "1",
        "variants-1-version": two_versions["v2"].pk,
        "variants-1-weight": str(weights[1]),
        "shadows-TOTAL_FORMS": str(len(shadows)),
        "shadows-INITIAL_FORMS": "0",
        "shadows-MIN_NUM_FORMS": "0",
        "shadows-MAX_NUM_FORMS": "1000",
        "audit-TOTAL_FORMS": "0",
        "audit-INITIAL_FORMS": "0",
        "audit-MIN_NUM_FORMS": "0",
        "audit-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for i, (version, percent) in enumerate(shadows):
        data[f"shadows-{i}-version"] = version.pk
        data[f"shadows-{i}-mirror_percent"] = str(percent)
    return data


def test_create_start_and_see_it_in_the_status(admin_client, client, two_versions):
    # when: created in the admin
    response = admin_client.post(ADD_URL, form_data(two_versions, weights=(0.7, 0.3)))
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment = Experiment.objects.get()
    assert experiment.status == "draft"
    assert experiment.hash_layout["arms"] == ["v1.0", "v2.0"]
    # and started with the action
    admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "start", "_selected_action": [experiment.pk]},
    )
    # then
    status = client.get("/ab-test/status").json()
    assert status["enabled"] is True
    assert status["experiment"] == "checkout-button"
    assert status["strategy"] == "hash-based"
    assert [a["weight"] for a in status["arms"]] == [0.7, 0.3]
    assert status["guardrails"]["max_error_rate"] == 0.05
    assert status["history"][0]["status"] == "running"
    assert status["history"][0]["by"] == "admin"
    history_page = admin_client.get(
        f"/admin/experiments/experiment/{experiment.pk}/history/"
    )
    assert history_page.status_code == 200
    assert "running" in history_page.content.decode()


def test_weights_that_do_not_sum_to_one_are_a_form_error(admin_client, two_versions):
    response = admin_client.post(ADD_URL, form_data(two_versions, weights=(0.7, 0.7)))
    assert response.status_code == 200
    assert "must sum to 1" in response.content.decode()
    assert not Experiment.objects.exists()


def test_a_version_failing_its_integrity_check_is_a_form_error(
    admin_client, two_versions
):
    from tests.conftest import flip_one_byte

    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    response = admin_client.post(ADD_URL, form_data(two_versions))
    assert response.status_code == 200
    assert "integrity_failed" in response.content.decode()
    assert not Experiment.objects.exists()


def test_change_page_shows_statistics_and_actions_report_errors(
    admin_client, two_versions
):
    admin_client.post(ADD_URL, form_data(two_versions))
    experiment = Experiment.objects.get()
    page = admin_client.get(f"/admin/experiments/experiment/{experiment.pk}/change/")
    content = page.content.decode()
    assert page.status_code == 200
    assert "experiment-stats" in content and "Sample ratio check" in content
    # promote without a winner: an error message, nothing changes
    response = admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "promote", "_selected_action": [experiment.pk]},
        follow=True,
    )
    assert "nothing to promote" in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.status == "draft"


def test_second_running_experiment_is_refused_with_a_message(
    admin_client, two_versions
):
    admin_client.post(ADD_URL, form_data(two_versions))
    admin_client.post(ADD_URL, form_data(two_versions, name="other"))
    ids = list(Experiment.objects.values_list("pk", flat=True))
    response = admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "start", "_selected_action": ids},
        follow=True,
    )
    assert "already runs experiment" in response.content.decode()
    assert Experiment.objects.filter(status="running").count() == 1
