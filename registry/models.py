"""The model registry: models, their versions, aliases and alias history.

The database decides which version is active; each process keeps only a
cache of it (registry/catalog.py) that it refreshes when the registry's
generation number moves.
"""

from django.conf import settings
from django.db import models


class RegisteredModel(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        READY = "ready", "Ready"
        INTEGRITY_FAILED = "integrity_failed", "Integrity check failed"
        LOAD_FAILED = "load_failed", "Load failed"
        ARCHIVED = "archived", "Archived"

    class Format(models.TextChoices):
        JOBLIB = "joblib", "joblib"
        PICKLE = "pickle", "pickle"
        SKOPS = "skops", "skops"
        ONNX = "onnx", "ONNX"

    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.CharField(max_length=64)
    # Relative to ARTIFACTS_ROOT; registry.artifacts refuses anything that
    # resolves outside it.
    artifact_path = models.CharField(max_length=500)
    format = models.CharField(
        max_length=16, choices=Format.choices, default=Format.JOBLIB
    )

    class Runtime(models.TextChoices):
        AUTO = "auto", "auto (MODEL_RUNTIME setting)"
        SKLEARN = "sklearn", "scikit-learn"
        ONNX = "onnx", "ONNX Runtime (when compiled)"

    # Which runtime serves this version: "auto" follows MODEL_RUNTIME;
    # ONNX Runtime only ever serves a compiled, validated file.
    runtime = models.CharField(
        max_length=32, choices=Runtime.choices, default=Runtime.AUTO
    )
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    # The ONNX conversion made at registration (registry/compile.py): its
    # file and digest when it validated; the detail says what validation
    # found, or why the version stays on scikit-learn.
    compiled_path = models.CharField(max_length=500, blank=True)
    compiled_sha256 = models.CharField(max_length=64, blank=True)
    compiled_size_bytes = models.BigIntegerField(null=True, blank=True)
    compiled_detail = models.TextField(blank=True)
    # The form scikit-learn serves from: a skops file, never a pickle
    # (registry/formats.py). A skops upload is its own; a joblib file
    # registered from the server's disk is converted once, by the command
    # that registers it. `trusted_types` are the types outside skops'
    # defaults that loading it needs, accepted at registration
    # (SKOPS_TRUSTED_TYPES for uploads; the operator's own file otherwise).
    skops_path = models.CharField(max_length=500, blank=True)
    skops_sha256 = models.CharField(max_length=64, blank=True)
    trusted_types = models.JSONField(default=list, blank=True)
    # The signature beside n_features, feature_names and classes: the
    # tensor type the model takes (V2 datatype) and the scikit-learn
    # version the file came from, when known.
    input_dtype = models.CharField(max_length=8, default="FP64")
    sklearn_version = models.CharField(max_length=32, blank=True)
    model_type = models.CharField(max_length=200, blank=True)
    n_features = models.PositiveIntegerField(null=True, blank=True)
    feature_names = models.JSONField(default=list, blank=True)
    classes = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    display_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=32, choices=Status.choices, default=Status.READY
    )
    status_detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["model__name", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "version"], name="unique_version_per_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model.name}:{self.version}"

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def serving_runtime(self) -> str:
        """The runtime that serves it now (MODEL_RUNTIME applied)."""
        from registry.runtimes import runtime_for

        return runtime_for(
            self.runtime,
            compiled=bool(self.compiled_path),
            sklearn=self.format != self.Format.ONNX,
        )


class ModelAlias(models.Model):
    """A named pointer (e.g. `production`) to one version of a model."""

    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="aliases"
    )
    name = models.SlugField(max_length=50)
    # PROTECT: the version an alias points at cannot be deleted.
    version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="aliases"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model", "name"], name="unique_alias_per_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name} -> {self.version.version}"


class AliasChange(models.Model):
    """One move of an alias: the history that rollback walks back."""

    class Action(models.TextChoices):
        ACTIVATE = "activate", "Activate"
        ROLLBACK = "rollback", "Roll back"
        # Aliases other than the default one (champion, challenger, ...)
        SET = "set", "Set alias"
        REMOVE = "remove", "Remove alias"

    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="alias_changes"
    )
    alias = models.SlugField(max_length=50)
    from_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    to_version = models.ForeignKey(
        ModelVersion,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text too, so history survives deleting an old version.
    from_label = models.CharField(max_length=64, blank=True)
    to_label = models.CharField(max_length=64, blank=True)  # "" when removed
    action = models.CharField(max_length=16, choices=Action.choices)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor = models.CharField(max_length=150, blank=True)
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return (
            f"{self.model.name}@{self.alias}: {self.from_label or '-'} -> "
            f"{self.to_label}"
        )


class RegistryState(models.Model):
    """A single row whose generation moves on every registry write.

    Serving processes compare it, at most every REGISTRY_POLL_INTERVAL, with
    the generation of their in-memory catalog; that is how an activation in
    one process reaches all of them without a query per request.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    generation = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"registry generation {self.generation}"


class ArtifactObject(models.Model):
    """One artifact's bytes in the shared store (registry/store.py),
    addressed by their sha256: written once at registration, read by any
    host that lacks the file. The bytes are in ArtifactChunk rows of
    ARTIFACT_STORE_CHUNK_BYTES each, so no row, and no allocation, is the
    size of a whole model."""

    sha256 = models.CharField(max_length=64, unique=True)
    size_bytes = models.BigIntegerField()
    chunk_bytes = models.PositiveIntegerField()
    chunk_count = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sha256[:12]} ({self.size_bytes} bytes)"


class ArtifactChunk(models.Model):
    artifact = models.ForeignKey(
        ArtifactObject, on_delete=models.CASCADE, related_name="chunks"
    )
    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["artifact", "index"], name="unique_chunk_per_artifact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.artifact.sha256[:12]} chunk {self.index}"
