"""Model runtimes: one small interface, one subclass per backend."""

from registry import artifacts
from registry.errors import ArtifactLoadError
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


def runtime_for(choice: str, *, compiled: bool, sklearn: bool = True) -> str:
    """The runtime that serves a version: its own choice, or MODEL_RUNTIME
    for "auto"; ONNX Runtime only when a validated compiled file exists
    (else scikit-learn, whatever was asked), and always when there is no
    scikit-learn form (an ONNX upload)."""
    from mlserving.conf import app_settings

    if compiled and not sklearn:
        return OnnxRuntime.name
    if choice == "auto":
        choice = app_settings.MODEL_RUNTIME
    if choice in ("auto", OnnxRuntime.name) and compiled:
        return OnnxRuntime.name
    return SklearnRuntime.name


def artifact_load(
    runtime: str, relative_path: str, sha256: str, *, trusted: tuple = ()
) -> ModelRuntime:
    """Read, verify and load one artifact file with `runtime` (no caching).
    Raises the ArtifactError subclasses (changed, missing or unloadable
    file)."""
    if not relative_path:
        raise ArtifactLoadError(
            f"No file for the {runtime} runtime: a version registered from "
            "a pickle before skops forms existed needs `manage.py "
            "compile_versions` once.",
            details={"runtime": runtime},
        )
    payload = artifacts.read_verified(relative_path, sha256)
    loaded = runtime_class(runtime)(payload, trusted=trusted)
    loaded.load()
    return loaded


def runtime_load(version) -> ModelRuntime:
    """Load the file a catalog VersionEntry serves (`artifact_path`,
    `sha256`, `runtime`: the compiled file when ONNX Runtime serves it),
    after checking the registered file it came from (`source_path`): a
    version whose artifact changed is refused whichever file serves it."""
    if getattr(version, "source_path", ""):
        artifacts.read_verified(version.source_path, version.source_sha256)
    return artifact_load(
        version.runtime,
        version.artifact_path,
        version.sha256,
        trusted=getattr(version, "trusted_types", ()),
    )


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
