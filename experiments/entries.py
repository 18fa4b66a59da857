"""Running experiments as serving processes hold them in memory, built by
`selectors.experiments_serving()` whenever the registry generation moves,
and the assignment rule that picks an arm for one request.

Assignment reads memory only: one weighted draw, or one hash and a bisect.
Arms name their versions by id; the data plane's catalog resolves them.
"""

from dataclasses import dataclass

from experiments.strategies import HashAssigner, WeightedDraw

RANDOM = "random"
HASH = "hash-based"
WEIGHTED = "weighted"
# The header that names the subject when the body does not.
SUBJECT_HEADER = "X-Subject-Key"
MAX_SUBJECT_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ServingArm:
    name: str  # the version label: what responses and events call the arm
    version_id: int
    weight: float  # as configured
    # The share it gets now: the configured weight, or the bandit's
    # allocation; 0 while paused (the control takes that traffic).
    share: float
    paused: bool


@dataclass(frozen=True, slots=True)
class ServingShadow:
    version_id: int
    fraction: float  # of the experiment's requests that get mirrored


@dataclass(frozen=True, slots=True)
class Assignment:
    arm: ServingArm  # the arm that answers
    # hash-based: where the subject key came from (the body field's name,
    # "header" or "request_id")
    subject: str | None = None
    # hash-based: the subject's own arm, when it is paused (the control
    # answers instead)
    paused_arm: str | None = None


@dataclass(frozen=True, slots=True)
class ServingExperiment:
    id: int
    name: str
    model: str
    strategy: str
    subject_key: str  # the body field that names the subject
    arms: tuple[ServingArm, ...]  # the first is the control
    shadows: tuple[ServingShadow, ...]
    draw: WeightedDraw | None  # random and weighted
    hasher: HashAssigner | None  # hash-based

    @property
    def control(self) -> ServingArm:
        return self.arms[0]

    def version_ids(self) -> set[int]:
        """Versions this experiment serves: its arms and shadows."""
        return {a.version_id for a in self.arms} | {s.version_id for s in self.shadows}

    def subject_of(
        self, body: dict, header: str | None, request_id: str
    ) -> tuple[str, str]:
        """The subject key of a request and where it came from: the body
        field the experiment names, else the X-Subject-Key header, else the
        request id (then every request is its own subject)."""
        value = body.get(self.subject_key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = str(value)
            if 0 < len(value) <= MAX_SUBJECT_LENGTH:
                return value, self.subject_key
        if header and len(header) <= MAX_SUBJECT_LENGTH:
            return header, "header"
        return request_id, "request_id"

    def assign(self, *, body: dict, header: str | None, request_id: str) -> Assignment:
        """The arm that answers one request. Hash-based: the subject's
        bucket decides, and a paused arm's subjects go to the control;
        random and weighted: a draw with the current shares (a paused arm's
        share is already the control's)."""
        if self.hasher is not None:
            key, source = self.subject_of(body, header, request_id)
            arm = self.arms[self.hasher.choose(key)]
            if arm.paused:
                return Assignment(self.control, subject=source, paused_arm=arm.name)
            return Assignment(arm, subject=source)
        return Assignment(self.arms[self.draw.choose()])


def effective_shares(
    *, weights: list[float], paused: list[bool], control: int = 0
) -> list[float]:
    """Shares with each paused arm's share handed to the control arm (the
    control itself is never paused)."""
    shares = [0.0 if p else w for w, p in zip(weights, paused, strict=True)]
    shares[control] += sum(w for w, p in zip(weights, paused, strict=True) if p)
    return shares
