"""Monitoring in the admin: beat schedules editable, rollups read-only."""

from django_celery_beat.models import PeriodicTask

from tests.conftest import settle_metrics


def test_the_rollup_schedule_is_listed_and_editable(admin_client, db):
    # created by `migrate` (the post_migrate hook) from ROLLUP_INTERVAL
    task = PeriodicTask.objects.get(task="monitoring.tasks.rollup_task")
    assert task.interval.every == 2
    listing = admin_client.get("/admin/django_celery_beat/periodictask/")
    assert "monitoring: rollups" in listing.content.decode()
    page = admin_client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
    assert page.status_code == 200
    assert b'name="enabled"' in page.content


def test_rollups_are_shown_and_cannot_be_edited(admin_client, client, two_versions):
    client.post(
        "/predict",
        {"features": [0.1] * 10},
        content_type="application/json",
    )
    settle_metrics()
    listing = admin_client.get("/admin/monitoring/metricrollup/")
    assert listing.status_code == 200
    assert "v1.0" in listing.content.decode()
    assert admin_client.get("/admin/monitoring/metricrollup/add/").status_code == 403
    events = admin_client.get("/admin/monitoring/predictionevent/")
    assert events.status_code == 200
