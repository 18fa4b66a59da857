"""Helpers every experiments service shares: the audit trail and saving
with a history record's user and reason."""

from experiments.models import AuditEntry
from registry import services as registry_services


def audit(experiment, kind, message, *, arm="", details=None, user=None):
    AuditEntry.objects.create(
        experiment=experiment,
        kind=kind,
        arm=arm,
        message=message[:500],
        details=details or {},
        actor=registry_services.actor_of(user, "" if user else "system"),
    )


def save(instance, *, user=None, reason: str = "", **kwargs) -> None:
    """save() with the history record's user and reason."""
    instance._history_user = registry_services.real_user(user)
    instance._change_reason = reason[:100] if reason else None
    instance.save(**kwargs)
