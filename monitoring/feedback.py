"""Feedback on predictions (POST /feedback): whether the subject converted,
a reward, or the true label, joined to the prediction log by request id.

One row per request id. Sending the same feedback again changes nothing;
adding a field not sent before is merged in; contradicting a value already
recorded is a conflict. Rollups add feedback to the bucket (minute, model,
version, experiment, arm) of the prediction it is about.

A request id must name one answered prediction: two answered calls made
with the same X-Request-ID are a 409, not a guess at which one is meant.
"""

import math
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models.functions import Now

from mlserving.conf import experiment_settings
from mlserving.errors import Conflict, NotFound, ValidationFailed
from monitoring.models import Feedback, PredictionEvent
from registry.models import ModelVersion

FIELDS = ("converted", "reward", "true_label")
POLL_SECONDS = 0.05
# The largest reward either side of 0. Rollups keep sums of rewards and of
# their squares in doubles: at 1e9 a square is 1e18, so no count of
# feedback rows a deployment can hold (about 1e290 before overflow) turns
# a sum into inf, which made an arm's reward_mean null. Wide enough for
# any revenue or score in sensible units.
REWARD_LIMIT = 1e9
# Columns a feedback join reads from the prediction's event.
_EVENT_FIELDS = (
    "request_id",
    "created_at",
    "model",
    "version",
    "experiment",
    "arm",
    "outcome",
    "rows",
    "predicted_class",
)


class AmbiguousRequestId(Conflict):
    """More than one answered prediction carries the request id (clients
    choose X-Request-ID, and the prediction path stores every call without
    looking up the ones before it)."""

    code = "ambiguous_request_id"


@dataclass
class FeedbackResult:
    feedback: Feedback
    status: str  # "recorded", "updated" or "unchanged"
    event: PredictionEvent


def _event_of(request_id: str) -> PredictionEvent | None:
    """The prediction the request id names: its one answered call, else
    its first failed one (feedback on that is a 409 that says it failed).
    AmbiguousRequestId when several calls were answered under it."""
    events = PredictionEvent.objects.filter(request_id=request_id, shadow=False)
    events = events.only(*_EVENT_FIELDS)
    answered = events.filter(outcome="ok")
    first_two = list(answered.order_by("id")[:2])
    if len(first_two) > 1:
        count = answered.count()
        raise AmbiguousRequestId(
            f"{count} predictions were answered under request_id "
            f"{request_id!r}; feedback cannot tell which one it is about. "
            "Send a unique X-Request-ID with each prediction.",
            details={"request_id": request_id, "predictions": count},
        )
    if first_two:
        return first_two[0]
    return events.order_by("id").first()


def prediction_find(*, request_id: str, wait: float | None = None) -> PredictionEvent:
    """The logged prediction with this request id. Events reach the
    database in batches (within EVENT_FLUSH_INTERVAL), so a miss is retried
    for up to FEEDBACK_WAIT seconds before NotFound (404).
    AmbiguousRequestId (409) when several answered predictions carry it."""
    wait = experiment_settings.FEEDBACK_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        event = _event_of(request_id)
        if event is not None:
            return event
        if time.monotonic() >= deadline:
            raise NotFound(
                f"No prediction with request_id {request_id!r} is logged "
                "(unknown, older than the event retention, or made with "
                "monitoring off).",
                details={"request_id": request_id},
            )
        time.sleep(POLL_SECONDS)


def _values(event: PredictionEvent, given: dict) -> dict:
    values = {key: given[key] for key in FIELDS if given.get(key) is not None}
    if not values:
        raise ValidationFailed(
            'Send at least one of "converted", "reward" or "true_label".',
            details={"fields": list(FIELDS)},
        )
    if "reward" in values:
        _check_reward(values["reward"])
    if event.outcome != "ok":
        raise Conflict(
            f"The prediction {event.request_id!r} failed ({event.outcome}); "
            "there is no answer to give feedback on.",
            details={"request_id": event.request_id, "outcome": event.outcome},
        )
    if "true_label" in values:
        # As the event stores predicted_class (event_store._class_key): the
        # label's text, so 1 and "1" are the same class.
        values["true_label"] = str(values["true_label"])
        if event.rows != 1:
            raise ValidationFailed(
                "true_label needs a one-row prediction; this request had "
                f"{event.rows} rows.",
                details={"request_id": event.request_id, "rows": event.rows},
            )
        _check_label(event, values["true_label"])
        values["correct"] = values["true_label"] == event.predicted_class
    return values


