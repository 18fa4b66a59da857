"""The shared artifact store and this host's cache of it.

Every file a version is served from (the registered artifact, its skops
form, its ONNX conversion) is written once, at registration, to a store
every host can reach, addressed by its sha256. A host that lacks a file
(not in its ARTIFACTS_ROOT, not in its cache) fetches it into its cache,
ARTIFACT_CACHE_DIR/ab/abcdef..., hashing while it writes and renaming only
a complete, matching file into place.

What a host lacks is its own business: a file missing here that the store
cannot provide is reported by this host (registry.errors.ArtifactMissing)
and never written to the shared version row. Only the store's own copy
not matching its sha256 is corruption that takes a version out of
service everywhere (registry.services.model_version_verify).

One backend today, "database" (chunks in the registry's database, on
SQLite or PostgreSQL); `ArtifactStore` is the interface another one (an
object store) implements.
"""

import hashlib
import io
import logging
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction

from mlserving.conf import app_settings
from registry.models import ArtifactChunk, ArtifactObject

logger = logging.getLogger("registry")

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
READ_BYTES = 1 << 20


class StoreObjectMissing(Exception):
    """The store has no object with that sha256."""


class StoreUnavailable(Exception):
    """The store cannot be reached (object storage down, refused
    credentials): nothing can be said of the object."""


class StoreObjectCorrupt(Exception):
    """The store's object does not hash to its sha256 (or is not the size
    it was stored with)."""

    def __init__(self, sha256: str, actual: str, detail: str = ""):
        super().__init__(detail or f"expected {sha256}, found {actual}")
        self.sha256, self.actual = sha256, actual


