"""The Celery app; configuration comes from Django settings (CELERY_*)."""

import os

from celery import Celery
from celery.signals import beat_init, worker_process_init, worker_ready

from monitoring.roles import role_register

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlserving.settings")

app = Celery("mlserving")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Each process says what it is, for the system sampler's per-role RSS.
@worker_ready.connect
@worker_process_init.connect
def _register_worker(**kwargs) -> None:
    role_register("worker")


@beat_init.connect
def _register_beat(**kwargs) -> None:
    role_register("beat")
