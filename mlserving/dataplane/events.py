"""The one builder of prediction events: what the data plane hands to
monitoring's buffer for every /predict call (answered or refused) and
every shadow answer. Experiment and arm come from the routing decision,
the feature rows only when LOG_FEATURES is on."""

from dataclasses import dataclass

import numpy as np

from mlserving.conf import app_settings, monitoring_settings
from mlserving.dataplane.routing import Routing
from monitoring.events import SHADOW_ARM, Event


@dataclass(frozen=True, slots=True)
class ShadowOf:
    """What a shadow answer is compared with: its primary request."""

    experiment: str
    labels: np.ndarray
    primary_latency_ms: float


def prediction_event(
    *,
    request_id: str,
    arrived: float,
    latency_ms: float,
    model: str | None,
    version: str = "",
    routing: Routing | None = None,
    subject_key: str = "",
    outcome: str = "ok",
    status_code: int = 200,
    labels: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    cached: bool = False,
    rows: np.ndarray | None = None,
    shadow_of: ShadowOf | None = None,
) -> Event:
    """The event of one prediction. `model` None (the request named none
    that could be resolved) logs the default model's name. A shadow answer
    (`shadow_of`) is logged under arm "shadow" with the rows on which it
    agreed with its primary."""
    experiment, arm = "", ""
    if routing is not None:
        experiment, arm = routing.experiment or "", routing.arm or ""
    agreed = None
    if shadow_of is not None:
        experiment, arm = shadow_of.experiment, SHADOW_ARM
        if labels is not None and len(labels) == len(shadow_of.labels):
            agreed = int(np.count_nonzero(labels == shadow_of.labels))
    return Event(
        created=arrived,
        request_id=request_id,
        model=model or app_settings.DEFAULT_MODEL_NAME or "",
        version=version,
        latency_ms=latency_ms,
        outcome=outcome,
        status_code=status_code,
        labels=labels,
        proba=proba,
        experiment=experiment,
        arm=arm,
        subject_key=subject_key,
        cached=cached,
        features=rows if monitoring_settings.LOG_FEATURES and outcome == "ok" else None,
        shadow=shadow_of is not None,
        agreed_rows=agreed,
        primary_latency_ms=shadow_of.primary_latency_ms if shadow_of else None,
    )
