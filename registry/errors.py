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

    @classmethod
    def named(cls, name: str) -> "ModelNotFound":
        return cls(f"No registered model named {name!r}.", details={"model": name})

    @classmethod
    def no_default(cls, registered: list[str]) -> "ModelNotFound":
        return cls(
            "No default model: register one (manage.py bootstrap_demo), or "
            'name one with "model" (?model= on /models) or DEFAULT_MODEL_NAME.',
            details={"registered": sorted(registered)},
        )


class ModelVersionNotFound(NotFound):
    code = "model_version_not_found"

    @classmethod
    def of(cls, model: str, version: str, available=None) -> "ModelVersionNotFound":
        details = {"model": model, "version": version}
        if available is not None:
            details["available"] = sorted(available)
        return cls(f"No version {version!r} of model {model!r}.", details=details)


class AliasNotFound(NotFound):
    code = "alias_not_found"

    @classmethod
    def of(cls, model: str, alias: str, available=None) -> "AliasNotFound":
        details = {"model": model, "alias": alias}
        if available is not None:
            details["available"] = sorted(available)
        return cls(f"Model {model!r} has no alias {alias!r}.", details=details)


class AliasInvalid(ValidationFailed):
    code = "alias_invalid"


class AliasProtected(Conflict):
    code = "alias_protected"


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


def unservable_error(
    *, label: str, version: str, status: str, detail: str, path: str
) -> ArtifactError:
    """The error for a version whose status says it cannot be served."""
    cls = ArtifactLoadError if status == "load_failed" else ArtifactIntegrityError
    return cls(
        f"{label} cannot be served ({status}): {detail}",
        details={"version": version, "status": status, "path": path},
    )


class InvalidFeatures(ValidationFailed):
    code = "invalid_features"


class FeatureCountMismatch(ValidationFailed):
    code = "feature_count_mismatch"


class FeatureNamesMismatch(ValidationFailed):
    code = "feature_names_mismatch"


class TooManyRows(PayloadTooLarge):
    code = "too_many_rows"
