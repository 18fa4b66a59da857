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
    _forbid_unpickling()


@beat_init.connect
def _register_beat(**kwargs) -> None:
    role_register("beat")
    _forbid_unpickling()


def _forbid_unpickling() -> None:
    # Workers verify artifacts and run tasks for HTTP requests: they load
    # skops and ONNX forms only, never a pickle. Imported here, not at the
    # top: every `celery`/`manage.py` start imports this module, and
    # scikit-learn need not load for those that never serve.
    from registry.runtimes.sklearn import unpickling_forbid

    unpickling_forbid()