def sha256_checked(sha256: str) -> str:
    """`sha256` when it is 64 lower-case hex digits (it becomes a file
    name in the cache); ValueError otherwise."""
    if not isinstance(sha256, str) or not SHA256_PATTERN.match(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return sha256


class ArtifactStore(ABC):
    """Content-addressed bytes shared by every host."""

    name = ""

    @abstractmethod
    def put_bytes(self, data: bytes, *, replace: bool = False) -> str:
        """Store `data` under its sha256 (a no-op when the store has it,
        unless `replace`: rewrite a copy found corrupt). The sha256."""

    @abstractmethod
    def put_file(self, path: Path, *, replace: bool = False) -> str:
        """Store the file at `path`; the sha256."""

    @abstractmethod
    def has(self, sha256: str) -> bool:
        """Whether the store has an object for `sha256`."""

    @abstractmethod
    def size(self, sha256: str) -> int:
        """The stored size in bytes; StoreObjectMissing."""

    @abstractmethod
    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The object's bytes, a piece at a time (bounded memory);
        StoreObjectMissing. The caller checks the digest."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Forget the object (nothing when there is none)."""

    def check(self, sha256: str) -> None:
        """Read the whole object and hash it: StoreObjectMissing,
        StoreObjectCorrupt, or nothing when it is intact."""
        expected = self.size(sha256)
        digest, seen = hashlib.sha256(), 0
        for piece in self.chunks(sha256):
            seen += len(piece)
            digest.update(piece)
        if seen != expected or digest.hexdigest() != sha256:
            raise StoreObjectCorrupt(sha256, digest.hexdigest())


class DatabaseStore(ArtifactStore):
    """Objects in the registry's own database: one ArtifactObject row and
    ARTIFACT_STORE_CHUNK_BYTES-sized ArtifactChunk rows. Writes are one
    transaction (a registration's rows and its objects commit together);
    reads take one chunk per query."""

    name = "database"

    def put_bytes(self, data: bytes, *, replace: bool = False) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        return self._put(sha256, len(data), lambda: io.BytesIO(data), replace)

    def put_file(self, path: Path, *, replace: bool = False) -> str:
        """Streams the file twice (hash, then chunks): never whole in
        memory."""
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            for piece in iter(lambda: handle.read(READ_BYTES), b""):
                digest.update(piece)
                size += len(piece)
        return self._put(digest.hexdigest(), size, lambda: open(path, "rb"), replace)

    def _put(self, sha256: str, size: int, opener, replace: bool) -> str:
        """Store what `opener()` reads (`size` bytes whose digest is
        `sha256`) in chunks, unless it is stored already."""
        chunk = max(1, app_settings.ARTIFACT_STORE_CHUNK_BYTES)
        with transaction.atomic():
            found = ArtifactObject.objects.filter(sha256=sha256).first()
            if found is not None and not replace:
                return sha256
            if found is not None:
                found.delete()
            stored = ArtifactObject.objects.create(
                sha256=sha256,
                size_bytes=size,
                chunk_bytes=chunk,
                chunk_count=(size + chunk - 1) // chunk,
            )
            with opener() as handle:
                for index, piece in enumerate(iter(lambda: handle.read(chunk), b"")):
                    ArtifactChunk.objects.create(
                        artifact=stored, index=index, data=piece
                    )
        return sha256

    def _object(self, sha256: str) -> ArtifactObject:
        found = ArtifactObject.objects.filter(sha256=sha256).first()
        if found is None:
            raise StoreObjectMissing(sha256)
        return found

    def has(self, sha256: str) -> bool:
        return ArtifactObject.objects.filter(sha256=sha256).exists()

    def size(self, sha256: str) -> int:
        return self._object(sha256).size_bytes

    def chunks(self, sha256: str) -> Iterator[bytes]:
        stored = self._object(sha256)
        for index in range(stored.chunk_count):
            piece = (
                ArtifactChunk.objects.filter(artifact=stored, index=index)
                .values_list("data", flat=True)
                .first()
            )
            if piece is None:
                raise StoreObjectCorrupt(
                    sha256, "", f"chunk {index} of {stored.chunk_count} is missing"
                )
            yield bytes(piece)  # memoryview on PostgreSQL

    def delete(self, sha256: str) -> None:
        ArtifactObject.objects.filter(sha256=sha256).delete()


class S3Store(ArtifactStore):
    """Objects in an S3 bucket (or any S3 API: MinIO, Ceph, moto), through
    django-storages: `<ARTIFACT_S3_PREFIX><ab>/<sha256>`. Credentials come
    from boto3's usual places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
    an instance or pod role). Writes are not part of the registration's
    transaction: an object stored for a registration that then failed is
    left behind, harmless (content-addressed, never served by itself)."""

    name = "s3"

    def __init__(self):
        from storages.backends.s3 import S3Storage

        self._storage = S3Storage(
            bucket_name=app_settings.ARTIFACT_S3_BUCKET,
            endpoint_url=app_settings.ARTIFACT_S3_ENDPOINT_URL or None,
            region_name=app_settings.ARTIFACT_S3_REGION or None,
            location=app_settings.ARTIFACT_S3_PREFIX.strip("/"),
            file_overwrite=True,
            default_acl=None,
            querystring_auth=False,
        )

    @staticmethod
    def _key(sha256: str) -> str:
        sha256 = sha256_checked(sha256)
        return f"{sha256[:2]}/{sha256}"

    def _call(self, sha256: str, action):
        """Run `action()`, in the store's own errors: a missing object is
        StoreObjectMissing, anything that keeps S3 from answering is
        StoreUnavailable."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return action()
        except FileNotFoundError:  # django-storages' word for a 404
            raise StoreObjectMissing(sha256) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise StoreObjectMissing(sha256) from None
            raise StoreUnavailable(f"S3: {exc}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"S3: {exc}") from None

    def put_bytes(self, data: bytes, *, replace: bool = False) -> str:
        from django.core.files.base import ContentFile

        sha256 = hashlib.sha256(data).hexdigest()
        if replace or not self.has(sha256):
            self._call(
                sha256, lambda: self._storage.save(self._key(sha256), ContentFile(data))
            )
        return sha256

    def put_file(self, path: Path, *, replace: bool = False) -> str:
        from django.core.files import File

        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for piece in iter(lambda: handle.read(READ_BYTES), b""):
                digest.update(piece)
        sha256 = digest.hexdigest()
        if replace or not self.has(sha256):
            with open(path, "rb") as handle:
                self._call(
                    sha256,
                    lambda: self._storage.save(self._key(sha256), File(handle)),
                )
        return sha256

    def has(self, sha256: str) -> bool:
        return self._call(sha256, lambda: self._storage.exists(self._key(sha256)))

    def size(self, sha256: str) -> int:
        return self._call(sha256, lambda: self._storage.size(self._key(sha256)))

    def chunks(self, sha256: str) -> Iterator[bytes]:
        key = self._key(sha256)
        body = self._call(
            sha256,
            lambda: self._storage.bucket.Object(
                self._storage._normalize_name(key)
            ).get()["Body"],
        )
        try:
            while True:
                piece = self._call(sha256, lambda: body.read(READ_BYTES))
                if not piece:
                    return
                yield piece
        finally:
            body.close()

    def delete(self, sha256: str) -> None:
        self._call(sha256, lambda: self._storage.delete(self._key(sha256)))


BACKENDS: dict[str, type[ArtifactStore]] = {
    DatabaseStore.name: DatabaseStore,
    S3Store.name: S3Store,
}


def artifact_store() -> ArtifactStore:
    """The configured store (ARTIFACT_STORE)."""
    name = app_settings.ARTIFACT_STORE
    try:
        return BACKENDS[name]()
    except KeyError:
        raise LookupError(
            f"ARTIFACT_STORE must be one of {sorted(BACKENDS)}; got {name!r}."
        ) from None


# --- This host's cache -------------------------------------------------------


def cache_root() -> Path:
    configured = app_settings.ARTIFACT_CACHE_DIR
    root = Path(configured) if configured else Path(settings.VAR_DIR) / "artifact-cache"
    return root.resolve()


def cache_path(sha256: str) -> Path:
    """Where this host keeps the object `sha256` (whether or not it is
    there): <cache>/ab/abcdef..."""
    sha256 = sha256_checked(sha256)
    return cache_root() / sha256[:2] / sha256


def cache_forget(sha256: str) -> None:
    cache_path(sha256).unlink(missing_ok=True)


_fetch_locks: dict[str, threading.Lock] = {}
_fetch_guard = threading.Lock()


def cache_fetch(sha256: str, *, store: ArtifactStore | None = None) -> Path:
    """The object `sha256` in this host's cache, fetched from the store
    when it is not there yet: streamed into a temporary file beside its
    place, hashed while written, never longer than the stored size, and
    renamed into place only when it matches. One fetch per object at a
    time in this process (others wait for it).

    StoreObjectMissing, StoreObjectCorrupt; OSError when this host cannot
    write its cache; database errors when the store cannot be reached."""
    target = cache_path(sha256)
    if target.is_file():
        return target
    with _fetch_guard:
        lock = _fetch_locks.setdefault(sha256, threading.Lock())
    with lock:
        if target.is_file():
            return target
        store = store or artifact_store()
        expected = store.size(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(
            f".{sha256}.{os.getpid()}.{threading.get_ident()}.part"
        )
        digest, written = hashlib.sha256(), 0
        try:
            with open(partial, "wb") as out:
                for piece in store.chunks(sha256):
                    written += len(piece)
                    if written > expected:
                        raise StoreObjectCorrupt(
                            sha256,
                            "",
                            f"longer than its stored size ({expected} bytes)",
                        )
                    digest.update(piece)
                    out.write(piece)
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            if written != expected or actual != sha256:
                raise StoreObjectCorrupt(sha256, actual)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        logger.info("fetched artifact %s (%d bytes) from the store", sha256, written)
    cache_prune(keep=target)
    return target


def cache_touch(path: Path) -> None:
    """Mark a cached object used now (pruning removes the least recently
    used first)."""
    try:
        os.utime(path)
    except OSError:
        pass


def cache_prune(*, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used objects of this host's cache until
    it holds at most ARTIFACT_CACHE_MAX_BYTES (0: no limit), never `keep`.
    A removed object is fetched again when it is needed; a model already
    loaded is in memory and does not need its file. What was removed."""
    limit = app_settings.ARTIFACT_CACHE_MAX_BYTES
    root = cache_root()
    if not limit or not root.is_dir():
        return []
    entries = []
    for path in root.glob("??/*"):
        if path.name.startswith("."):
            continue  # a fetch under way
        try:
            info = path.stat()
        except OSError:
            continue
        entries.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):
        if total <= limit:
            break
        if keep is not None and path == keep:
            continue
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    if removed:
        logger.info(
            "artifact cache over %d bytes: removed %d least recently used",
            limit,
            len(removed),
        )
    return removed
