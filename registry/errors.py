"""Registry and prediction errors: each a stable code and an HTTP status."""

from mlserving.errors import (
    ApplicationError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)


class ModelNotFound(NotFound):
    code = "model_not_found"


class ModelVersionNotFound(NotFound):
    code = "model_version_not_found"


class NoActiveVersion(Conflict):
    code = "no_active_version"


class NoPreviousVersion(Conflict):
    code = "no_previous_version"


class VersionExists(Conflict):
    code = "version_exists"


class VersionUnavailable(Conflict):
    code = "version_unavailable"


class ArtifactError(ApplicationError):
    """An artifact that cannot be served; the message names the file."""

    status_code = 422
    code = "artifact_error"


class ArtifactIntegrityError(ArtifactError):
    code = "artifact_integrity_error"


class ArtifactMissing(ArtifactError):
    code = "artifact_missing"


class ArtifactLoadError(ArtifactError):
    code = "artifact_load_failed"


class ArtifactPathError(ArtifactError):
    code = "artifact_path_invalid"


class InvalidFeatures(ValidationFailed):
    code = "invalid_features"


class FeatureCountMismatch(ValidationFailed):
    code = "feature_count_mismatch"


class TooManyRows(PayloadTooLarge):
    code = "too_many_rows"
