from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_schedules(sender, using="default", **kwargs) -> None:
    # Imported when called: apps.py loads before the app registry is ready
    # to import models.
    from experiments.schedules import experiments_schedules_ensure

    experiments_schedules_ensure()


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        # The beat schedule must exist in any migrated database.
        post_migrate.connect(_ensure_schedules, sender=self)
