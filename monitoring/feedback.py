"""Feedback on predictions (POST /feedback): whether the subject converted,
a reward, or the true label, joined to the prediction log by request id.

One row per request id. Sending the same feedback again changes nothing;
adding a field not sent before is merged in; contradicting a value already
recorded is a conflict. Rollups add feedback to the bucket (minute, model,
version, experiment, arm) of the prediction it is about.
"""

import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models.functions import Now

from mlserving.conf import experiment_settings
from mlserving.errors import Conflict, NotFound, ValidationFailed
from monitoring.models import Feedback, PredictionEvent

FIELDS = ("converted", "reward", "true_label")
POLL_SECONDS = 0.05


@dataclass
class FeedbackResult:
    feedback: Feedback
    status: str  # "recorded", "updated" or "unchanged"
    event: PredictionEvent


def _event_of(request_id: str) -> PredictionEvent | None:
    return (
        PredictionEvent.objects.filter(request_id=request_id, shadow=False)
        .order_by("id")
        .only(
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
        .first()
    )


def prediction_find(*, request_id: str, wait: float | None = None) -> PredictionEvent:
    """The logged prediction with this request id. Events reach the
    database in batches (within EVENT_FLUSH_INTERVAL), so a miss is retried
    for up to FEEDBACK_WAIT seconds before NotFound (404)."""
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
    if event.outcome != "ok":
        raise Conflict(
            f"The prediction {event.request_id!r} failed ({event.outcome}); "
            "there is no answer to give feedback on.",
            details={"request_id": event.request_id, "outcome": event.outcome},
        )
    if "true_label" in values:
        values["true_label"] = str(values["true_label"])
        if event.rows != 1:
            raise ValidationFailed(
                "true_label needs a one-row prediction; this request had "
                f"{event.rows} rows.",
                details={"request_id": event.request_id, "rows": event.rows},
            )
        values["correct"] = values["true_label"] == event.predicted_class
    return values


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
    ValidationFailed (422) without any field or for a label on a batch,
    Conflict (409) when it contradicts what was recorded or the prediction
    failed."""
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
