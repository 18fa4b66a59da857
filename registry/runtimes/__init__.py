"""Model runtimes: one small interface, one subclass per backend."""

from registry import artifacts
from registry.runtimes.base import ModelRuntime
from registry.runtimes.sklearn import SklearnRuntime

RUNTIMES: dict[str, type[ModelRuntime]] = {
    SklearnRuntime.name: SklearnRuntime,
}


def runtime_class(name: str) -> type[ModelRuntime]:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise LookupError(f"Unknown runtime {name!r}") from None


def runtime_load(version) -> ModelRuntime:
    """Read, verify and load one version's artifact (no caching).
    `version` is anything with `artifact_path`, `sha256` and `runtime`: a
    ModelVersion row or a catalog VersionEntry. Raises the ArtifactError
    subclasses (changed, missing or unloadable file)."""
    payload = artifacts.read_verified(version.artifact_path, version.sha256)
    runtime = runtime_class(version.runtime)(payload)
    runtime.load()
    return runtime


__all__ = [
    "ModelRuntime",
    "RUNTIMES",
    "SklearnRuntime",
    "runtime_class",
    "runtime_load",
]
