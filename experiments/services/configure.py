"""Configuring experiments: what an experiment should look like (arms and
weights, strategy, shadows, options), validated before anything is saved;
the seed's /ab-test/configure on top; and the initial experiment of
AB_TEST_ENABLED."""

import math
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from experiments.entries import WEIGHTED
from experiments.models import AuditEntry, Experiment, ShadowVersion, Variant
from experiments.services.common import audit, save
from experiments.services.lifecycle import experiment_pause, experiment_start
from experiments.strategies import layout_initial, layout_rebalance, weights_validate
from mlserving.conf import app_settings
from mlserving.errors import ApplicationError, Conflict, ValidationFailed
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.generation import registry_generation_bump
from registry.models import ModelVersion, RegisteredModel

WEIGHT_TOLERANCE = 1e-6
STRATEGIES = [choice for choice, _ in Experiment.Strategy.choices]


def _check_version(model: RegisteredModel, version: ModelVersion) -> None:
    if version.model_id != model.pk:
        raise ValidationFailed(
            f"{version} does not belong to model {model.name!r}.",
            details={"version": version.version, "model": model.name},
        )
    # Re-reads the artifact and its sha256; marks the version on failure.
    registry_services.model_version_verify(version=version)
    if version.status != ModelVersion.Status.READY:
        raise ValidationFailed(
            f"{version} cannot serve: {version.status} "
            f"({version.status_detail or 'no detail'}).",
            details={"version": version.version, "status": version.status},
        )


def _check_weights(weights: list[float]) -> None:
    try:
        weights_validate(weights=weights)
    except ValueError as exc:
        raise ValidationFailed(str(exc), details={"weights": weights}) from None
    if abs(sum(weights) - 1.0) > WEIGHT_TOLERANCE:
        raise ValidationFailed(
            f"Variant weights must sum to 1; they sum to {sum(weights):g}.",
            details={"weights": weights},
        )


def _hash_layout(old: dict | None, labels: list[str], weights: list[float]) -> dict:
    """The bucket layout for the new arms, moving as few subjects as
    possible from the old one: arms keep their buckets by version label,
    removed arms give theirs up."""
    if not old or not old.get("segments"):
        return {"arms": labels, "segments": layout_initial(weights=weights)}
    old_labels = list(old["arms"])
    union = old_labels + [label for label in labels if label not in old_labels]
    union_weights = [
        weights[labels.index(label)] if label in labels else 0.0 for label in union
    ]
    segments = layout_rebalance(layout=old["segments"], weights=union_weights)
    index_of = {union.index(label): labels.index(label) for label in labels}
    remapped = [[start, end, index_of[arm]] for start, end, arm in segments]
    return {"arms": labels, "segments": remapped}


@dataclass
class ExperimentSpec:
    """What an experiment should look like; None leaves a field as it is."""

    variants: list[tuple[ModelVersion, float]]
    strategy: str | None = None
    shadows: list[tuple[ModelVersion, float]] | None = None
    subject_key: str | None = None
    options: dict = field(default_factory=dict)


OPTION_FIELDS = (
    "description",
    "reward",
    "min_share",
    "error_penalty",
    "latency_penalty_per_ms",
    "max_error_rate",
    "max_p99_latency_ms",
    "min_accuracy",
    "min_labels",
    "min_requests",
    "auto_promote",
)


def experiment_spec_validate(
    *, model: RegisteredModel, spec: ExperimentSpec, strategy: str
) -> None:
    """ValidationFailed (422) unless `spec` can run: a known strategy, two or
    more distinct versions of `model` that pass their integrity check,
    weights that sum to 1, shadows that are not arms."""
    if strategy not in STRATEGIES:
        raise ValidationFailed(
            f"Unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.",
            details={"field": "strategy", "choices": STRATEGIES},
        )
    if len(spec.variants) < 2:
        raise ValidationFailed(
            "An experiment needs at least two variants.",
            details={"field": "variants"},
        )
    labels = [version.version for version, _ in spec.variants]
    if len(set(labels)) != len(labels):
        raise ValidationFailed(
            "A version can be only one variant.", details={"versions": labels}
        )
    _check_weights([weight for _, weight in spec.variants])
    for version, _ in spec.variants:
        _check_version(model, version)
    for version, percent in spec.shadows or []:
        if version.version in labels:
            raise ValidationFailed(
                f"{version} is a variant; it cannot also be a shadow.",
                details={"version": version.version},
            )
        if not 0 < percent <= 100:
            raise ValidationFailed(
                "mirror_percent must be in (0, 100].",
                details={"version": version.version, "mirror_percent": percent},
            )
        _check_version(model, version)
    floor = spec.options.get("min_share")
    if floor is not None and (floor < 0 or floor * len(labels) > 1):
        raise ValidationFailed(
            "min_share times the number of arms must be at most 1.",
            details={"min_share": floor, "arms": len(labels)},
        )


