"""Shapes of /health, /metrics (for the OpenAPI schema) and /feedback."""

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from monitoring import feedback, ingest


class HealthSerializer(serializers.Serializer):
    """`status` always; the rest only for an API key or a staff session
    (or anyone, with HEALTH_DETAILS_PUBLIC)."""

    status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
    timestamp = serializers.FloatField(required=False)
    uptime_seconds = serializers.FloatField(required=False)
    pid = serializers.IntegerField(required=False)
    database = serializers.DictField(required=False)
    redis = serializers.DictField(
        required=False, help_text="Reported only: predictions never need Redis."
    )
    default_model = serializers.CharField(allow_null=True, required=False)
    active_version = serializers.CharField(allow_null=True, required=False)
    models = serializers.DictField(required=False)
    models_loaded = serializers.ListField(child=serializers.CharField(), required=False)
    events = serializers.DictField(
        required=False,
        help_text="This process's event writer: buffered, written, dropped.",
    )
    problems = serializers.ListField(child=serializers.CharField(), required=False)


class LatencySerializer(serializers.Serializer):
    avg = serializers.FloatField(allow_null=True)
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)


class RatesSerializer(serializers.Serializer):
    success_rate = serializers.FloatField(allow_null=True)
    error_rate = serializers.FloatField(allow_null=True)
    avg_confidence = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(
        allow_null=True,
        help_text="Share of correct predictions among those "
        "with a true label from feedback.",
    )
    labels = serializers.IntegerField()
    conversions = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True)


class VersionMetricsSerializer(RatesSerializer):
    model = serializers.CharField()
    model_version = serializers.CharField()
    predictions = serializers.IntegerField(help_text="Requests served.")
    successful_predictions = serializers.IntegerField()
    failed_predictions = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)
    avg_processing_time_ms = serializers.FloatField(allow_null=True)
    processing_time_ms = LatencySerializer()
    errors_by_code = serializers.DictField(child=serializers.IntegerField())
    class_counts = serializers.DictField(child=serializers.IntegerField())


class ArmMetricsSerializer(RatesSerializer):
    experiment = serializers.CharField()
    arm = serializers.CharField()
    model_version = serializers.CharField()
    requests = serializers.IntegerField()
    share = serializers.FloatField()


class PipelineSerializer(serializers.Serializer):
    rollup_interval_seconds = serializers.IntegerField()
    last_rollup_at = serializers.CharField(allow_null=True)
    seconds_since_last_rollup = serializers.FloatField(allow_null=True)
    last_rollup_seconds = serializers.FloatField(allow_null=True)
    events_buffered_here = serializers.IntegerField()
    events_written_here = serializers.IntegerField()
    events_dropped_here = serializers.IntegerField(
        help_text="Events this process dropped because its buffer was full "
        "(all processes: mlserving_events_dropped_total in /metrics/prometheus)."
    )
    event_write_error = serializers.CharField(allow_null=True)
    event_ingest = serializers.ChoiceField(
        choices=ingest.STATES,
        help_text="This process's link to the host's ingest process: "
        "'connected' (it writes the events), 'not listening' (this process "
        "inserts them itself), 'failed' (the last batch got no answer or an "
        "error; it was checked and written here), 'off' (EVENT_INGEST_SOCKET "
        "is blank).",
    )
    pid = serializers.IntegerField()


class MetricsSerializer(RatesSerializer):
    window = serializers.CharField()
    window_seconds = serializers.FloatField()
    scope = serializers.CharField(
        help_text="'all processes': computed from the shared rollups."
    )
    since = serializers.CharField()
    until = serializers.CharField()
    total_requests = serializers.IntegerField()
    successful_predictions = serializers.IntegerField()
    failed_predictions = serializers.IntegerField()
    rows_predicted = serializers.IntegerField()
    cache_hits = serializers.IntegerField()
    avg_processing_time_ms = serializers.FloatField(allow_null=True)
    max_processing_time_ms = serializers.FloatField(allow_null=True)
    processing_time_ms = LatencySerializer()
    errors_by_code = serializers.DictField(child=serializers.IntegerField())
    class_counts = serializers.DictField(child=serializers.IntegerField())
    by_version = VersionMetricsSerializer(many=True)
    ab_distribution = ArmMetricsSerializer(many=True)
    pipeline = PipelineSerializer()
    models_loaded = serializers.ListField(child=serializers.CharField())
    system = serializers.DictField(help_text="Live readings of the answering host.")
    system_sampled = serializers.DictField(
        allow_null=True, help_text="The latest stored psutil sample."
    )


class RequestIdField(serializers.CharField):
    """A request id: a JSON string (or integer). Checked before DRF's
    CharField, which calls str() on whatever it gets first: on a
    1,000-deep list, a RecursionError (a 500)."""

    def run_validation(self, data=serializers.empty):
        unset = data is serializers.empty or data is None  # DRF says why
        if not unset and (isinstance(data, bool) or not isinstance(data, (str, int))):
            self.fail("invalid")
        return super().run_validation(data)


class JSONBooleanField(serializers.BooleanField):
    """A JSON true or false, nothing else: DRF's BooleanField also takes
    "yes", "off", 1 and "0", which for a conversion is a guess."""

    default_error_messages = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class JSONNumberField(serializers.FloatField):
    """A JSON number, nothing else: DRF's FloatField also takes true (1.0)
    and numeric strings."""

    default_error_messages = {"invalid": "Must be a JSON number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}]})
class ClassLabelField(serializers.Field):
    """A class label: a JSON string or integer. The type is checked before
    anything walks the value (DRF's JSONField re-encodes it, which a
    1,000-deep list turns into a RecursionError, a 500)."""

    default_error_messages = {
        "invalid": "Must be a string or an integer.",
        "max_length": "Has at most {max_length} characters.",
    }
    MAX_LENGTH = 100

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        if len(str(data)) > self.MAX_LENGTH:
            self.fail("max_length", max_length=self.MAX_LENGTH)
        return data

    def to_representation(self, value):
        return value


class FeedbackRequestSerializer(serializers.Serializer):
    """The JSON types of feedback (and the reward's range, for the schema).
    The rules (a label among the version's classes, the reward's range
    again for callers without HTTP) live in monitoring.feedback."""

    request_id = RequestIdField(
        max_length=64, help_text="The request_id of the prediction."
    )
    converted = JSONBooleanField(required=False, allow_null=True)
    reward = JSONNumberField(
        required=False,
        allow_null=True,
        min_value=-feedback.REWARD_LIMIT,
        max_value=feedback.REWARD_LIMIT,
        help_text="A finite number, at most REWARD_LIMIT (1e9) either side of 0.",
    )
    true_label = ClassLabelField(
        required=False,
        allow_null=True,
        help_text="The true class of a one-row prediction: one of its "
        "version's classes, compared as text (the integer 1 and the "
        "string 1 are one class).",
    )

    def validate_reward(self, value):
        if value is not None and not math.isfinite(value):
            raise serializers.ValidationError("reward must be a finite number.")
        return value


class FeedbackResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["recorded", "updated", "unchanged"])
    request_id = serializers.CharField()
    converted = serializers.BooleanField(allow_null=True)
    reward = serializers.FloatField(allow_null=True)
    true_label = serializers.CharField(allow_null=True)
    correct = serializers.BooleanField(allow_null=True)
    model = serializers.CharField()
    model_version = serializers.CharField()
    experiment = serializers.CharField(allow_null=True)
    arm = serializers.CharField(allow_null=True)
