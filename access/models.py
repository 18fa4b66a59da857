"""API keys: hashed (only a prefix and a SHA-512 digest are stored, by
djangorestframework-api-key), named, scoped, revocable, optionally expiring."""

from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class Scope(models.TextChoices):
    # predictions, feedback and every read
    PREDICT = "predict", "predict: predictions and reads"
    # and every write: activate, rollback, aliases, experiments, uploads
    WRITE = "write", "write: predictions, reads and every change"


class ApiKey(AbstractAPIKey):
    scope = models.CharField(
        max_length=16,
        choices=Scope.choices,
        default=Scope.PREDICT,
        help_text="What the key may do. A predict key gets 403 on any write.",
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    @property
    def may_write(self) -> bool:
        return self.scope == Scope.WRITE