def experiment_save(
    *,
    model: RegisteredModel,
    spec: ExperimentSpec,
    experiment: Experiment | None = None,
    name: str | None = None,
    user=None,
    reason: str = "",
) -> Experiment:
    """Create an experiment (draft) or change one's variants, strategy,
    shadows and options. Validates that weights sum to 1, that every
    version belongs to `model` and passes its integrity check; hash-based
    layouts move as few subjects as possible. ValidationFailed (422)."""
    strategy = spec.strategy or (experiment.strategy if experiment else "random")
    experiment_spec_validate(model=model, spec=spec, strategy=strategy)
    with transaction.atomic():
        if experiment is None:
            experiment = Experiment(
                model=model,
                name=name or _new_name(model),
                created_by=registry_services.real_user(user),
            )
        else:
            experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
            if experiment.status == Experiment.Status.COMPLETED:
                raise Conflict(
                    f"Experiment {experiment.name!r} is completed; create a new one.",
                    details={"experiment": experiment.name},
                )
        experiment.strategy = strategy
        if spec.subject_key:
            experiment.subject_key = spec.subject_key
        for key in OPTION_FIELDS:
            if key in spec.options:
                setattr(experiment, key, spec.options[key])
        labels = [version.version for version, _ in spec.variants]
        weights = [float(weight) for _, weight in spec.variants]
        before = (
            [
                (v.version.version, v.weight)
                for v in experiment.variants.select_related("version")
            ]
            if experiment.pk is not None
            else []
        )
        if before and before != list(zip(labels, weights, strict=True)):
            # the expected split changed (the strategy alone does not)
            experiment.weights_changed_at = timezone.now()
        experiment.hash_layout = _hash_layout(
            experiment.hash_layout or None, labels, weights
        )
        save(experiment, user=user, reason=reason or "configured")
        _variants_set(experiment, spec.variants, user=user)
        if spec.shadows is not None:
            _shadows_set(experiment, spec.shadows, user=user)
        audit(
            experiment,
            AuditEntry.Kind.CONFIGURE,
            f"{strategy}: "
            + ", ".join(
                f"{label} {w:g}" for label, w in zip(labels, weights, strict=True)
            ),
            details={
                "reason": reason,
                "weights": dict(zip(labels, weights, strict=True)),
            },
            user=user,
        )
        registry_generation_bump()
    return experiment


def _new_name(model: RegisteredModel) -> str:
    base = f"{model.name}-ab"
    taken = set(
        Experiment.objects.filter(name__startswith=base).values_list("name", flat=True)
    )
    n = 1
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def _variants_set(experiment, variants, *, user) -> None:
    existing = {v.version_id: v for v in experiment.variants.all()}
    keep = set()
    for position, (version, weight) in enumerate(variants):
        variant = existing.get(version.pk) or Variant(
            experiment=experiment, version=version
        )
        changed = variant.pk is None or (variant.weight, variant.position) != (
            weight,
            position,
        )
        variant.weight, variant.position = float(weight), position
        if experiment.strategy != WEIGHTED:
            variant.allocation = None
        if changed:
            save(variant, user=user, reason="configured")
        keep.add(version.pk)
    for version_id, variant in existing.items():
        if version_id not in keep:
            variant._history_user = registry_services.real_user(user)
            variant.delete()


