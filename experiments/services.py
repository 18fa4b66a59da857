"""Writes of experiments: configure, start, pause, stop, promote; the
guardrails and the bandit allocation that run after each rollup.

Every write bumps the registry generation in its transaction, which is how
serving processes (whose catalog holds the running experiments) learn of
it within one poll interval.
"""

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from experiments import selectors
from experiments.models import (
    AllocationRecord,
    AuditEntry,
    Experiment,
    ShadowVersion,
    Variant,
)
from experiments.routing import WEIGHTED
from experiments.strategies import (
    ArmStats,
    layout_initial,
    layout_rebalance,
    thompson_allocation,
    weights_validate,
)
from mlserving.conf import app_settings, experiment_settings
from mlserving.errors import ApplicationError, Conflict, ValidationFailed
from monitoring import broadcast
from monitoring.events import SHADOW_ARM
from monitoring.selectors import RollupTotals
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.models import ModelVersion, RegisteredModel

logger = logging.getLogger("experiments")

WEIGHT_TOLERANCE = 1e-6
STRATEGIES = [choice for choice, _ in Experiment.Strategy.choices]


def _audit(experiment, kind, message, *, arm="", details=None, user=None):
    AuditEntry.objects.create(
        experiment=experiment,
        kind=kind,
        arm=arm,
        message=message[:500],
        details=details or {},
        actor=registry_services.actor_of(user, "" if user else "system"),
    )


