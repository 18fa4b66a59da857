"""The registry as serving processes hold it in memory: immutable values
built by `selectors.serving_models()` from a handful of queries.

They are plain facts (which versions exist, their artifacts, which one the
alias names and which it named before); what a process does with them is
the data plane's business (mlserving/dataplane/)."""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class VersionEntry:
    id: int
    model: str
    version: str
    artifact_path: str
    sha256: str
    runtime: str
    status: str
    status_detail: str
    n_features: int | None
    classes: tuple
    # The registered artifact when the runtime serves a file derived from
    # it (the compiled one): verified too before loading, so a changed
    # source is refused whichever file serves.
    source_path: str = ""
    source_sha256: str = ""
    # skops: the types beyond skops' defaults accepted at registration.
    trusted_types: tuple = ()
    feature_names: tuple = ()

    @property
    def servable(self) -> bool:
        return self.status == "ready"

    @property
    def label(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    alias: str
    active: VersionEntry | None
    # Versions the alias pointed at before, newest first: what serves when
    # the active version's artifact cannot be loaded.
    previous: tuple[VersionEntry, ...]
    versions: dict[str, VersionEntry]
    # Every alias of the model (the default one too) and its version.
    aliases: dict[str, VersionEntry] = field(default_factory=dict)


def model_ref_split(ref: str | None) -> tuple[str | None, str | None]:
    """`model@alias` -> (model, alias); `model` -> (model, None). An empty
    model part (`@champion`) means the default model."""
    if not ref or "@" not in ref:
        return ref, None
    name, alias = ref.split("@", 1)
    return name or None, alias
