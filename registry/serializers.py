"""Serializers of the registry endpoints (documentation and responses)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.models import AliasChange, ModelVersion


class CompiledSerializer(serializers.Serializer):
    available = serializers.BooleanField(
        help_text="An ONNX file that validated exists for this version."
    )
    detail = serializers.CharField(
        help_text="What validation found, or why the version stays on scikit-learn."
    )
    path = serializers.CharField(allow_null=True)
    sha256 = serializers.CharField(allow_null=True)
    size_bytes = serializers.IntegerField(allow_null=True)


class ModelVersionSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="display_name")
    accuracy = serializers.FloatField(allow_null=True)
    is_active = serializers.BooleanField(read_only=True)
    loaded = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    runtime = serializers.CharField(
        help_text="The version's runtime choice: auto (the MODEL_RUNTIME "
        "setting), sklearn or onnx."
    )
    serving_runtime = serializers.CharField(
        read_only=True,
        help_text="The runtime that serves it: onnx only when its ONNX "
        "conversion validated at registration.",
    )
    compiled = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "version",
            "name",
            "is_active",
            "loaded",
            "status",
            "status_detail",
            "accuracy",
            "metrics",
            "model_type",
            "runtime",
            "serving_runtime",
            "compiled",
            "format",
            "n_features",
            "feature_names",
            "classes",
            "artifact_path",
            "sha256",
            "size_bytes",
            "created_at",
            "created_by",
            "metadata",
        ]

    def get_loaded(self, obj) -> bool:
        return obj.pk in self.context.get("loaded_ids", set())

    @extend_schema_field(CompiledSerializer(allow_null=True))
    def get_compiled(self, obj) -> dict | None:
        return {
            "available": bool(obj.compiled_path),
            "detail": obj.compiled_detail,
            "path": obj.compiled_path or None,
            "sha256": obj.compiled_sha256 or None,
            "size_bytes": obj.compiled_size_bytes,
        }

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by else None


class AliasChangeSerializer(serializers.ModelSerializer):
    from_version = serializers.CharField(source="from_label")
    to_version = serializers.CharField(source="to_label")

    class Meta:
        model = AliasChange
        fields = [
            "alias",
            "action",
            "from_version",
            "to_version",
            "actor",
            "changed_at",
            "note",
        ]


class ModelsResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    registered_models = serializers.ListField(child=serializers.CharField())
    alias = serializers.CharField()
    active_version = serializers.CharField(allow_null=True)
    loaded_versions = serializers.ListField(
        child=serializers.CharField(),
        help_text="Versions loaded in the memory of the process that answered.",
    )
    pid = serializers.IntegerField()
    models = ModelVersionSerializer(many=True)
    history = AliasChangeSerializer(many=True)


class ActivationRequestSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, max_length=300)


class ActivationResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["activated", "rolled_back", "unchanged"])
    model = serializers.CharField()
    active_version = serializers.CharField()
    previous_version = serializers.CharField(allow_null=True)
    change = AliasChangeSerializer(allow_null=True)
