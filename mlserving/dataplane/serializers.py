"""The /predict request and response, for the OpenAPI schema only: the
hot path decodes and encodes with mlserving.dataplane.codecs."""

from drf_spectacular.utils import (
    PolymorphicProxySerializer,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers

_NUMBERS = {"type": "array", "items": {"type": "number"}, "minItems": 1}
_NAMED_ROW = {
    "type": "object",
    "additionalProperties": {"type": "number"},
    "minProperties": 1,
    "description": "A row keyed by the version's feature names.",
}


@extend_schema_field(
    {
        "oneOf": [
            _NUMBERS,
            {"type": "array", "items": _NUMBERS, "minItems": 1},
            _NAMED_ROW,
            {"type": "array", "items": _NAMED_ROW, "minItems": 1},
        ]
    }
)
class FeaturesField(serializers.JSONField):
    """One row (numbers, or an object keyed by feature name) or a batch
    of such rows."""


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": 200},
            {"type": "integer"},
        ]
    }
)
class SubjectField(serializers.JSONField):
    """A string or an integer."""


# "PredictRequest" in the schema (request components get the suffix).
@extend_schema_serializer(component_name="Predict")
class PredictRequestSerializer(serializers.Serializer):
    features = FeaturesField(
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
        max_length=100,
        help_text="Serve with this version instead of the active one.",
    )
    use_ab_testing = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=True,
        help_text="Let a running experiment choose the version (default).",
    )
    model = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text="Registered model name, or name@alias for the version "
        "an alias points at; defaults to DEFAULT_MODEL_NAME.",
    )
    user_id = SubjectField(
        required=False,
        help_text="Who the request is about (1-200 characters): logged with "
        "the prediction; a hash-based experiment assigns the arm by it.",
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
    error = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="fallback: why the wanted version could not serve.",
    )
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


class PredictMetaSerializer(serializers.Serializer):
    """The fields every /predict answer has, after the row result."""

    model = serializers.CharField()
    model_version = serializers.CharField()
    request_id = serializers.CharField()
    processing_time_ms = serializers.FloatField()
    routing = RoutingSerializer()
    cached = serializers.BooleanField(
        help_text="Answered from the process's prediction cache."
    )


class PredictRowResponseSerializer(RowPredictionSerializer, PredictMetaSerializer):
    """The answer to one row ("features": [0.1, ...] or one object)."""


class PredictBatchResponseSerializer(PredictMetaSerializer):
    """The answer to a batch ("features": a list of rows)."""

    predictions = RowPredictionSerializer(
        many=True, help_text="One result per row, in the order sent."
    )


# The 200 answer of /predict: oneOf the one-row and the batch shape (no
# discriminator: "prediction" or "predictions" tells them apart).
PredictResponseSerializer = PolymorphicProxySerializer(
    component_name="PredictResponse",
    serializers=[PredictRowResponseSerializer, PredictBatchResponseSerializer],
    resource_type_field_name=None,
)
