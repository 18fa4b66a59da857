"""What monitoring stores: one raw event per /predict call, per-minute
rollups computed from them by Celery, psutil samples, and the rollup
job's watermark.

Raw events are pruned after EVENT_RETENTION_HOURS; rollups stay.
"""

from django.db import models
from django.db.models.functions import Now


class PredictionEvent(models.Model):
    """One /predict request, successful or not, written in batches by each
    web process's event writer (monitoring/events.py)."""

    # Indexed for feedback; server-made ids start with the time, so the
    # index grows at its end.
    request_id = models.CharField(max_length=64, db_index=True)
    # When the request arrived (web host clock): rollups bucket by this.
    created_at = models.DateTimeField(db_index=True)
    # When the row reached the database (database clock): rollups find new
    # rows by this, whatever their created_at.
    ingested_at = models.DateTimeField(db_default=Now(), db_index=True)
    model = models.CharField(max_length=100, blank=True)
    # Blank when the request failed before a version was chosen.
    version = models.CharField(max_length=64, blank=True)
    experiment = models.CharField(max_length=100, blank=True, default="")
    arm = models.CharField(max_length=64, blank=True, default="")
    latency_ms = models.FloatField()
    # "ok", or the error code the client got.
    outcome = models.CharField(max_length=40)
    status_code = models.PositiveSmallIntegerField(default=200)
    rows = models.PositiveIntegerField(default=0)
    # The predicted class of a one-row request; class_counts for batches.
    predicted_class = models.CharField(max_length=100, blank=True, default="")
    class_counts = models.JSONField(null=True, blank=True)
    # Mean of each row's highest class probability.
    confidence = models.FloatField(null=True, blank=True)
    subject_key = models.CharField(max_length=200, blank=True, default="")
    cached = models.BooleanField(default=False)
    # Only with LOG_FEATURES on.
    features = models.JSONField(null=True, blank=True)
    # A shadow prediction: a mirrored copy of the request with the same
    # request_id, answered by a shadow version and never returned. Its arm
    # is "shadow"; the rows on which it agreed with the primary's answer,
    # and the primary's latency, are kept for comparison.
    shadow = models.BooleanField(default=False)
    agreed_rows = models.PositiveIntegerField(null=True, blank=True)
    primary_latency_ms = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.request_id} {self.model}:{self.version} {self.outcome}"


class MetricRollup(models.Model):
    """Aggregates of the events of one minute for one model, version,
    experiment and arm; recomputed whole from the raw events, so running
    a rollup twice gives the same row."""

    minute = models.DateTimeField()
    model = models.CharField(max_length=100, blank=True)
    version = models.CharField(max_length=64, blank=True)
    experiment = models.CharField(max_length=100, blank=True, default="")
    arm = models.CharField(max_length=64, blank=True, default="")
    count = models.PositiveIntegerField()
    errors = models.PositiveIntegerField()
    errors_by_code = models.JSONField(default=dict)
    rows = models.PositiveIntegerField()
    cached = models.PositiveIntegerField(default=0)
    latency_sum_ms = models.FloatField()
    latency_p50_ms = models.FloatField()
    latency_p95_ms = models.FloatField()
    latency_p99_ms = models.FloatField()
    latency_max_ms = models.FloatField()
    # Sparse {bucket index: count} over monitoring.stats.LATENCY_BUCKETS, so
    # percentiles over many minutes can be merged.
    latency_histogram = models.JSONField(default=dict)
    confidence_sum = models.FloatField(default=0.0)
    confidence_count = models.PositiveIntegerField(default=0)
    class_counts = models.JSONField(default=dict)
    # Filled from feedback on this bucket's predictions (POST /feedback).
    labels = models.PositiveIntegerField(default=0)
    correct = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)
    # Feedback rows that said converted true or false.
    conversion_trials = models.PositiveIntegerField(default=0)
    rewards = models.PositiveIntegerField(default=0)
    reward_sum = models.FloatField(default=0.0)
    reward_sq_sum = models.FloatField(default=0.0)
    # Shadow buckets: rows compared with the primary's answer, rows that
    # agreed, and the primary's summed latency for the same requests.
    compared_rows = models.PositiveIntegerField(default=0)
    agreed_rows = models.PositiveIntegerField(default=0)
    primary_latency_sum_ms = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "model", "version", "experiment", "arm"],
                name="metric_rollup_bucket",
            )
        ]
        indexes = [models.Index(fields=["model", "minute"])]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.model}:{self.version} {self.count}"


class Feedback(models.Model):
    """What a client reported about one prediction (POST /feedback), with
    the prediction's bucket copied from the event log when it arrived, so
    rollups add it to the right minute, version and arm."""

    request_id = models.CharField(max_length=64, unique=True)
    # Database clock, set again when later feedback adds to the row:
    # rollups find changed feedback by it.
    changed_at = models.DateTimeField(db_default=Now(), db_index=True)
    converted = models.BooleanField(null=True, blank=True)
    reward = models.FloatField(null=True, blank=True)
    true_label = models.CharField(max_length=100, blank=True, default="")
    # Whether true_label equals the predicted class; None without a label.
    correct = models.BooleanField(null=True, blank=True)
    # The prediction's rollup bucket.
    minute = models.DateTimeField()
    model = models.CharField(max_length=100, blank=True)
    version = models.CharField(max_length=64, blank=True)
    experiment = models.CharField(max_length=100, blank=True, default="")
    arm = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["minute"])]

    def __str__(self) -> str:
        return f"feedback {self.request_id}"


class SystemSample(models.Model):
    """psutil readings of one host at one moment."""

    sampled_at = models.DateTimeField()
    host = models.CharField(max_length=255)
    cpu_percent = models.FloatField()
    memory_percent = models.FloatField()
    memory_used_bytes = models.BigIntegerField()
    memory_total_bytes = models.BigIntegerField()
    disk_percent = models.FloatField()
    disk_used_bytes = models.BigIntegerField()
    disk_total_bytes = models.BigIntegerField()
    # {"web": {"count": 2, "rss_bytes": ...}, "worker": {...}, ...}
    processes = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["host", "sampled_at"], name="system_sample_moment"
            )
        ]
        indexes = [models.Index(fields=["sampled_at"])]

    def __str__(self) -> str:
        return f"{self.host} {self.sampled_at:%Y-%m-%d %H:%M:%S}"


class RollupState(models.Model):
    """One row: how far the rollup job has read (by ingested_at). Locked
    for the whole run, so runs never interleave."""

    watermark = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_seconds = models.FloatField(default=0.0)
    last_run_events = models.PositiveIntegerField(default=0)
    last_run_buckets = models.PositiveIntegerField(default=0)
    # How far feedback has been read (by Feedback.changed_at).
    feedback_watermark = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rollups up to {self.watermark}"
