"""Reads from the registry. None of these run on the prediction hot path:
the serving catalog calls `serving_models` only when the registry
generation (registry/generation.py) moved."""

from django.db.models import Exists, OuterRef, QuerySet

from mlserving.conf import app_settings
from registry.entries import ModelEntry, VersionEntry, model_ref_split
from registry.errors import AliasNotFound, ModelNotFound, ModelVersionNotFound
from registry.models import (
    AliasChange,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
)
from registry.runtimes import OnnxRuntime, runtime_for


def default_model_name(names: list[str], configured: str) -> str | None:
    """The model the seed's endpoints act on: the configured name if it is
    registered, else the only registered model, else none."""
    if configured and configured in names:
        return configured
    if len(names) == 1:
        return names[0]
    return None


def model_get(*, name: str | None = None) -> RegisteredModel:
    """A registered model by name, or the default model. ModelNotFound."""
    name = model_ref_split(name)[0]
    if name:
        try:
            return RegisteredModel.objects.get(name=name)
        except RegisteredModel.DoesNotExist:
            raise ModelNotFound.named(name) from None
    names = model_names()
    default = default_model_name(names, app_settings.DEFAULT_MODEL_NAME)
    if default is None:
        raise ModelNotFound.no_default(names)
    return RegisteredModel.objects.get(name=default)


def model_version_get(*, model: RegisteredModel, version: str) -> ModelVersion:
    try:
        return model.versions.get(version=version)
    except ModelVersion.DoesNotExist:
        raise ModelVersionNotFound.of(model.name, version) from None


def model_version_get_active(*, model: RegisteredModel) -> ModelVersion | None:
    alias = (
        ModelAlias.objects.filter(model=model, name=app_settings.ALIAS)
        .select_related("version")
        .first()
    )
    return alias.version if alias else None


def model_version_get_by_alias(*, model: RegisteredModel, alias: str) -> ModelVersion:
    """The version `alias` points at. AliasNotFound."""
    row = (
        ModelAlias.objects.filter(model=model, name=alias)
        .select_related("version")
        .first()
    )
    if row is None:
        raise AliasNotFound.of(model.name, alias, available=model_aliases(model=model))
    return row.version


def model_aliases(*, model: RegisteredModel) -> dict[str, str]:
    """Every alias of a model and the version it points at."""
    return dict(
        ModelAlias.objects.filter(model=model)
        .order_by("name")
        .values_list("name", "version__version")
    )


def model_version_with_active_flag(queryset: QuerySet) -> QuerySet:
    """`queryset` of versions annotated with `is_active` (the alias points
    at it), in the same query."""
    alias = ModelAlias.objects.filter(version=OuterRef("pk"), name=app_settings.ALIAS)
    return queryset.annotate(is_active=Exists(alias))


def model_version_list(*, model: RegisteredModel) -> QuerySet[ModelVersion]:
    """A model's versions, oldest first, each with `is_active`."""
    return model_version_with_active_flag(
        model.versions.select_related("created_by").order_by("created_at", "id")
    )


def alias_history_list(
    *, model: RegisteredModel, limit: int = 50
) -> QuerySet[AliasChange]:
    """The latest moves of every alias of the model, newest first."""
    return AliasChange.objects.filter(model=model).select_related("changed_by")[:limit]


def stack_replay(changes) -> list[int]:
    """Replay (action, to_version_id) pairs, oldest first, into the stack
    of version ids the alias has held: an activation pushes, a rollback
    pops down to the version it landed on (it may have skipped versions
    that could no longer be served)."""
    stack: list[int] = []
    for action, to_id in changes:
        if action == AliasChange.Action.ROLLBACK:
            while stack and stack[-1] != to_id:
                stack.pop()
            if not stack and to_id is not None:
                stack.append(to_id)
        elif to_id is not None:
            stack.append(to_id)
    return stack


def activation_stack(*, model: RegisteredModel) -> list[int]:
    """Version ids the alias has held, oldest first, rolled-back ones
    popped: a rollback returns to the element before the last."""
    changes = AliasChange.objects.filter(
        model=model, alias=app_settings.ALIAS
    ).order_by("changed_at", "id")
    return stack_replay(changes.values_list("action", "to_version_id"))


