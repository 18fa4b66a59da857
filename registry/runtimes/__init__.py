"""Model runtimes: one small interface, one subclass per backend."""

from registry import artifacts
from registry.runtimes.base import ModelRuntime
from registry.runtimes.onnx import OnnxRuntime
from registry.runtimes.sklearn import SklearnRuntime

RUNTIMES: dict[str, type[ModelRuntime]] = {
    SklearnRuntime.name: SklearnRuntime,
    OnnxRuntime.name: OnnxRuntime,
}


def runtime_class(name: str) -> type[ModelRuntime]:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise LookupError(f"Unknown runtime {name!r}") from None


def runtime_for(choice: str, *, compiled: bool) -> str:
    """The runtime that serves a version: its own choice, or MODEL_RUNTIME
    for "auto"; ONNX Runtime only when a validated compiled file exists
    (else scikit-learn, whatever was asked)."""
    from mlserving.conf import app_settings

    if choice == "auto":
        choice = app_settings.MODEL_RUNTIME
    if choice in ("auto", OnnxRuntime.name) and compiled:
        return OnnxRuntime.name
    return SklearnRuntime.name


def artifact_load(runtime: str, relative_path: str, sha256: str) -> ModelRuntime:
    """Read, verify and load one artifact file with `runtime` (no caching).
    Raises the ArtifactError subclasses (changed, missing or unloadable
    file)."""
    payload = artifacts.read_verified(relative_path, sha256)
    loaded = runtime_class(runtime)(payload)
    loaded.load()
    return loaded


def runtime_load(version) -> ModelRuntime:
    """Load the file a catalog VersionEntry serves (`artifact_path`,
    `sha256`, `runtime`: the compiled file when ONNX Runtime serves it),
    after checking the registered file it came from (`source_path`): a
    version whose artifact changed is refused whichever file serves it."""
    if getattr(version, "source_path", ""):
        artifacts.read_verified(version.source_path, version.source_sha256)
    return artifact_load(version.runtime, version.artifact_path, version.sha256)


__all__ = [
    "ModelRuntime",
    "OnnxRuntime",
    "RUNTIMES",
    "SklearnRuntime",
    "artifact_load",
    "runtime_for",
    "runtime_class",
    "runtime_load",
]
