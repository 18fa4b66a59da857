"""Which arm of a running experiment answers a request: the experiments
step of the prediction path.

Running experiments are part of the per-process registry catalog (built by
`experiments.selectors.experiment_entries`), so choosing an arm reads
memory only: one random draw, or one hash and a bisect.
"""

from dataclasses import dataclass

from experiments.strategies import HashAssigner, WeightedDraw
from registry.catalog import VersionEntry

RANDOM = "random"
HASH = "hash-based"
WEIGHTED = "weighted"
SUBJECT_HEADER = "X-Subject-Key"


@dataclass(frozen=True, slots=True)
class ArmEntry:
    name: str  # the version label: what responses and events call the arm
    version: VersionEntry
    weight: float  # as configured
    # The share it gets now: the configured weight, or the bandit's
    # allocation; 0 while paused (the control takes that traffic).
    share: float
    paused: bool


@dataclass(frozen=True, slots=True)
class ShadowEntry:
    version: VersionEntry
    fraction: float  # of the experiment's requests that get mirrored


@dataclass(frozen=True, slots=True)
class ExperimentEntry:
    id: int
    name: str
    model: str
    strategy: str
    subject_key: str
    arms: tuple[ArmEntry, ...]
    shadows: tuple[ShadowEntry, ...]
    draw: WeightedDraw | None  # random and weighted
    hasher: HashAssigner | None  # hash-based


def effective_shares(
    *, weights: list[float], paused: list[bool], control: int = 0
) -> list[float]:
    """Shares with each paused arm's share handed to the control arm (the
    control itself is never paused)."""
    shares = [0.0 if p else w for w, p in zip(weights, paused, strict=True)]
    shares[control] += sum(w for w, p in zip(weights, paused, strict=True) if p)
    return shares


def subject_of(
    experiment: ExperimentEntry, body: dict, header: str | None, request_id: str
) -> tuple[str, str]:
    """The subject key of a request and where it came from: the body field
    the experiment names, else the X-Subject-Key header, else the request
    id (then every request is its own subject)."""
    value = body.get(experiment.subject_key)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = str(value)
        if 0 < len(value) <= 200:
            return value, experiment.subject_key
    if header and len(header) <= 200:
        return header, "header"
    return request_id, "request_id"


def arm_choose(
    experiment: ExperimentEntry,
    *,
    body: dict,
    header: str | None,
    request_id: str,
) -> tuple[ArmEntry, dict]:
    """The arm for one request and the routing note the response carries
    (why this arm)."""
    routing = {
        "reason": "experiment",
        "experiment": experiment.name,
        "strategy": experiment.strategy,
    }
    if experiment.hasher is not None:
        key, source = subject_of(experiment, body, header, request_id)
        arm = experiment.arms[experiment.hasher.choose(key)]
        routing["subject"] = source
        if arm.paused:
            routing["paused_arm"] = arm.name
            arm = experiment.arms[0]
    else:
        arm = experiment.arms[experiment.draw.choose()]
        if experiment.strategy == WEIGHTED:
            routing["share"] = round(arm.share, 4)
    routing["arm"] = arm.name
    return arm, routing