def rollback_target(*, model: RegisteredModel) -> ModelVersion | None:
    """The version a rollback moves the alias to, or None."""
    stack = activation_stack(model=model)
    ready = set(
        model.versions.filter(
            id__in=stack, status=ModelVersion.Status.READY
        ).values_list("id", flat=True)
    )
    current = stack[-1] if stack else None
    for version_id in reversed(stack[:-1]):
        if version_id != current and version_id in ready:
            return ModelVersion.objects.get(pk=version_id)
    return None


def _version_entry(row: dict) -> VersionEntry:
    """The catalog entry of a version row: it names the file its runtime
    serves (the compiled ONNX file, or the skops form; never a pickle),
    and the registered file when that is another one (verified too)."""
    runtime = runtime_for(
        row["runtime"],
        compiled=bool(row["compiled_path"]),
        sklearn=row["format"] != ModelVersion.Format.ONNX,
    )
    if runtime == OnnxRuntime.name:
        path, sha = row["compiled_path"], row["compiled_sha256"]
    else:
        path, sha = row["skops_path"], row["skops_sha256"]
    own = path == row["artifact_path"]
    return VersionEntry(
        id=row["id"],
        model=row["model__name"],
        version=row["version"],
        artifact_path=path,
        sha256=sha,
        runtime=runtime,
        source_path="" if own else row["artifact_path"],
        source_sha256="" if own else row["sha256"],
        trusted_types=tuple(row["trusted_types"] or ()),
        feature_names=tuple(row["feature_names"] or ()),
        status=row["status"],
        status_detail=row["status_detail"],
        n_features=row["n_features"],
        classes=tuple(row["classes"] or ()),
    )


def serving_models(
    *, alias: str, default_name: str
) -> tuple[dict[str, ModelEntry], str | None]:
    """Every registered model with its versions, the version its alias
    names and the ones it named before (the fallback order), in a handful
    of queries; and the name of the default model (or None)."""
    entries: dict[int, VersionEntry] = {}
    by_model: dict[str, dict[str, VersionEntry]] = {}
    names = list(RegisteredModel.objects.values_list("name", flat=True))
    for name in names:
        by_model[name] = {}
    for row in ModelVersion.objects.values(
        "id",
        "model__name",
        "version",
        "artifact_path",
        "sha256",
        "runtime",
        "compiled_path",
        "compiled_sha256",
        "skops_path",
        "skops_sha256",
        "trusted_types",
        "format",
        "status",
        "status_detail",
        "n_features",
        "feature_names",
        "classes",
    ):
        entry = _version_entry(row)
        entries[entry.id] = entry
        by_model[entry.model][entry.version] = entry
    active: dict[str, int] = {}
    aliases: dict[str, dict[str, VersionEntry]] = {name: {} for name in names}
    for model_name, alias_name, version_id in ModelAlias.objects.values_list(
        "model__name", "name", "version_id"
    ):
        if alias_name == alias:
            active[model_name] = version_id
        if version_id in entries:
            aliases[model_name][alias_name] = entries[version_id]
    # Fallbacks follow the rollback order: versions a rollback moved away
    # from were rejected by someone and are not served again on their own.
    history: dict[str, list[tuple[str, int]]] = {name: [] for name in names}
    changes = AliasChange.objects.filter(alias=alias).order_by("changed_at", "id")
    for model_name, action, to_id in changes.values_list(
        "model__name", "action", "to_version_id"
    ):
        history[model_name].append((action, to_id))
    models = {}
    for name in names:
        previous: list[VersionEntry] = []
        for version_id in reversed(stack_replay(history[name])):
            entry = entries.get(version_id)
            if entry is not None and entry.id != active.get(name):
                if entry not in previous:
                    previous.append(entry)
        models[name] = ModelEntry(
            name=name,
            alias=alias,
            active=entries.get(active.get(name)),
            previous=tuple(previous),
            versions=by_model[name],
            aliases=aliases[name],
        )
    return models, default_model_name(names, default_name)


def model_names() -> list[str]:
    return list(RegisteredModel.objects.values_list("name", flat=True))


def alias_name() -> str:
    return app_settings.ALIAS
