"""Artifact files: where they may live, their digests, the seed's naming.

Loading a joblib file runs code from it, so every path is confined to
ARTIFACTS_ROOT and every load reads the bytes once, hashes them, compares
with the sha256 recorded at registration and only then unpickles those same
bytes (no window between the check and the load).
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from registry.errors import (
    ArtifactIntegrityError,
    ArtifactMissing,
    ArtifactPathError,
)

# The seed's convention: artifacts/model_v2.0.pkl beside its metadata JSON.
ARTIFACT_PATTERN = re.compile(r"^model_(?P<version>.+)\.(?P<ext>pkl|joblib)$")
FORMAT_BY_EXT = {"pkl": "joblib", "joblib": "joblib"}
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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


def read_verified(relative: str, expected_sha256: str) -> bytes:
    """The artifact's bytes, after checking them against the recorded
    digest. Raises ArtifactMissing or ArtifactIntegrityError, naming the
    file and the two digests."""
    path = resolve(relative)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactMissing(
            f"Artifact file {relative} is missing from the artifacts root.",
            details={"path": relative},
        ) from None
    except OSError as exc:
        raise ArtifactMissing(
            f"Artifact file {relative} cannot be read: {exc.strerror}.",
            details={"path": relative},
        ) from None
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ArtifactIntegrityError(
            f"Artifact file {relative} does not match its registered sha256: "
            f"expected {expected_sha256}, found {actual}. The file changed "
            "after registration; it will not be loaded.",
            details={
                "path": relative,
                "expected_sha256": expected_sha256,
                "actual_sha256": actual,
            },
        )
    return data


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
