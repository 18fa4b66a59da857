"""An experiment's life: start, pause, stop, promote the winner, resume a
paused arm. Each change is audited, kept in the history, and bumps the
registry generation so serving processes pick it up."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from experiments import selectors
from experiments.models import AuditEntry, Experiment, Variant
from experiments.services.common import audit, save
from mlserving.conf import experiment_settings
from mlserving.errors import Conflict, ValidationFailed
from registry import services as registry_services
from registry.generation import registry_generation_bump


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
                save(experiment, user=user, reason=reason or status)
        except IntegrityError:
            other = selectors.experiment_get_running(model_name=experiment.model.name)
            raise Conflict(
                f"Model {experiment.model.name!r} already runs experiment "
                f"{other.name if other else '?'!r}; pause or stop it first.",
                details={"running": other.name if other else None},
            ) from None
        audit(
            experiment,
            AuditEntry.Kind.STATUS,
            f"{old} -> {status}" + (f": {reason}" if reason else ""),
            user=user,
        )
        registry_generation_bump()
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


def winner_of(statistics: dict) -> str | None:
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
    """What winner_of says of the experiment's figures since it started."""
    return winner_of(
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
        audit(
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
        save(variant, user=user, reason="resumed")
        Experiment.objects.filter(pk=variant.experiment_id).update(
            weights_changed_at=timezone.now()
        )
        audit(
            variant.experiment,
            AuditEntry.Kind.STATUS,
            f"arm {variant.name} resumed",
            arm=variant.name,
            user=user,
        )
        registry_generation_bump()
    return variant
