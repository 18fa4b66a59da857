"""Artifact files: where they may live, their digests, the seed's naming.

Loading a joblib file runs code from it, so every path is confined to
ARTIFACTS_ROOT and every load reads the bytes once, hashes them, compares
with the sha256 recorded at registration and only then unpickles those same
bytes (no window between the check and the load). Bytes this host lacks
come from the shared artifact store, through its cache (registry/store.py).
"""

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

from registry import store
from registry.errors import (
    ArtifactIntegrityError,
    ArtifactMissing,
    ArtifactPathError,
)

# The seed's convention: artifacts/model_v2.0.pkl beside its metadata JSON.
ARTIFACT_PATTERN = re.compile(r"^model_(?P<version>.+)\.(?P<ext>pkl|joblib)$")
FORMAT_BY_EXT = {"pkl": "joblib", "joblib": "joblib"}
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

logger = logging.getLogger("registry")


def artifacts_root() -> Path:
    root = Path(settings.ARTIFACTS_ROOT).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def resolve(relative: str) -> Path:
    """The absolute path of a stored artifact path; ArtifactPathError if it
    is absolute, climbs with `..`, or resolves (through links) outside the
    artifacts root."""
    root = artifacts_root()
    candidate = Path(relative)
    if not relative or candidate.is_absolute() or ".." in candidate.parts:
        raise ArtifactPathError(
            f"Artifact path {relative!r} must be relative to the artifacts "
            "root and must not contain '..'.",
            details={"path": relative},
        )
    full = (root / candidate).resolve()
    if not full.is_relative_to(root):
        raise ArtifactPathError(
            f"Artifact path {relative!r} resolves outside the artifacts root.",
            details={"path": relative},
        )
    return full


def relative_to_root(path: Path) -> str | None:
    """`path` relative to the artifacts root, or None if it lies outside."""
    root = artifacts_root()
    full = Path(path).resolve()
    if not full.is_relative_to(root):
        return None
    return full.relative_to(root).as_posix()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _integrity_error(relative: str, expected: str, actual: str, where: str):
    return ArtifactIntegrityError(
        f"Artifact file {relative} does not match its registered sha256: "
        f"expected {expected}, found {actual}. {where} changed after "
        "registration; it will not be loaded.",
        details={
            "path": relative,
            "expected_sha256": expected,
            "actual_sha256": actual,
        },
    )


def _cached(expected_sha256: str) -> bytes | None:
    """The object from this host's cache when it is there and intact (a
    damaged cache file is this host's problem: removed, fetched again)."""
    path = store.cache_path(expected_sha256)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if sha256_hex(data) == expected_sha256:
        store.cache_touch(path)
        return data
    logger.warning("cached artifact %s is damaged; fetching it again", path)
    path.unlink(missing_ok=True)
    return None


def read_verified(relative: str, expected_sha256: str) -> bytes:
    """The artifact's bytes, checked against the recorded digest, from the
    first place that has them intact: this host's cache (by sha256), the
    file under ARTIFACTS_ROOT, the shared store (fetched into the cache,
    registry/store.py). A local file that differs is not loaded: the
    registered bytes come from the store instead.

    Raises ArtifactPathError for a stored path outside the root,
    ArtifactIntegrityError when the store's own copy does not match
    (corruption every host sees; names the file and both digests), and
    ArtifactMissing when this host cannot have the bytes (missing here,
    and the store has none or cannot be reached): a problem of this host
    only, never recorded on the version."""
    path = resolve(relative)
    shared = bool(store.SHA256_PATTERN.match(expected_sha256 or ""))
    if shared:
        data = _cached(expected_sha256)
        if data is not None:
            return data
    local = None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        local = "missing from the artifacts root"
    except OSError as exc:
        local = f"unreadable ({exc.strerror})"
    else:
        actual = sha256_hex(data)
        if actual == expected_sha256:
            return data
        if not shared:
            raise _integrity_error(relative, expected_sha256, actual, "The file")
        local = f"changed under the artifacts root (sha256 {actual})"
        logger.warning(
            "artifact %s %s; loading the registered bytes from the store",
            relative,
            local,
        )
    if not shared:
        raise ArtifactMissing(
            f"Artifact file {relative} is {local}.", details={"path": relative}
        )
    try:
        data = store.cache_fetch(expected_sha256).read_bytes()
    except store.StoreObjectCorrupt as exc:
        raise _integrity_error(
            relative,
            expected_sha256,
            exc.actual or str(exc),
            "The shared store's copy",
        ) from None
    except store.StoreObjectMissing:
        raise ArtifactMissing(
            f"Artifact file {relative} is {local} on this host, and the "
            "shared artifact store has no copy of it.",
            details={"path": relative, "sha256": expected_sha256},
        ) from None
    except (DatabaseError, store.StoreUnavailable, OSError) as exc:
        raise ArtifactMissing(
            f"Artifact file {relative} is {local} on this host, and it "
            f"could not be fetched from the shared store ({exc}).",
            details={"path": relative, "sha256": expected_sha256},
        ) from None
    if sha256_hex(data) != expected_sha256:  # changed under our feet
        store.cache_forget(expected_sha256)
        raise ArtifactMissing(
            f"Artifact file {relative}: the cached copy changed while read.",
            details={"path": relative, "sha256": expected_sha256},
        )
    return data


def local_copy(relative: str, expected_sha256: str) -> bytes | None:
    """Intact bytes of the artifact on this host (its cache or its
    artifacts root), without asking the store; None when there are none."""
    if store.SHA256_PATTERN.match(expected_sha256 or ""):
        data = _cached(expected_sha256)
        if data is not None:
            return data
    try:
        data = resolve(relative).read_bytes()
    except (OSError, ArtifactPathError):
        return None
    return data if sha256_hex(data) == expected_sha256 else None


@dataclass(frozen=True)
class DiscoveredArtifact:
    path: Path
    version: str
    format: str
    metadata: dict
    metadata_error: str | None = None


def metadata_candidates(artifact: Path) -> list[Path]:
    stem = artifact.name.rsplit(".", 1)[0]
    return [
        artifact.with_name(f"{stem}.json"),
        artifact.with_name(f"{stem}_metadata.json"),
        artifact.with_name(f"{stem}.metadata.json"),
    ]


def read_metadata(artifact: Path) -> tuple[dict, str | None]:
    """The metadata JSON beside an artifact, or ({}, reason)."""
    for candidate in metadata_candidates(artifact):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
            except (OSError, ValueError) as exc:
                return {}, f"{candidate.name}: {exc}"
            if not isinstance(data, dict):
                return {}, f"{candidate.name}: not a JSON object"
            return data, None
    return {}, None


def discover() -> list[DiscoveredArtifact]:
    """Artifacts named in the seed's convention directly in the root."""
    found = []
    for path in sorted(artifacts_root().iterdir()):
        match = ARTIFACT_PATTERN.match(path.name)
        if not match or not path.is_file():
            continue
        metadata, error = read_metadata(path)
        version = str(metadata.get("version") or match["version"])
        found.append(
            DiscoveredArtifact(
                path=path,
                version=version,
                format=FORMAT_BY_EXT[match["ext"]],
                metadata=metadata,
                metadata_error=error,
            )
        )
    return found
