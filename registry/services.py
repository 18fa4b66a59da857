"""Writes to the registry. Every write bumps the registry generation in the
same transaction (registry/generation.py), which is how serving processes
learn of it; the writing process's own catalog sees it at once."""

import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from django.db import transaction
from django.utils.dateparse import parse_datetime

from mlserving.conf import app_settings
from registry import artifacts, selectors
from registry.compile import Compiled, CompileRefused, onnx_compile
from registry.errors import (
    ArtifactError,
    ArtifactLoadError,
    ArtifactPathError,
    NoPreviousVersion,
    VersionExists,
    VersionUnavailable,
    unservable_error,
)
from registry.generation import registry_generation_bump
from registry.models import (
    AliasChange,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
)
from registry.runtimes import OnnxRuntime, SklearnRuntime, artifact_load
from registry.runtimes.base import Signature

logger = logging.getLogger("registry")


def actor_of(user, actor: str) -> str:
    """Who did it, for audit text: `actor` when given, else the user."""
    if actor:
        return actor
    if user is not None and getattr(user, "is_authenticated", False):
        return getattr(user, "username", "") or str(user)
    return "anonymous"


def real_user(user):
    """The auth user to store in a foreign key, or None (API clients)."""
    if user is not None and getattr(user, "pk", None) is not None:
        return user
    return None


def model_register(*, name: str, description: str = "") -> RegisteredModel:
    """The registered model called `name`, created if new."""
    with transaction.atomic():
        model, created = RegisteredModel.objects.get_or_create(
            name=name, defaults={"description": description}
        )
        if created:
            registry_generation_bump()
    return model


@dataclass(frozen=True)
class Inspection:
    sha256: str
    size_bytes: int
    model_type: str
    n_features: int | None
    feature_names: list
    classes: list
    # The ONNX form when it validated (registry/compile.py), and what
    # validation found or why there is none.
    compiled: Compiled | None = None
    compiled_detail: str = ""


def artifact_signature(*, data: bytes, runtime: str = "sklearn") -> Signature:
    """Load artifact bytes once to read what the model says about itself.
    ArtifactLoadError when they are not a loadable model."""
    return _loaded_signature(data)[0]


def _loaded_signature(data: bytes, *, compile_onnx: bool = False):
    """(signature, compiled or None, detail) of scikit-learn artifact bytes,
    loaded once."""
    loaded = SklearnRuntime(data)
    loaded.load()
    signature = loaded.signature()
    compiled, detail = None, ""
    if compile_onnx:
        try:
            compiled = onnx_compile(
                loaded.estimator,
                n_features=signature.n_features,
                digest=artifacts.sha256_hex(data),
            )
            detail = compiled.detail
        except CompileRefused as refused:
            detail = f"not compiled: {refused.reason}"
    loaded.unload()
    return signature, compiled, detail


