"""Response shapes of /health and /metrics, for the OpenAPI schema."""

from rest_framework import serializers


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
    timestamp = serializers.FloatField()
    uptime_seconds = serializers.FloatField()
    pid = serializers.IntegerField()
    database = serializers.DictField()
    redis = serializers.DictField(
        help_text="Reported only: predictions never need Redis."
    )
    default_model = serializers.CharField(allow_null=True)
    active_version = serializers.CharField(allow_null=True)
    models = serializers.DictField()
    models_loaded = serializers.ListField(child=serializers.CharField())
    problems = serializers.ListField(child=serializers.CharField())


class VersionMetricsSerializer(serializers.Serializer):
    model = serializers.CharField()
    model_version = serializers.CharField()
    predictions = serializers.IntegerField()
    avg_processing_time_ms = serializers.FloatField()
    avg_confidence = serializers.FloatField(allow_null=True)
    share = serializers.FloatField()


class MetricsSerializer(serializers.Serializer):
    scope = serializers.CharField(
        help_text="'process': counters of the server process that answered."
    )
    pid = serializers.IntegerField()
    since = serializers.FloatField()
    uptime_seconds = serializers.FloatField()
    total_requests = serializers.IntegerField()
    successful_predictions = serializers.IntegerField()
    failed_predictions = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    rows_predicted = serializers.IntegerField()
    cache_hits = serializers.IntegerField()
    avg_processing_time_ms = serializers.FloatField(allow_null=True)
    max_processing_time_ms = serializers.FloatField()
    avg_confidence = serializers.FloatField(allow_null=True)
    errors_by_code = serializers.DictField(child=serializers.IntegerField())
    by_version = VersionMetricsSerializer(many=True)
    models_loaded = serializers.ListField(child=serializers.CharField())
    system = serializers.DictField()