def _check_reward(reward) -> None:
    if (
        isinstance(reward, bool)
        or not isinstance(reward, (int, float))
        or not math.isfinite(reward)
        or abs(reward) > REWARD_LIMIT
    ):
        raise ValidationFailed(
            f"reward must be a finite number from {-REWARD_LIMIT:g} to "
            f"{REWARD_LIMIT:g}.",
            details={"field": "reward", "limit": REWARD_LIMIT},
        )


def _check_label(event: PredictionEvent, label: str) -> None:
    """ValidationFailed unless `label` is one of the classes of the version
    that answered. A version that declares no classes takes any label."""
    classes = (
        ModelVersion.objects.filter(model__name=event.model, version=event.version)
        .values_list("classes", flat=True)
        .first()
    )
    if not classes:
        return
    known = [str(c) for c in classes]
    if label not in known:
        raise ValidationFailed(
            f"true_label {label!r} is not a class of {event.model}:"
            f"{event.version}; its classes are {', '.join(known)}.",
            details={
                "field": "true_label",
                "classes": known,
                "model": event.model,
                "model_version": event.version,
            },
        )


def feedback_record(
    *,
    request_id: str,
    converted: bool | None = None,
    reward: float | None = None,
    true_label: str | int | None = None,
    wait: float | None = None,
) -> FeedbackResult:
    """Record feedback for one prediction. NotFound (404) for a request id
    not logged within `wait` seconds (default FEEDBACK_WAIT; callers on an
    event loop pass 0 and wait between tries themselves),
    ValidationFailed (422) without any field, for a reward past
    REWARD_LIMIT, for a label on a batch or a label that is not one of
    the version's classes, Conflict (409) when it contradicts what was
    recorded or the prediction failed, AmbiguousRequestId (409) when
    several answered predictions carry the request id."""
    event = prediction_find(request_id=request_id, wait=wait)
    values = _values(
        event, {"converted": converted, "reward": reward, "true_label": true_label}
    )
    bucket = {
        "minute": event.created_at.replace(second=0, microsecond=0),
        "model": event.model,
        "version": event.version,
        "experiment": event.experiment,
        "arm": event.arm,
    }
    for _ in range(2):  # a concurrent first insert: read it and merge
        try:
            with transaction.atomic():
                row = (
                    Feedback.objects.select_for_update()
                    .filter(request_id=request_id)
                    .first()
                )
                if row is None:
                    row = Feedback.objects.create(
                        request_id=request_id, **bucket, **values
                    )
                    return FeedbackResult(row, "recorded", event)
                return FeedbackResult(row, _merge(row, values), event)
        except IntegrityError:
            continue
    raise Conflict(
        "Concurrent feedback for this request id; retry.",
        details={"request_id": request_id},
    )


def _merge(row: Feedback, values: dict) -> str:
    changed = []
    for key, value in values.items():
        current = getattr(row, key)
        if current is None or current == "":
            setattr(row, key, value)
            changed.append(key)
        elif current != value:
            raise Conflict(
                f"Feedback for {row.request_id!r} already says {key}="
                f"{current!r}; it cannot become {value!r}.",
                details={"request_id": row.request_id, "field": key},
            )
    if not changed:
        return "unchanged"
    row.changed_at = Now()
    row.save(update_fields=[*changed, "changed_at"])
    row.refresh_from_db(fields=["changed_at"])
    return "updated"


def feedback_dict(result: FeedbackResult) -> dict:
    row = result.feedback
    return {
        "status": result.status,
        "request_id": row.request_id,
        "converted": row.converted,
        "reward": row.reward,
        "true_label": row.true_label or None,
        "correct": row.correct,
        "model": row.model,
        "model_version": row.version,
        "experiment": row.experiment or None,
        "arm": row.arm or None,
    }
