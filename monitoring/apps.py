from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_schedules(sender, using="default", **kwargs) -> None:
    # Imported when called: apps.py loads before the app registry is ready
    # to import models.
    from monitoring.schedules import monitoring_schedules_ensure

    monitoring_schedules_ensure()


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # Infrastructure, not domain logic: the beat schedules must exist
        # in any database that has been migrated (tests' included).
        post_migrate.connect(_ensure_schedules, sender=self)
