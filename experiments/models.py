"""A/B experiments: which versions of a model share its traffic, how
requests are assigned to them, which versions get a mirrored copy, the
guardrails that pause an arm, and what happened (audit entries, bandit
allocations). Every change to an experiment, its arms and its shadows is
kept by django-simple-history and shown in the admin.

The prediction path never reads these tables: running experiments are part
of the per-process registry catalog, rebuilt when the registry generation
moves (every write here bumps it).
"""

import secrets

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from registry.models import ModelVersion, RegisteredModel


def new_salt() -> str:
    return secrets.token_hex(8)


class Experiment(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"

    class Strategy(models.TextChoices):
        RANDOM = "random", "Random (independent draw per request)"
        HASH = "hash-based", "Hash-based (sticky per subject)"
        WEIGHTED = "weighted", "Weighted by performance (Thompson sampling)"

    class Reward(models.TextChoices):
        CONVERSION = "conversion", "Conversions (Beta-Bernoulli)"
        CONTINUOUS = "continuous", "Continuous reward (Gaussian)"

    name = models.SlugField(max_length=100, unique=True)
    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="experiments"
    )
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    strategy = models.CharField(
        max_length=16, choices=Strategy.choices, default=Strategy.RANDOM
    )
    # Hash-based: the bucket of a subject is hash(salt, key); a new salt
    # reshuffles everyone, so it is fixed at creation.
    salt = models.CharField(max_length=32, default=new_salt)
    # Which body field (or X-Subject-Key header) names the subject; the
    # request id when absent.
    subject_key = models.CharField(max_length=64, default="user_id")
    # Hash-based: [[start, end, arm index], ...] over the buckets; moved as
    # little as possible when weights change.
    hash_layout = models.JSONField(default=list, blank=True)
    # Weighted: Thompson sampling settings.
    reward = models.CharField(
        max_length=16, choices=Reward.choices, default=Reward.CONVERSION
    )
    min_share = models.FloatField(
        default=0.05, help_text="Weighted: the least traffic share of each arm."
    )
    error_penalty = models.FloatField(
        default=0.0,
        help_text="Weighted: subtracted from an arm's sampled reward per unit "
        "of error rate.",
    )
    latency_penalty_per_ms = models.FloatField(
        default=0.0,
        help_text="Weighted: subtracted from an arm's sampled reward per ms "
        "of mean latency.",
    )
    # Guardrails, checked at every rollup; blank = not checked.
    max_error_rate = models.FloatField(null=True, blank=True)
    max_p99_latency_ms = models.FloatField(null=True, blank=True)
    min_accuracy = models.FloatField(null=True, blank=True)
    min_labels = models.PositiveIntegerField(
        default=100, help_text="Labels an arm needs before min_accuracy applies."
    )
    min_requests = models.PositiveIntegerField(
        default=20,
        help_text="Requests an arm needs before the error-rate and latency "
        "guardrails apply.",
    )
    auto_promote = models.BooleanField(
        default=False,
        help_text="Activate the winner once the sequential test declares one "
        "(alpha 0.05), and complete the experiment.",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    # When arms or weights last changed (configure, pause, resume): the
    # sample-ratio check counts only assignments made since.
    weights_changed_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model"],
                condition=models.Q(status="running"),
                name="one_running_experiment_per_model",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """One arm: a version and its configured traffic weight. The first arm
    (lowest position) is the control; a paused arm's traffic goes to it."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="variants"
    )
    version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="variants"
    )
    weight = models.FloatField()
    position = models.PositiveSmallIntegerField(default=0)
    # Weighted: the share Thompson sampling gives this arm now.
    allocation = models.FloatField(null=True, blank=True)
    # The always-valid (mSPRT) p-value against the control at the last
    # look: a running minimum, so it is kept between looks.
    sequential_p = models.FloatField(default=1.0)
    paused = models.BooleanField(default=False)
    paused_reason = models.CharField(max_length=300, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["experiment", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "version"], name="one_arm_per_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name}:{self.version.version} ({self.weight:g})"

    @property
    def name(self) -> str:
        return self.version.version


class ShadowVersion(models.Model):
    """A version that gets a copy of `mirror_percent` % of the experiment's
    requests, answered in the background and never returned."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="shadows"
    )
    version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="shadowed_by"
    )
    mirror_percent = models.FloatField(default=100.0)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "version"], name="one_shadow_per_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name} shadow {self.version.version}"


class AllocationRecord(models.Model):
    """One recomputation of a weighted experiment's allocation."""

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="allocations"
    )
    computed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # {"v1.0": 0.31, "v2.0": 0.69}
    shares = models.JSONField()
    # The posterior inputs: {"v1.0": {"trials": ..., "successes": ...}}
    inputs = models.JSONField(default=dict)

    class Meta:
        ordering = ["-computed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.experiment.name} {self.computed_at:%H:%M:%S} {self.shares}"


class AuditEntry(models.Model):
    """Something the system or a person did to an experiment: a guardrail
    breach, a pause, a promotion. Breaches are the dashboard's alerts."""

    class Kind(models.TextChoices):
        GUARDRAIL = "guardrail", "Guardrail breach"
        PROMOTION = "promotion", "Winner promoted"
        STATUS = "status", "Status change"
        CONFIGURE = "configure", "Configuration"

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="audit"
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    arm = models.CharField(max_length=64, blank=True)
    message = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.experiment.name} {self.kind}: {self.message}"