def _save(instance, *, user=None, reason: str = "", **kwargs) -> None:
    """save() with the history record's user and reason."""
    instance._history_user = registry_services.real_user(user)
    instance._change_reason = reason[:100] if reason else None
    instance.save(**kwargs)


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
        _save(experiment, user=user, reason=reason or "configured")
        _variants_set(experiment, spec.variants, user=user)
        if spec.shadows is not None:
            _shadows_set(experiment, spec.shadows, user=user)
        _audit(
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
        registry_services.registry_generation_bump()
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
            _save(variant, user=user, reason="configured")
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
            _save(shadow, user=user, reason="configured")
        keep.add(version.pk)
    for version_id, shadow in existing.items():
        if version_id not in keep:
            shadow._history_user = registry_services.real_user(user)
            shadow.delete()


def _set_status(experiment, status, *, user, reason) -> Experiment:
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if experiment.status == status:
            return experiment
        if experiment.status == Experiment.Status.COMPLETED:
            raise Conflict(
                f"Experiment {experiment.name!r} is completed.",
                details={"experiment": experiment.name},
            )
        now = timezone.now()
        if status == Experiment.Status.RUNNING and experiment.started_at is None:
            experiment.started_at = now
        if status == Experiment.Status.COMPLETED:
            experiment.stopped_at = now
        old, experiment.status = experiment.status, status
        try:
            with transaction.atomic():
                _save(experiment, user=user, reason=reason or status)
        except IntegrityError:
            other = selectors.experiment_get_running(model_name=experiment.model.name)
            raise Conflict(
                f"Model {experiment.model.name!r} already runs experiment "
                f"{other.name if other else '?'!r}; pause or stop it first.",
                details={"running": other.name if other else None},
            ) from None
        _audit(
            experiment,
            AuditEntry.Kind.STATUS,
            f"{old} -> {status}" + (f": {reason}" if reason else ""),
            user=user,
        )
        registry_services.registry_generation_bump()
    return experiment


def experiment_start(*, experiment: Experiment, user=None, reason="") -> Experiment:
    """Run it (Conflict 409 if the model already runs another)."""
    return _set_status(experiment, Experiment.Status.RUNNING, user=user, reason=reason)


def experiment_pause(*, experiment: Experiment, user=None, reason="") -> Experiment:
    """Stop assigning; the model serves by its alias meanwhile."""
    return _set_status(experiment, Experiment.Status.PAUSED, user=user, reason=reason)


def experiment_stop(*, experiment: Experiment, user=None, reason="") -> Experiment:
    """Complete it for good; its figures stay."""
    return _set_status(
        experiment, Experiment.Status.COMPLETED, user=user, reason=reason
    )


def _winner(statistics: dict) -> str | None:
    """The arm the sequential test declares better than the control (the
    best one if several), the control when it is declared better than
    every arm, else None."""
    alpha = experiment_settings.SEQUENTIAL_ALPHA
    challengers = statistics.get("arms", [])[1:]
    better, worse = [], 0
    for arm in challengers:
        versus = arm.get("versus_control") or {}
        p = versus.get("msprt_p_value")
        difference = versus.get("conversion_difference")
        if p is None or difference is None or p >= alpha:
            continue
        if difference > 0:
            better.append((difference, arm["name"]))
        else:
            worse += 1
    if better:
        return max(better)[1]
    if challengers and worse == len(challengers):
        return statistics["control"]
    return None


def experiment_winner(*, experiment: Experiment) -> str | None:
    """What _winner says of the experiment's figures since it started."""
    return _winner(
        selectors.experiment_statistics(
            experiment=experiment,
            figures=selectors.arm_figures(experiment=experiment),
        )
    )


def experiment_promote(
    *, experiment: Experiment, arm: str | None = None, user=None, reason=""
) -> Experiment:
    """Activate the winning arm's version (the given arm, else the one the
    sequential test declares) and complete the experiment. Conflict when
    there is no winner yet."""
    arm = arm or experiment_winner(experiment=experiment)
    if arm is None:
        raise Conflict(
            "No arm is significantly better than the control yet "
            "(sequential test); nothing to promote.",
            details={"experiment": experiment.name},
        )
    variant = (
        experiment.variants.select_related("version")
        .filter(version__version=arm)
        .first()
    )
    if variant is None:
        raise ValidationFailed(
            f"{arm!r} is not an arm of {experiment.name!r}.",
            details={"arm": arm},
        )
    with transaction.atomic():
        registry_services.model_version_activate(
            version=variant.version,
            user=user,
            actor="" if user else "experiment",
            note=f"promoted by experiment {experiment.name}",
        )
        experiment = _set_status(
            experiment,
            Experiment.Status.COMPLETED,
            user=user,
            reason=reason or f"promoted {arm}",
        )
        _audit(
            experiment,
            AuditEntry.Kind.PROMOTION,
            f"{arm} promoted to the active version",
            arm=arm,
            user=user,
        )
    return experiment


def arm_resume(*, variant: Variant, user=None) -> Variant:
    """Give a paused arm its traffic back."""
    with transaction.atomic():
        variant.paused, variant.paused_reason = False, ""
        _save(variant, user=user, reason="resumed")
        Experiment.objects.filter(pk=variant.experiment_id).update(
            weights_changed_at=timezone.now()
        )
        _audit(
            variant.experiment,
            AuditEntry.Kind.STATUS,
            f"arm {variant.name} resumed",
            arm=variant.name,
            user=user,
        )
        registry_services.registry_generation_bump()
    return variant


# --- the seed's /ab-test/configure -----------------------------------------


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


# --- after each rollup: guardrails, bandit, sequential test ---------------


@dataclass
class EvaluationReport:
    experiments: int = 0
    paused_arms: list[str] = field(default_factory=list)
    allocations: dict = field(default_factory=dict)
    promoted: list[str] = field(default_factory=list)


def _breaches(experiment: Experiment, figures) -> list[tuple[str, str, dict]]:
    found = []
    for name, arm in figures.items():
        if name.startswith(SHADOW_ARM):
            continue
        if arm.count >= experiment.min_requests:
            if (
                experiment.max_error_rate is not None
                and arm.error_rate > experiment.max_error_rate
            ):
                found.append(
                    (
                        name,
                        f"error rate {arm.error_rate:.1%} > "
                        f"{experiment.max_error_rate:.1%}",
                        {"error_rate": arm.error_rate, "requests": arm.count},
                    )
                )
                continue
            p99 = arm.latency_percentile(99)
            if (
                experiment.max_p99_latency_ms is not None
                and p99 is not None
                and p99 > experiment.max_p99_latency_ms
            ):
                found.append(
                    (
                        name,
                        f"p99 latency {p99:.1f} ms > "
                        f"{experiment.max_p99_latency_ms:g} ms",
                        {"latency_p99_ms": p99},
                    )
                )
                continue
        if (
            experiment.min_accuracy is not None
            and arm.labels >= experiment.min_labels
            and arm.accuracy < experiment.min_accuracy
        ):
            found.append(
                (
                    name,
                    f"accuracy {arm.accuracy:.1%} < {experiment.min_accuracy:.1%} "
                    f"over {arm.labels} labels",
                    {"accuracy": arm.accuracy, "labels": arm.labels},
                )
            )
    return found


def _guardrails_check(experiment, now, report) -> bool:
    """Pause every non-control arm that breaches a guardrail over the
    guardrail window; an alert is recorded for any arm, control included
    (whose traffic has nowhere else to go). True if an arm was paused."""
    window = timedelta(minutes=experiment_settings.GUARDRAIL_WINDOW_MINUTES)
    since = max(filter(None, (experiment.started_at, now - window)))
    figures = selectors.arm_figures(experiment=experiment, since=since)
    variants = {
        v.version.version: v for v in experiment.variants.select_related("version")
    }
    control = min(variants.values(), key=lambda v: (v.position, v.id))
    paused = False
    for name, message, details in _breaches(experiment, figures):
        variant = variants.get(name)
        if variant is None or variant.paused:
            continue
        recent = experiment.audit.filter(
            kind=AuditEntry.Kind.GUARDRAIL, arm=name, at__gte=now - window
        )
        if variant.pk == control.pk:
            if not recent.exists():
                _audit(
                    experiment,
                    AuditEntry.Kind.GUARDRAIL,
                    f"control {name}: {message} (the control is not paused)",
                    arm=name,
                    details=details,
                )
            continue
        variant.paused, variant.paused_reason = True, message[:300]
        _save(variant, reason="guardrail")
        Experiment.objects.filter(pk=experiment.pk).update(weights_changed_at=now)
        _audit(
            experiment,
            AuditEntry.Kind.GUARDRAIL,
            f"arm {name} paused: {message}; its traffic goes to {control.name}",
            arm=name,
            details=details,
        )
        report.paused_arms.append(f"{experiment.name}:{name}")
        logger.warning(
            "experiment %s: arm %s paused (%s)", experiment.name, name, message
        )
        paused = True
    return paused


def _bandit_update(experiment, figures, now, report, rng) -> bool:
    last = experiment.allocations.values_list("computed_at", flat=True).first()
    interval = experiment_settings.BANDIT_UPDATE_INTERVAL
    if last is not None and (now - last).total_seconds() < interval:
        return False
    variants = list(experiment.variants.select_related("version"))
    continuous = experiment.reward == Experiment.Reward.CONTINUOUS
    arms = []
    inputs = {}
    for v in variants:
        f = figures.get(v.version.version) or RollupTotals()
        stats = ArmStats(
            trials=f.rewards if continuous else f.ok,
            successes=0 if continuous else min(f.conversions, f.ok),
            reward_sum=f.reward_sum,
            reward_sq_sum=f.reward_sq_sum,
            requests=f.count,
            errors=f.errors,
            latency_ms=f.latency_avg or 0.0,
            paused=v.paused,
        )
        arms.append(stats)
        inputs[v.version.version] = {
            "trials": stats.trials,
            "successes": stats.successes,
            "reward_sum": stats.reward_sum,
            "requests": stats.requests,
            "errors": stats.errors,
        }
    shares = thompson_allocation(
        arms=arms,
        rng=rng,
        floor=experiment.min_share,
        reward=experiment.reward,
        error_penalty=experiment.error_penalty,
        latency_penalty_per_ms=experiment.latency_penalty_per_ms,
    )
    for v, share in zip(variants, shares, strict=True):
        v.allocation = float(share)
        _save(v, reason="bandit allocation", update_fields=["allocation"])
    record = {
        v.version.version: round(s, 6) for v, s in zip(variants, shares, strict=True)
    }
    AllocationRecord.objects.create(experiment=experiment, shares=record, inputs=inputs)
    report.allocations[experiment.name] = record
    return True


def _sequential_update(experiment, statistics: dict) -> None:
    """Keep each arm's always-valid p-value as a running minimum."""
    by_name = {arm["name"]: arm for arm in statistics.get("arms", [])}
    for v in experiment.variants.select_related("version"):
        versus = (by_name.get(v.version.version) or {}).get("versus_control") or {}
        p = versus.get("msprt_p_value")
        if p is not None and p < v.sequential_p:
            v.sequential_p = p
            v.save(update_fields=["sequential_p"])


def experiments_evaluate(
    *,
    now: datetime | None = None,
    rng: np.random.Generator | None = None,
    push: bool = True,
) -> EvaluationReport:
    """For every running experiment: check guardrails (pausing breaching
    arms), update a weighted experiment's allocation when it is due, keep
    the sequential test's running p-values, promote a declared winner when
    auto_promote is on; then broadcast the experiments to dashboards.
    Called after each rollup."""
    now = now or timezone.now()
    rng = rng or np.random.default_rng()
    report = EvaluationReport()
    running = Experiment.objects.filter(
        status=Experiment.Status.RUNNING
    ).select_related("model")
    for experiment in running:
        report.experiments += 1
        changed = False
        with transaction.atomic():
            # Two workers evaluating at once take turns per experiment.
            experiment = (
                Experiment.objects.select_for_update()
                .select_related("model")
                .get(pk=experiment.pk)
            )
            if experiment.status != Experiment.Status.RUNNING:
                continue
            if _guardrails_check(experiment, now, report):
                changed = True
            figures = selectors.arm_figures(experiment=experiment)
            if experiment.strategy == WEIGHTED and _bandit_update(
                experiment, figures, now, report, rng
            ):
                changed = True
            statistics = selectors.experiment_statistics(
                experiment=experiment, figures=figures
            )
            _sequential_update(experiment, statistics)
            if changed:
                registry_services.registry_generation_bump()
        winner = _winner(statistics) if experiment.auto_promote else None
        if winner is not None:
            try:
                experiment_promote(
                    experiment=experiment, arm=winner, reason="auto-promote"
                )
                report.promoted.append(experiment.name)
            except (Conflict, ValidationFailed) as exc:
                logger.warning("auto-promote of %s: %s", experiment.name, exc)
    if push and report.experiments:
        experiments_broadcast()
    return report


def experiments_broadcast() -> bool:
    """Push every model's experiment status to dashboards (best effort)."""
    return broadcast.metrics_broadcast(
        {"type": "experiments", "experiments": selectors.experiments_overview()}
    )
