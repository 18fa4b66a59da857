"""Which version answers a request, and why: the routing decision.

In order: an explicit `model_version`; else the model's running
experiment (unless `use_ab_testing` is false), by the experiment's
assignment rule; else the model's alias. Each way has its fallbacks: an
experiment arm whose artifact cannot be loaded hands the request to the
control; an active version that cannot be loaded hands it to the
versions the alias named before, newest first. The decision is a typed
value (`Routing`) that the response, the event and the shadow copy all
read; nothing mutates it.
"""

from dataclasses import dataclass, replace

from experiments.entries import WEIGHTED, ServingExperiment
from registry.entries import ModelEntry, VersionEntry, model_ref_split
from registry.errors import (
    AliasNotFound,
    ArtifactError,
    ModelNotFound,
    ModelVersionNotFound,
    NoActiveVersion,
)
from registry.runtimes import ModelRuntime

EXPLICIT = "explicit"
ALIAS = "alias"
FALLBACK = "fallback"
EXPERIMENT = "experiment"


@dataclass(frozen=True, slots=True)
class Routing:
    """Why this version answered; the response's `routing` object."""

    reason: str  # explicit | alias | fallback | experiment
    alias: str | None = None
    # fallback: the version the alias names, and why it could not serve
    wanted: str | None = None
    error: str | None = None
    experiment: str | None = None
    strategy: str | None = None
    arm: str | None = None  # the arm (version label) that answered
    subject: str | None = None  # hash-based: where the subject key came from
    share: float | None = None  # weighted: the arm's allocation
    paused_arm: str | None = None  # hash-based: the subject's paused arm
    fallback_from: str | None = None  # the arm that could not be loaded

    def as_dict(self) -> dict:
        body = {"reason": self.reason}
        for name in (
            "alias",
            "wanted",
            "error",
            "experiment",
            "strategy",
            "subject",
            "paused_arm",
            "share",
            "arm",
            "fallback_from",
        ):
            value = getattr(self, name)
            if value is not None or (name == "error" and self.reason == FALLBACK):
                body[name] = value
        return body


@dataclass(frozen=True, slots=True)
class Choice:
    """The versions that may answer one request, in order of preference,
    and the decision for the first."""

    model: ModelEntry
    candidates: tuple[VersionEntry, ...]
    routing: Routing
    experiment: ServingExperiment | None = None

    def routing_for(self, index: int, error: ArtifactError | None) -> Routing:
        """The decision when candidate `index` answers after the one before
        it failed with `error`."""
        if index == 0:
            return self.routing
        code = error.code if error is not None else None
        if self.experiment is not None:
            return replace(
                self.routing,
                arm=self.experiment.control.name,
                fallback_from=self.routing.arm,
                error=code,
            )
        return Routing(
            FALLBACK,
            alias=self.model.alias,
            wanted=self.candidates[0].version,
            error=code,
        )


@dataclass(frozen=True, slots=True)
class Target:
    """The version that answers, loaded, and why."""

    version: VersionEntry
    runtime: ModelRuntime
    routing: Routing
    experiment: ServingExperiment | None = None


def model_entry(models: dict, default: str | None, name: str | None) -> ModelEntry:
    key = name or default
    model = models.get(key) if key else None
    if model is None:
        if name:
            raise ModelNotFound.named(name)
        raise ModelNotFound.no_default(list(models))
    return model


def choose(
    snapshot,
    *,
    model: str | None,
    version: str | None,
    use_experiment: bool,
    body: dict,
    request_id: str,
    subject_header: str | None,
) -> Choice:
    """Where a request goes (memory only). ModelNotFound,
    ModelVersionNotFound, NoActiveVersion."""
    name, alias = model_ref_split(model)
    entry = model_entry(snapshot.models, snapshot.default_model, name)
    if alias is not None and version is None:
        # `model@alias`: the version the alias names, as asked (no
        # experiment); the default alias keeps its fallbacks.
        if alias == entry.alias:
            use_experiment = False
        else:
            target = entry.aliases.get(alias)
            if target is None:
                raise AliasNotFound.of(entry.name, alias, available=entry.aliases)
            return Choice(entry, (target,), Routing(ALIAS, alias=alias))
    if version is not None:
        target = entry.versions.get(version)
        if target is None:
            raise ModelVersionNotFound.of(entry.name, version, available=entry.versions)
        return Choice(entry, (target,), Routing(EXPLICIT))
    experiment = snapshot.experiments.get(entry.name) if use_experiment else None
    if experiment is not None:
        assignment = experiment.assign(
            body=body, header=subject_header, request_id=request_id
        )
        arm = assignment.arm
        candidates = (snapshot.versions[arm.version_id],)
        if arm is not experiment.control:
            candidates += (snapshot.versions[experiment.control.version_id],)
        routing = Routing(
            EXPERIMENT,
            experiment=experiment.name,
            strategy=experiment.strategy,
            arm=arm.name,
            subject=assignment.subject,
            paused_arm=assignment.paused_arm,
            share=round(arm.share, 4) if experiment.strategy == WEIGHTED else None,
        )
        return Choice(entry, candidates, routing, experiment)
    if entry.active is None:
        raise NoActiveVersion(
            f"Model {entry.name!r} has no active version; activate one with "
            "POST /models/{version}/activate.",
            details={"model": entry.name},
        )
    return Choice(
        entry, (entry.active, *entry.previous), Routing(ALIAS, alias=entry.alias)
    )


def resolve(choice: Choice, runtime_of) -> Target | None:
    """The first candidate whose runtime `runtime_of(entry)` gives.
    `runtime_of` raises ArtifactError for a version that cannot serve, or
    returns None when it would have to load one (memory-only callers):
    then resolve returns None. Raises the last ArtifactError when no
    candidate can serve."""
    error: ArtifactError | None = None
    for index, entry in enumerate(choice.candidates):
        try:
            runtime = runtime_of(entry)
        except ArtifactError as exc:
            error = exc
            continue
        if runtime is None:
            return None
        return Target(
            entry, runtime, choice.routing_for(index, error), choice.experiment
        )
    assert error is not None
    raise error
