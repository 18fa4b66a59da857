"""The /predict request and response, for the OpenAPI schema only: the
hot path decodes and encodes with mlserving.dataplane.codecs."""

from rest_framework import serializers


class PredictRequestSerializer(serializers.Serializer):
    features = serializers.JSONField(
        help_text=(
            "One row as a list of numbers, e.g. [0.1, 0.2, ...], or a batch "
            "as a list of rows (at most MAX_BATCH_ROWS). A row may also be "
            'an object keyed by the version\'s feature names, {"x0": 0.1, '
            "...}, in any order (422 feature_names_mismatch naming a missing "
            "or unknown name)."
        )
    )
    model_version = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Serve with this version instead of the active one.",
    )
    use_ab_testing = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Let a running experiment choose the version (default).",
    )
    model = serializers.CharField(
        required=False,
        help_text="Registered model name, or name@alias for the version "
        "an alias points at; defaults to DEFAULT_MODEL_NAME.",
    )


class RoutingSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=["alias", "explicit", "fallback", "experiment"],
        help_text=(
            "alias: the active version (or the alias named with "
            "model@alias); explicit: model_version was given; "
            "fallback: the active version's artifact failed to load and an "
            "earlier version served; experiment: the model's running "
            "experiment chose the arm."
        ),
    )
    alias = serializers.CharField(required=False)
    wanted = serializers.CharField(required=False)
    error = serializers.CharField(required=False)
    experiment = serializers.CharField(required=False)
    strategy = serializers.ChoiceField(
        choices=["random", "hash-based", "weighted"], required=False
    )
    arm = serializers.CharField(
        required=False, help_text="The arm (version) that answered."
    )
    subject = serializers.CharField(
        required=False,
        help_text="hash-based: where the subject key came from (the body "
        "field's name, header, or request_id).",
    )
    share = serializers.FloatField(
        required=False, help_text="weighted: the arm's current allocation."
    )
    paused_arm = serializers.CharField(
        required=False,
        help_text="hash-based: the subject's arm is paused; the control answered.",
    )
    fallback_from = serializers.CharField(
        required=False,
        help_text="The chosen arm could not be loaded; the control answered.",
    )


class RowPredictionSerializer(serializers.Serializer):
    prediction = serializers.JSONField(help_text="The predicted label.")
    probabilities = serializers.DictField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Probability per class label.",
    )
    confidence = serializers.FloatField(
        allow_null=True, help_text="The highest class probability."
    )


class PredictResponseSerializer(RowPredictionSerializer):
    predictions = RowPredictionSerializer(
        many=True,
        required=False,
        help_text=(
            "Only for a batch request: one result per row (the row fields "
            "above are then absent)."
        ),
    )
    model = serializers.CharField()
    model_version = serializers.CharField()
    request_id = serializers.CharField()
    processing_time_ms = serializers.FloatField()
    routing = RoutingSerializer()
    cached = serializers.BooleanField()