def artifact_inspect(*, relative_path: str, compile_onnx: bool = True) -> Inspection:
    """Hash and load an artifact to learn its signature, and convert it to
    ONNX (kept only when it validates). Raises ArtifactError subclasses
    when the file is missing or not loadable."""
    path = artifacts.resolve(relative_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactLoadError(
            f"Artifact file {relative_path} cannot be read: {exc.strerror}.",
            details={"path": relative_path},
        ) from None
    try:
        signature, compiled, detail = _loaded_signature(data, compile_onnx=compile_onnx)
    except ArtifactError as exc:
        exc.details.setdefault("path", relative_path)
        exc.message = f"{relative_path}: {exc.message}"
        raise
    return Inspection(
        sha256=artifacts.sha256_hex(data),
        size_bytes=len(data),
        model_type=signature.model_type,
        n_features=signature.n_features,
        feature_names=signature.feature_names,
        classes=signature.classes,
        compiled=compiled,
        compiled_detail=detail,
    )


def _compiled_write(compiled: Compiled, *, model_name: str, version: str) -> str:
    """Store a compiled file at <root>/<model>/<version>/model.onnx (our own
    derived file: replaced if a refused registration left one); its path
    relative to the root."""
    relative = f"{model_name}/{version}/model.onnx"
    target = artifacts.resolve(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(compiled.payload)
    return relative


def _place_in_root(source: Path, *, model_name: str, version: str) -> str:
    """The artifact's path relative to the root; a file from outside the
    root is copied to <root>/<model>/<version>/<filename> first."""
    relative = artifacts.relative_to_root(source)
    if relative is not None:
        return relative
    target_dir = artifacts.artifacts_root() / model_name / version
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    if target.exists():
        raise ArtifactPathError(
            f"{target} already exists; refusing to overwrite an artifact.",
            details={"path": str(target)},
        )
    shutil.copyfile(source, target)
    return target.relative_to(artifacts.artifacts_root()).as_posix()


def _ensure_new(model_name: str, version: str) -> None:
    if ModelVersion.objects.filter(model__name=model_name, version=version).exists():
        raise VersionExists(
            f"Model {model_name!r} already has a version {version!r}.",
            details={"model": model_name, "version": version},
        )


def model_version_register(
    *,
    model_name: str,
    version: str,
    source: Path,
    metadata: dict | None = None,
    description: str = "",
    runtime: str = ModelVersion.Runtime.AUTO,
    user=None,
) -> ModelVersion:
    """Register the artifact at `source` as `model_name:version`.

    The file is confined to (or copied into) ARTIFACTS_ROOT, hashed and
    loaded once to record its signature. Raises VersionExists, or an
    ArtifactError subclass if the file is not servable.
    """
    metadata = dict(metadata or {})
    if not artifacts.VERSION_PATTERN.match(version):
        raise ArtifactPathError(
            f"Version {version!r} must be 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit.",
            details={"version": version},
        )
    source = Path(source)
    if not source.is_file():
        raise ArtifactLoadError(f"No file at {source}.", details={"path": str(source)})
    _ensure_new(model_name, version)
    copied = artifacts.relative_to_root(source) is None
    relative = _place_in_root(source, model_name=model_name, version=version)
    written = [relative] if copied else []
    try:
        inspection = artifact_inspect(relative_path=relative)
        compiled_path = ""
        if inspection.compiled is not None:
            compiled_path = _compiled_write(
                inspection.compiled, model_name=model_name, version=version
            )
            written.append(compiled_path)
        row = _version_create(
            model_name=model_name,
            version=version,
            relative=relative,
            inspection=inspection,
            compiled_path=compiled_path,
            metadata=metadata,
            description=description,
            runtime=runtime,
            user=user,
        )
    except Exception:
        for path in written:  # leave no unregistered file behind
            artifacts.resolve(path).unlink(missing_ok=True)
        raise
    logger.info(
        "registered %s:%s (%s; runtime %s, %s)",
        model_name,
        version,
        relative,
        row.serving_runtime,
        inspection.compiled_detail,
    )
    return row


def _version_create(
    *,
    model_name: str,
    version: str,
    relative: str,
    inspection: Inspection,
    compiled_path: str,
    metadata: dict,
    description: str,
    runtime: str,
    user,
) -> ModelVersion:
    metrics = {
        key: metadata[key]
        for key in ("accuracy", "f1", "precision", "recall", "roc_auc")
        if isinstance(metadata.get(key), (int, float))
    }
    metrics.update(metadata.get("metrics") or {})
    with transaction.atomic():
        model, _ = RegisteredModel.objects.get_or_create(
            name=model_name, defaults={"description": description}
        )
        _ensure_new(model_name, version)  # again: another writer may have won
        row = ModelVersion.objects.create(
            model=model,
            version=version,
            artifact_path=relative,
            format=ModelVersion.Format.JOBLIB,
            runtime=runtime,
            sha256=inspection.sha256,
            size_bytes=inspection.size_bytes,
            compiled_path=compiled_path,
            compiled_sha256=(
                artifacts.sha256_hex(inspection.compiled.payload)
                if inspection.compiled
                else ""
            ),
            compiled_size_bytes=(
                len(inspection.compiled.payload) if inspection.compiled else None
            ),
            compiled_detail=inspection.compiled_detail,
            model_type=str(metadata.get("model_type") or inspection.model_type),
            n_features=inspection.n_features,
            feature_names=inspection.feature_names,
            classes=inspection.classes,
            metrics=metrics,
            metadata=metadata,
            display_name=str(metadata.get("name") or ""),
            created_by=real_user(user),
        )
        created_at = metadata.get("created_at")
        if isinstance(created_at, str) and parse_datetime(created_at):
            # Keep the training time from the seed's metadata JSON.
            when = parse_datetime(created_at)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            ModelVersion.objects.filter(pk=row.pk).update(created_at=when)
            row.created_at = when
        registry_generation_bump()
    return row


def model_version_verify(*, version: ModelVersion) -> ModelVersion:
    """Check the artifact against its sha256 and that it loads; record the
    outcome in `status`; the compiled file too, when there is one.
    Returns the version (status updated)."""
    try:
        artifact_load(
            SklearnRuntime.name, version.artifact_path, version.sha256
        ).unload()
        if version.compiled_path:
            artifact_load(
                OnnxRuntime.name, version.compiled_path, version.compiled_sha256
            ).unload()
    except ArtifactError as exc:
        status, detail = _status_for(exc), exc.message
    else:
        status, detail = ModelVersion.Status.READY, ""
    if version.status == ModelVersion.Status.ARCHIVED and not detail:
        return version
    return model_version_mark(version=version, status=status, detail=detail)


def model_version_compile(
    *, version: ModelVersion, force: bool = False
) -> ModelVersion:
    """Convert an already registered version to ONNX (versions registered
    before the compiled runtime existed, or again with `force`). The joblib
    file is verified against its sha256 first; the outcome is recorded
    like at registration."""
    if version.compiled_path and not force:
        return version
    data = artifacts.read_verified(version.artifact_path, version.sha256)
    _, compiled, detail = _loaded_signature(data, compile_onnx=True)
    path = sha = ""
    size = None
    if compiled is not None:
        path = _compiled_write(
            compiled, model_name=version.model.name, version=version.version
        )
        sha, size = artifacts.sha256_hex(compiled.payload), len(compiled.payload)
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(
            compiled_path=path,
            compiled_sha256=sha,
            compiled_size_bytes=size,
            compiled_detail=detail,
        )
        registry_generation_bump()
    version.compiled_path, version.compiled_sha256 = path, sha
    version.compiled_size_bytes, version.compiled_detail = size, detail
    logger.info("%s compiled: %s", version, detail)
    return version


def model_version_runtime_set(
    *, version: ModelVersion, runtime: str, user=None
) -> ModelVersion:
    """Choose the runtime of a version ("auto", "sklearn" or "onnx"); every
    serving process follows within one registry poll."""
    if runtime not in ModelVersion.Runtime.values:
        raise ValueError(f"unknown runtime {runtime!r}")
    if version.runtime == runtime:
        return version
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(runtime=runtime)
        registry_generation_bump()
    version.runtime = runtime
    logger.info(
        "%s runtime set to %s by %s (serves with %s)",
        version,
        runtime,
        actor_of(user, ""),
        version.serving_runtime,
    )
    return version


def model_version_mark(
    *, version: ModelVersion, status: str, detail: str = ""
) -> ModelVersion:
    """Set a version's status (a no-op when nothing changes)."""
    if version.status == status and version.status_detail == detail:
        return version
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(
            status=status, status_detail=detail
        )
        registry_generation_bump()
    version.status, version.status_detail = status, detail
    if status != ModelVersion.Status.READY:
        logger.error("%s marked %s: %s", version, status, detail)
    return version


def _status_for(error: ArtifactError) -> str:
    """A file that loads but is no model is a load failure; a changed,
    missing or misplaced file is an integrity failure."""
    if isinstance(error, ArtifactLoadError):
        return ModelVersion.Status.LOAD_FAILED
    return ModelVersion.Status.INTEGRITY_FAILED


def model_version_mark_failed_by_id(*, version_id: int, error: ArtifactError):
    """Record that a serving process could not load a version."""
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is not None:
        model_version_mark(
            version=version, status=_status_for(error), detail=error.message
        )


def _move_alias(
    *,
    model: RegisteredModel,
    version: ModelVersion,
    action: str,
    user,
    actor: str,
    note: str,
) -> AliasChange | None:
    alias_name = app_settings.ALIAS
    with transaction.atomic():
        # Lock the model row so two activations of one model serialize.
        RegisteredModel.objects.select_for_update().get(pk=model.pk)
        alias = (
            ModelAlias.objects.select_related("version")
            .filter(model=model, name=alias_name)
            .first()
        )
        previous = alias.version if alias else None
        if previous is not None and previous.pk == version.pk:
            return None
        if alias is None:
            ModelAlias.objects.create(model=model, name=alias_name, version=version)
        else:
            alias.version = version
            alias.save(update_fields=["version", "updated_at"])
        change = AliasChange.objects.create(
            model=model,
            alias=alias_name,
            from_version=previous,
            to_version=version,
            from_label=previous.version if previous else "",
            to_label=version.version,
            action=action,
            changed_by=real_user(user),
            actor=actor_of(user, actor),
            note=note[:300],
        )
        registry_generation_bump()
    logger.info(
        "%s@%s: %s -> %s (%s by %s)",
        model.name,
        alias_name,
        change.from_label or "-",
        change.to_label,
        action,
        change.actor,
    )
    return change


def _ensure_servable(version: ModelVersion) -> None:
    if version.status == ModelVersion.Status.ARCHIVED:
        raise VersionUnavailable(
            f"{version} is archived; restore it before activating.",
            details={"version": version.version},
        )
    model_version_verify(version=version)
    if version.status != ModelVersion.Status.READY:
        raise unservable_error(
            label=str(version),
            version=version.version,
            status=version.status,
            detail=version.status_detail,
            path=version.artifact_path,
        )


def model_version_activate(
    *, version: ModelVersion, user=None, actor: str = "", note: str = ""
) -> AliasChange | None:
    """Point the model's alias at `version` after checking its artifact.

    Returns the recorded change, or None when it was already active. On an
    integrity or load failure nothing moves: the version is marked and
    ArtifactIntegrityError / ArtifactLoadError is raised.
    """
    _ensure_servable(version)
    return _move_alias(
        model=version.model,
        version=version,
        action=AliasChange.Action.ACTIVATE,
        user=user,
        actor=actor,
        note=note,
    )


def model_rollback(
    *, model: RegisteredModel, user=None, actor: str = "", note: str = ""
) -> AliasChange:
    """Return the alias to the version it held before the last activation
    (skipping versions that can no longer be served). NoPreviousVersion
    when there is none."""
    while True:
        target = selectors.rollback_target(model=model)
        if target is None:
            raise NoPreviousVersion(
                f"Model {model.name!r} has no earlier version to roll back to.",
                details={"model": model.name},
            )
        try:
            _ensure_servable(target)
        except ArtifactError:
            continue  # marked now; the next pass skips it
        return _move_alias(
            model=model,
            version=target,
            action=AliasChange.Action.ROLLBACK,
            user=user,
            actor=actor,
            note=note,
        )


@dataclass
class SyncReport:
    registered: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    activated: str | None = None


def artifacts_sync(*, model_name: str | None = None) -> SyncReport:
    """Register artifacts found in the seed's convention
    (artifacts/model_<version>.pkl + metadata JSON) under the default
    model, and activate DEFAULT_MODEL_VERSION if nothing is active yet.

    A file whose registered version exists with another sha256 is reported
    as changed, never silently re-registered: that is what the integrity
    check exists for."""
    model_name = model_name or app_settings.DEFAULT_MODEL_NAME or "default"
    report = SyncReport()
    model = RegisteredModel.objects.filter(name=model_name).first()
    for found in artifacts.discover():
        label = f"{model_name}:{found.version}"
        if found.metadata_error:
            report.failed.append(f"{label}: metadata {found.metadata_error}")
            continue
        existing = (
            model.versions.filter(version=found.version).first() if model else None
        )
        if existing is not None:
            relative = artifacts.relative_to_root(found.path)
            if existing.artifact_path == relative:
                digest = artifacts.file_sha256(found.path)
                if digest == existing.sha256:
                    report.unchanged.append(label)
                else:
                    report.changed.append(label)
            else:
                report.unchanged.append(label)
            continue
        try:
            model_version_register(
                model_name=model_name,
                version=found.version,
                source=found.path,
                metadata=found.metadata,
            )
        except (ArtifactError, VersionExists) as exc:
            report.failed.append(f"{label}: {exc.message}")
            continue
        report.registered.append(label)
        model = RegisteredModel.objects.get(name=model_name)
    if model is not None and selectors.model_version_get_active(model=model) is None:
        wanted = app_settings.DEFAULT_MODEL_VERSION
        version = model.versions.filter(version=wanted).first() if wanted else None
        if version is None:
            version = model.versions.order_by("created_at", "id").first()
        if version is not None:
            try:
                model_version_activate(
                    version=version,
                    actor="sync_artifacts",
                    note="initial activation (DEFAULT_MODEL_VERSION)",
                )
                report.activated = version.version
            except ArtifactError as exc:
                report.failed.append(f"activate {version}: {exc.message}")
    return report


def artifacts_verify() -> list[tuple[str, str, str]]:
    """Verify every non-archived version (status updated either way, so a
    restored file is served again). [(label, status, detail)]."""
    report = []
    versions = ModelVersion.objects.exclude(
        status=ModelVersion.Status.ARCHIVED
    ).select_related("model")
    for version in versions:
        model_version_verify(version=version)
        report.append((str(version), version.status, version.status_detail))
    return report