def _shadows_set(experiment, shadows, *, user) -> None:
    existing = {s.version_id: s for s in experiment.shadows.all()}
    keep = set()
    for version, percent in shadows:
        shadow = existing.get(version.pk) or ShadowVersion(
            experiment=experiment, version=version
        )
        if shadow.pk is None or shadow.mirror_percent != percent:
            shadow.mirror_percent = float(percent)
            save(shadow, user=user, reason="configured")
        keep.add(version.pk)
    for version_id, shadow in existing.items():
        if version_id not in keep:
            shadow._history_user = registry_services.real_user(user)
            shadow.delete()


# --- the seed's /ab-test/configure ---------------------------------------


def _default_versions(model: RegisteredModel) -> list[ModelVersion]:
    """The active version and the newest other ready one."""
    active = registry_selectors.model_version_get_active(model=model)
    others = model.versions.filter(status=ModelVersion.Status.READY)
    if active is not None:
        others = others.exclude(pk=active.pk)
    newest = others.order_by("-created_at", "-id").first()
    return [v for v in (active, newest) if v is not None]


def _split_weights(split_ratio: float, arms: int) -> list[float]:
    """split_ratio is the first model's share; the rest share the remainder
    equally."""
    if arms == 1:
        return [1.0]
    rest = (1.0 - split_ratio) / (arms - 1)
    return [split_ratio] + [rest] * (arms - 1)


def ab_test_configure(
    *,
    model: RegisteredModel,
    enabled: bool | None = None,
    split_ratio: float | None = None,
    versions: list[ModelVersion] | None = None,
    strategy: str | None = None,
    user=None,
    reason: str = "",
) -> Experiment:
    """The seed's configure: create or update the model's current
    experiment (the running one, else the latest not completed) with
    `versions` (models[0] gets `split_ratio` of the traffic), then run or
    pause it as `enabled` says. Unset fields keep their values."""
    experiment = (
        Experiment.objects.filter(model=model)
        .exclude(status=Experiment.Status.COMPLETED)
        .order_by(
            _running_first(),
            "-updated_at",
            "-id",
        )
        .first()
    )
    if experiment is not None:
        current = list(experiment.variants.select_related("version"))
        if versions is None:
            versions = [v.version for v in current]
        if split_ratio is None and current:
            split_ratio = current[0].weight
    if versions is None:
        versions = _default_versions(model)
    if split_ratio is None:
        split_ratio = app_settings.AB_TEST_SPLIT_RATIO
    if not 0 <= split_ratio <= 1 or math.isnan(split_ratio):
        raise ValidationFailed(
            "split_ratio must be between 0 and 1.",
            details={"field": "split_ratio", "value": split_ratio},
        )
    spec = ExperimentSpec(
        variants=list(
            zip(versions, _split_weights(split_ratio, len(versions)), strict=True)
        ),
        strategy=strategy,
    )
    with transaction.atomic():
        experiment = experiment_save(
            model=model, spec=spec, experiment=experiment, user=user, reason=reason
        )
        if enabled is True:
            experiment = experiment_start(
                experiment=experiment, user=user, reason=reason
            )
        elif enabled is False and experiment.status == Experiment.Status.RUNNING:
            experiment = experiment_pause(
                experiment=experiment, user=user, reason=reason
            )
    return experiment


def _running_first():
    return Case(
        When(status=Experiment.Status.RUNNING, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )


def experiments_from_settings() -> Experiment | None:
    """AB_TEST_ENABLED / AB_TEST_SPLIT_RATIO as the initial state: when
    enabled and the default model has never had an experiment, start one
    between its active version and its newest other version. Run at
    start-up (web processes' warm-up, bootstrap_demo); idempotent."""
    if not app_settings.AB_TEST_ENABLED:
        return None
    try:
        model = registry_selectors.model_get(name=None)
    except ApplicationError:
        return None  # no model yet
    if Experiment.objects.filter(model=model).exists():
        return None
    versions = _default_versions(model)
    if len(versions) < 2:
        return None
    try:
        return ab_test_configure(
            model=model,
            enabled=True,
            split_ratio=app_settings.AB_TEST_SPLIT_RATIO,
            versions=versions,
            reason="settings: AB_TEST_ENABLED",
        )
    except (Conflict, IntegrityError):
        return None  # another process created it first
