"""Model runtimes: one small interface, one subclass per backend."""

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


__all__ = ["ModelRuntime", "RUNTIMES", "SklearnRuntime", "runtime_class"]
