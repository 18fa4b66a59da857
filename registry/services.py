"""Writes to the registry. Every write bumps the registry generation in the
same transaction (registry/generation.py), which is how serving processes
learn of it; the writing process's own catalog sees it at once."""

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path

import numpy as np
import skops.io
from django.db import DatabaseError, transaction
from django.utils.dateparse import parse_datetime

from mlserving.conf import app_settings
from registry import artifacts, formats, selectors, store
from registry.compile import (
    Compiled,
    CompileRefused,
    onnx_compile,
    validation_sample,
)
from registry.errors import (
    AliasInvalid,
    AliasNotFound,
    AliasProtected,
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactLoadError,
    ArtifactMissing,
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
from registry.runtimes.sklearn import unpickle_from_disk

logger = logging.getLogger("registry")

ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")


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


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")

# Where an artifact's bytes came from: the server's own disk (an
# operator's command) or an upload (the admin, the API).
DISK, UPLOAD = "disk", "upload"


def names_check(*, model_name: str, version: str) -> None:
    """ArtifactPathError unless both are plain names: they become folder
    names under the artifacts root, so no '/', '..' or absolute path."""
    if not isinstance(model_name, str) or not NAME_PATTERN.match(model_name):
        raise ArtifactPathError(
            f"Model name {model_name!r} must be 1-100 letters, digits, '_' or "
            "'-', starting with a letter or digit.",
            details={"model": model_name},
        )
    if not isinstance(version, str) or not artifacts.VERSION_PATTERN.match(version):
        raise ArtifactPathError(
            f"Version {version!r} must be 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit.",
            details={"version": version},
        )
    if version in (".", "..") or ".." in version:
        raise ArtifactPathError(
            f"Version {version!r} must not contain '..'.",
            details={"version": version},
        )


@dataclass
class Prepared:
    """An artifact understood in memory, before any file is written: its
    format, signature, and the forms that will serve it."""

    data: bytes
    format: str  # ModelVersion.Format
    signature: Signature
    # The skops form scikit-learn serves from: the artifact itself (skops
    # upload), written from a pickle on the server's disk, or None (ONNX).
    skops_payload: bytes | None
    trusted_types: list
    compiled: Compiled | None = None
    compiled_detail: str = ""

    @property
    def sha256(self) -> str:
        return artifacts.sha256_hex(self.data)


def _signature_with_metadata(signature: Signature, metadata: dict) -> Signature:
    """Feature names from the metadata JSON when the model has none (a
    model fitted on a plain array)."""
    names = metadata.get("feature_names")
    if (
        not signature.feature_names
        and isinstance(names, list)
        and all(isinstance(n, str) for n in names)
        and len(set(names)) == len(names)
        and (signature.n_features is None or len(names) == signature.n_features)
    ):
        return replace(signature, feature_names=list(names))
    return signature


def _skops_form(estimator, signature: Signature) -> tuple[bytes, list]:
    """The estimator written as skops, the types loading it needs, checked
    to answer exactly as the original on the compile validation rows.
    ArtifactLoadError when it cannot be stored so."""
    try:
        payload = skops.io.dumps(estimator)
        trusted = sorted(skops.io.get_untrusted_types(data=payload))
        copy = skops.io.loads(payload, trusted=trusted)
    except Exception as exc:  # skops refuses what it cannot represent
        raise ArtifactLoadError(
            "The model cannot be stored as skops, the only form scikit-learn "
            f"versions serve from ({type(exc).__name__}: {str(exc)[:200]}).",
        ) from None
    if signature.n_features:
        rows = validation_sample(estimator, signature.n_features)[:256]
        try:
            original = SklearnRuntime.from_estimator(estimator).infer(rows)
        except Exception:  # the model's own failure is its own business
            return payload, trusted
        stored = SklearnRuntime.from_estimator(copy).infer(rows)
        same = np.array_equal(original[0], stored[0]) and (
            (original[1] is None and stored[1] is None)
            or np.array_equal(original[1], stored[1], equal_nan=True)
        )
        if not same:
            raise ArtifactLoadError(
                "The model's skops copy answers differently from the original; "
                "it cannot be served safely."
            )
    return payload, trusted


def _prepare(data: bytes, *, origin: str, metadata: dict) -> Prepared:
    """Recognize and inspect artifact bytes (registry/formats.py). A pickle
    is unpickled only from the server's disk while ALLOW_PICKLE is on;
    uploads may be skops (types in SKOPS_TRUSTED_TYPES) or ONNX.
    UploadRefused, UntrustedTypes, PayloadTooLarge, ArtifactLoadError."""
    kind = formats.sniff(data)
    if kind == formats.PICKLE:
        if origin != DISK:
            formats.upload_inspect(
                data,
                trusted=app_settings.SKOPS_TRUSTED_TYPES,
                max_bytes=app_settings.UPLOAD_MAX_BYTES,
            )  # raises: pickles are refused by upload
        if not app_settings.ALLOW_PICKLE:
            raise formats.UploadRefused(
                "joblib/pickle files are refused while ALLOW_PICKLE is off; "
                "register a skops or ONNX file.",
                details={"format": "pickle"},
            )
        estimator, trained_with = unpickle_from_disk(data)
        loaded = SklearnRuntime.from_estimator(estimator)
        signature = loaded.signature()
        if trained_with:
            signature = replace(signature, sklearn_version=trained_with)
        payload, trusted = _skops_form(estimator, signature)
        prepared = Prepared(
            data, ModelVersion.Format.JOBLIB, signature, payload, trusted
        )
    else:
        inspected, estimator = formats.upload_inspect(
            data,
            trusted=app_settings.SKOPS_TRUSTED_TYPES,
            max_bytes=(
                app_settings.UPLOAD_MAX_BYTES
                if origin == UPLOAD
                else max(app_settings.UPLOAD_MAX_BYTES, len(data))
            ),
            max_unpacked_bytes=app_settings.ARTIFACT_MAX_UNPACKED_BYTES,
        )
        signature = replace(
            inspected.signature,
            input_dtype=inspected.input_dtype,
            sklearn_version=inspected.sklearn_version,
        )
        if inspected.format == formats.ONNX:
            prepared = Prepared(data, ModelVersion.Format.ONNX, signature, None, [])
        else:
            prepared = Prepared(
                data,
                ModelVersion.Format.SKOPS,
                signature,
                data,
                list(inspected.untrusted_types),
            )
    prepared.signature = _signature_with_metadata(prepared.signature, metadata)
    if prepared.skops_payload is not None:
        try:
            prepared.compiled = onnx_compile(
                estimator,
                n_features=prepared.signature.n_features,
                digest=prepared.sha256,
            )
            prepared.compiled_detail = prepared.compiled.detail
        except CompileRefused as refused:
            prepared.compiled_detail = f"not compiled: {refused.reason}"
    else:
        prepared.compiled_detail = "uploaded as ONNX; served by ONNX Runtime"
    return prepared


def artifact_upload_check(*, data: bytes) -> Prepared:
    """What registering uploaded bytes would find, without writing
    anything: the admin form's check. Never unpickles."""
    return _prepare(data, origin=UPLOAD, metadata={})


def artifact_signature(*, data: bytes, runtime: str = "sklearn") -> Signature:
    """The signature of artifact bytes from the server's disk (a pickle is
    unpickled: never call it with uploaded bytes)."""
    return _prepare(data, origin=DISK, metadata={}).signature


def _write_new(relative: str, payload: bytes) -> str:
    """Write `payload` at `relative` under the root (refusing to replace an
    existing file); the path."""
    target = artifacts.resolve(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "xb") as handle:
            handle.write(payload)
    except FileExistsError:
        raise ArtifactPathError(
            f"{relative} already exists in the artifacts root; refusing to "
            "overwrite an artifact.",
            details={"path": relative},
        ) from None
    return relative


def _derived_write(relative: str, payload: bytes) -> str:
    """Write one of our own derived files (replaced if a refused
    registration left one)."""
    target = artifacts.resolve(relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(payload)
    return relative


def _ensure_new(model_name: str, version: str) -> None:
    if ModelVersion.objects.filter(model__name=model_name, version=version).exists():
        raise VersionExists(
            f"Model {model_name!r} already has a version {version!r}.",
            details={"model": model_name, "version": version},
        )


_EXTENSIONS = {
    ModelVersion.Format.JOBLIB: "joblib",
    ModelVersion.Format.SKOPS: "skops",
    ModelVersion.Format.ONNX: "onnx",
}


_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _file_name(name: str | None, prepared: Prepared) -> str:
    """The stored file's name: the given one when it is a plain file name
    (no folder, no '..'), else model.<format>."""
    if name and _FILE_NAME.match(name) and ".." not in name:
        return name
    return f"model.{_EXTENSIONS[prepared.format]}"


def model_version_register(
    *,
    model_name: str,
    version: str,
    source: Path | None = None,
    data: bytes | None = None,
    filename: str | None = None,
    origin: str = DISK,
    metadata: dict | None = None,
    description: str = "",
    runtime: str = ModelVersion.Runtime.AUTO,
    user=None,
) -> ModelVersion:
    """Register an artifact as `model_name:version`: the file at `source`
    on the server's disk, or uploaded bytes (`data`, origin UPLOAD).

    Everything is checked in memory first (names, format, signature; a
    pickle only from disk with ALLOW_PICKLE); then the files are written
    under <root>/<model>/<version>/ (a file already in the root stays where
    it is) and the row is created. A refused registration leaves no file
    and no row. Raises VersionExists, ArtifactPathError, UploadRefused,
    UntrustedTypes, PayloadTooLarge or ArtifactLoadError."""
    metadata = dict(metadata or {})
    names_check(model_name=model_name, version=version)
    in_root = None
    if data is None:
        source = Path(source)
        if not source.is_file():
            raise ArtifactLoadError(
                f"No file at {source}.", details={"path": str(source)}
            )
        in_root = artifacts.relative_to_root(source)
        data = source.read_bytes()
        filename = filename or source.name
    _ensure_new(model_name, version)
    prepared = _prepare(data, origin=origin, metadata=metadata)
    folder = f"{model_name}/{version}"
    written: list[str] = []
    try:
        relative = in_root
        if relative is None:
            relative = _write_new(f"{folder}/{_file_name(filename, prepared)}", data)
            written.append(relative)
        skops_path = ""
        if prepared.format == ModelVersion.Format.SKOPS:
            skops_path = relative
        elif prepared.skops_payload is not None:
            skops_path = _derived_write(f"{folder}/model.skops", prepared.skops_payload)
            written.append(skops_path)
        compiled_path = ""
        if prepared.format == ModelVersion.Format.ONNX:
            compiled_path = relative
        elif prepared.compiled is not None:
            compiled_path = _derived_write(
                f"{folder}/model.onnx", prepared.compiled.payload
            )
            written.append(compiled_path)
        with transaction.atomic():
            # Into the shared store with the row: other hosts see the
            # version only once they can fetch its files.
            _store_put(
                data,
                prepared.skops_payload,
                prepared.compiled.payload if prepared.compiled else None,
            )
            row = _version_create(
                model_name=model_name,
                version=version,
                relative=relative,
                prepared=prepared,
                skops_path=skops_path,
                compiled_path=compiled_path,
                metadata=metadata,
                description=description,
                runtime=runtime,
                user=user,
            )
    except BaseException:
        for path in written:  # leave no unregistered file behind
            artifacts.resolve(path).unlink(missing_ok=True)
        _prune_empty(folder)
        raise
    logger.info(
        "registered %s:%s (%s, %s; runtime %s, %s)",
        model_name,
        version,
        relative,
        prepared.format,
        row.serving_runtime,
        prepared.compiled_detail,
    )
    return row


def _store_put(*payloads: bytes | None) -> None:
    """Write files to the shared artifact store (once per sha256)."""
    shared = store.artifact_store()
    for payload in payloads:
        if payload is not None:
            shared.put_bytes(payload)


def _prune_empty(folder: str) -> None:
    """Remove <root>/<model>/<version>/ and <root>/<model>/ if empty."""
    path = artifacts.resolve(folder)
    for candidate in (path, path.parent):
        try:
            candidate.rmdir()
        except OSError:
            return


def _version_create(
    *,
    model_name: str,
    version: str,
    relative: str,
    prepared: Prepared,
    skops_path: str,
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
    if isinstance(metadata.get("metrics"), dict):
        metrics.update(metadata["metrics"])
    signature = prepared.signature
    compiled = prepared.compiled
    if prepared.format == ModelVersion.Format.ONNX:
        compiled_sha, compiled_size = prepared.sha256, len(prepared.data)
    elif compiled is not None:
        compiled_sha = artifacts.sha256_hex(compiled.payload)
        compiled_size = len(compiled.payload)
    else:
        compiled_sha, compiled_size = "", None
    with transaction.atomic():
        model, _ = RegisteredModel.objects.get_or_create(
            name=model_name, defaults={"description": description}
        )
        _ensure_new(model_name, version)  # again: another writer may have won
        row = ModelVersion.objects.create(
            model=model,
            version=version,
            artifact_path=relative,
            format=prepared.format,
            runtime=runtime,
            sha256=prepared.sha256,
            size_bytes=len(prepared.data),
            skops_path=skops_path,
            skops_sha256=(
                artifacts.sha256_hex(prepared.skops_payload)
                if prepared.skops_payload is not None
                else ""
            ),
            trusted_types=prepared.trusted_types,
            compiled_path=compiled_path,
            compiled_sha256=compiled_sha,
            compiled_size_bytes=compiled_size,
            compiled_detail=prepared.compiled_detail,
            model_type=str(metadata.get("model_type") or signature.model_type)[:200],
            n_features=signature.n_features,
            feature_names=signature.feature_names,
            classes=signature.classes,
            input_dtype=signature.input_dtype,
            sklearn_version=signature.sklearn_version or "",
            metrics=metrics,
            metadata=metadata,
            display_name=str(metadata.get("name") or "")[:200],
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


def _version_files(version: ModelVersion) -> list[tuple[str, str]]:
    """(path, sha256) of every file of a version: the registered one, its
    skops form and its ONNX conversion (each once)."""
    files = [(version.artifact_path, version.sha256)]
    for path, sha in (
        (version.skops_path, version.skops_sha256),
        (version.compiled_path, version.compiled_sha256),
    ):
        if path and sha and (path, sha) not in files:
            files.append((path, sha))
    return files


def _stored_check(relative: str, sha256: str) -> None:
    """Check the shared store's copy of one file against its sha256. A
    copy the store lacks, or holds damaged, is stored again from an intact
    copy on this host when there is one (a version registered before the
    store, a repaired file). Otherwise ArtifactIntegrityError (the store's
    copy is damaged: every host would load it so) or ArtifactMissing (no
    copy anywhere this host can see: its own problem)."""
    if not store.SHA256_PATTERN.match(sha256 or ""):
        artifacts.read_verified(relative, sha256)  # the old rules
        return
    shared = store.artifact_store()
    try:
        shared.check(sha256)
        return
    except store.StoreObjectMissing:
        problem = None
    except store.StoreObjectCorrupt as exc:
        problem = exc
    except (DatabaseError, store.StoreUnavailable) as exc:
        raise ArtifactMissing(
            f"Artifact file {relative}: the shared store cannot be reached ({exc}).",
            details={"path": relative, "sha256": sha256},
        ) from None
    local = artifacts.local_copy(relative, sha256)
    if local is not None:
        shared.put_bytes(local, replace=problem is not None)
        logger.warning(
            "artifact %s (%s) was %s in the shared store; stored again from "
            "this host's intact copy",
            relative,
            sha256,
            "damaged" if problem is not None else "missing",
        )
        return
    if problem is not None:
        store.cache_forget(sha256)
        raise ArtifactIntegrityError(
            f"Artifact file {relative} does not match its registered sha256: "
            f"expected {sha256}, found {problem.actual or problem}. The "
            "shared store's copy changed after registration; it will not be "
            "loaded.",
            details={
                "path": relative,
                "expected_sha256": sha256,
                "actual_sha256": problem.actual,
            },
        )
    raise ArtifactMissing(
        f"Artifact file {relative} is not in the shared artifact store, and "
        "this host has no intact copy to add.",
        details={"path": relative, "sha256": sha256},
    )


def model_version_verify(*, version: ModelVersion) -> ModelVersion:
    """Check the shared store's copy of each of the version's files
    against its sha256 (repaired from an intact copy on this host when it
    can be), then load each form that may serve it; record the outcome in
    `status` (a restored version is ready again). Returns the version.

    The status says what every host would find: a damaged store copy is
    integrity_failed, a file that does not load is load_failed. A file
    this host lacks that the store cannot provide says nothing about the
    others: ArtifactMissing is raised and the row is left alone."""
    try:
        # The store's copies against their digests (a pickle is never
        # loaded here), then each form that may serve it, loaded.
        for relative, sha256 in _version_files(version):
            _stored_check(relative, sha256)
        if version.format != ModelVersion.Format.ONNX:
            artifact_load(
                SklearnRuntime.name,
                version.skops_path,
                version.skops_sha256,
                trusted=tuple(version.trusted_types),
            ).unload()
        if version.compiled_path:
            artifact_load(
                OnnxRuntime.name, version.compiled_path, version.compiled_sha256
            ).unload()
    except ArtifactMissing as exc:
        logger.warning("%s cannot be verified on this host: %s", version, exc.message)
        raise
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
    """Make the serving forms a version lacks: the skops form of a version
    registered from a pickle before skops forms existed, and the ONNX
    conversion (again with `force`). The registered file is verified
    against its sha256 first; a pickle is unpickled here, so this runs
    only from the `compile_versions` command, on the server's own files.
    The outcome is recorded like at registration."""
    if version.format == ModelVersion.Format.ONNX:
        return version
    if version.skops_path and version.compiled_detail and not force:
        return version  # both forms were made (or the ONNX one refused)
    data = artifacts.read_verified(version.artifact_path, version.sha256)
    prepared = _prepare(data, origin=DISK, metadata=version.metadata or {})
    folder = f"{version.model.name}/{version.version}"
    skops_path, skops_sha = version.skops_path, version.skops_sha256
    if not skops_path and prepared.skops_payload is not None:
        skops_path = _derived_write(f"{folder}/model.skops", prepared.skops_payload)
        skops_sha = artifacts.sha256_hex(prepared.skops_payload)
    path = sha = ""
    size = None
    if prepared.compiled is not None:
        path = _derived_write(f"{folder}/model.onnx", prepared.compiled.payload)
        sha = artifacts.sha256_hex(prepared.compiled.payload)
        size = len(prepared.compiled.payload)
    with transaction.atomic():
        _store_put(
            prepared.skops_payload if skops_path != version.skops_path else None,
            prepared.compiled.payload if prepared.compiled is not None else None,
        )
    fields = {
        "skops_path": skops_path,
        "skops_sha256": skops_sha,
        "trusted_types": version.trusted_types or prepared.trusted_types,
        "compiled_path": path,
        "compiled_sha256": sha,
        "compiled_size_bytes": size,
        "compiled_detail": prepared.compiled_detail,
        "input_dtype": prepared.signature.input_dtype,
        "sklearn_version": prepared.signature.sklearn_version or "",
    }
    if not version.feature_names:
        fields["feature_names"] = prepared.signature.feature_names
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(**fields)
        registry_generation_bump()
    for name, value in fields.items():
        setattr(version, name, value)
    logger.info("%s compiled: %s", version, prepared.compiled_detail)
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
    """Record that a serving process could not load a version: not when
    the file is only missing on that host (ArtifactMissing: the store
    could not fill its cache), which says nothing about the others."""
    if isinstance(error, ArtifactMissing):
        return
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
    alias_name: str | None = None,
) -> AliasChange | None:
    alias_name = alias_name or app_settings.ALIAS
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


def _alias_checked(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_PATTERN.match(alias):
        raise AliasInvalid(
            f"Alias {alias!r} must be 1-50 lower-case letters, digits, '_' "
            "or '-', starting with a letter.",
            details={"alias": alias},
        )
    return alias


def model_alias_set(
    *,
    version: ModelVersion,
    alias: str,
    user=None,
    actor: str = "",
    note: str = "",
) -> AliasChange | None:
    """Point `alias` of the version's model at `version` (created if new,
    moved otherwise; the move is in the history). The default alias
    (ALIAS, `production`) is an activation. None when it already pointed
    there. AliasInvalid, VersionUnavailable, ArtifactError subclasses."""
    alias = _alias_checked(alias)
    if alias == app_settings.ALIAS:
        return model_version_activate(
            version=version, user=user, actor=actor, note=note
        )
    _ensure_servable(version)
    return _move_alias(
        model=version.model,
        version=version,
        action=AliasChange.Action.SET,
        user=user,
        actor=actor,
        note=note,
        alias_name=alias,
    )


def model_alias_remove(
    *, model: RegisteredModel, alias: str, user=None, actor: str = "", note: str = ""
) -> AliasChange:
    """Delete an alias (recorded in the history). AliasProtected for the
    default alias (activate another version instead), AliasNotFound."""
    if alias == app_settings.ALIAS:
        raise AliasProtected(
            f"{alias!r} is the default alias (ALIAS): it cannot be removed; "
            "activate another version or roll back instead.",
            details={"model": model.name, "alias": alias},
        )
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().get(pk=model.pk)
        row = (
            ModelAlias.objects.select_related("version")
            .filter(model=model, name=alias)
            .first()
        )
        if row is None:
            raise AliasNotFound.of(
                model.name,
                alias,
                available=ModelAlias.objects.filter(model=model).values_list(
                    "name", flat=True
                ),
            )
        previous = row.version
        row.delete()
        change = AliasChange.objects.create(
            model=model,
            alias=alias,
            from_version=previous,
            to_version=None,
            from_label=previous.version,
            to_label="",
            action=AliasChange.Action.REMOVE,
            changed_by=real_user(user),
            actor=actor_of(user, actor),
            note=note[:300],
        )
        registry_generation_bump()
    logger.info(
        "%s@%s removed (was %s, by %s)",
        model.name,
        alias,
        previous.version,
        change.actor,
    )
    return change


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
                    shared = store.artifact_store()
                    if not shared.has(digest):  # registered before the store
                        shared.put_file(found.path)
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
    restored file is served again). [(label, status, detail)]; the status
    is "unavailable" for a version this host cannot check (a file missing
    here that the store cannot provide), whose row is left alone."""
    report = []
    versions = ModelVersion.objects.exclude(
        status=ModelVersion.Status.ARCHIVED
    ).select_related("model")
    for version in versions:
        try:
            model_version_verify(version=version)
        except ArtifactMissing as exc:  # this host's problem: row untouched
            report.append((str(version), "unavailable", exc.message))
            continue
        report.append((str(version), version.status, version.status_detail))
    return report
