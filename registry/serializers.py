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
    input_dtype = serializers.CharField(
        help_text="The tensor type the model takes (V2 datatype: FP64, FP32)."
    )
    sklearn_version = serializers.CharField(
        help_text="The scikit-learn version the file was written with, when "
        "known (else the one that read it at registration)."
    )
    trusted_types = serializers.ListField(
        child=serializers.CharField(),
        help_text="Types beyond skops' defaults its skops form may build, "
        "accepted at registration (SKOPS_TRUSTED_TYPES for uploads).",
    )
    aliases = serializers.SerializerMethodField(
        help_text="The model's aliases that point at this version."
    )

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
            "aliases",
            "input_dtype",
            "sklearn_version",
            "trusted_types",
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

    def get_aliases(self, obj) -> list[str]:
        # The view passes every alias of the model in the context, so a
        # list of versions costs no query per version.
        by_version = self.context.get("aliases_by_version")
        if by_version is None:
            return sorted(obj.aliases.values_list("name", flat=True))
        return by_version.get(obj.version, [])


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


class ResolvedAliasSerializer(serializers.Serializer):
    alias = serializers.CharField()
    version = serializers.CharField()


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
    aliases = serializers.DictField(
        child=serializers.CharField(),
        help_text="Every alias of the model and the version it points at.",
    )
    resolved = ResolvedAliasSerializer(
        allow_null=True,
        help_text="With ?model=name@alias: the version the alias points at; else null.",
    )


class ActivationRequestSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=300)


class ActivationResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["activated", "rolled_back", "unchanged"])
    model = serializers.CharField()
    active_version = serializers.CharField()
    previous_version = serializers.CharField(allow_null=True)
    change = AliasChangeSerializer(allow_null=True)


class AliasSetRequestSerializer(serializers.Serializer):
    # Not trimmed: what the schema calls a non-empty string is looked up
    # as sent (an unknown one is a 404).
    version = serializers.CharField(
        min_length=1,
        max_length=64,
        trim_whitespace=False,
        help_text="The version the alias is to point at.",
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=300)


class AliasResponseSerializer(serializers.Serializer):
    model = serializers.CharField()
    alias = serializers.CharField()
    version = serializers.CharField(
        allow_null=True,
        help_text="The version the alias points at now; null once removed.",
    )
    previous_version = serializers.CharField(
        allow_null=True,
        help_text="The version it pointed at before the change; null when it "
        "is new or nothing changed.",
    )
    change = AliasChangeSerializer(
        allow_null=True, help_text="The recorded move; null when unchanged."
    )


def alias_body(change, *, model: str, alias: str, version: str | None) -> dict:
    """What setting or removing an alias answers with (HTTP and the alias
    command): `change` is the recorded AliasChange, None when nothing
    moved; `version` the alias's version now, None once removed."""
    return {
        "model": model,
        "alias": alias,
        "version": version,
        "previous_version": (change.from_label or None) if change else None,
        "change": AliasChangeSerializer(change).data if change else None,
    }
