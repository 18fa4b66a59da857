"""The shared artifact store (registry/store.py): a version registered on
one host is loaded on another that has none of its files; corruption is
seen by the store; a file missing on one host never changes the shared
row; big files are stored in chunks."""

import hashlib
import importlib
import logging
import os

import pytest
from django.apps import apps

from mlserving.dataplane import serving
from registry import artifacts, services, store
from registry.errors import ArtifactIntegrityError, ArtifactMissing
from registry.models import ArtifactChunk, ArtifactObject, ModelVersion
from registry.runtimes import runtime_load
from tests.conftest import NAMES, SEED_FEATURES, dump, expected_label


def predict(client, **body):
    return client.post(
        "/predict",
        {"features": SEED_FEATURES, **body},
        content_type="application/json",
    )


@pytest.fixture
def other_host(settings, tmp_path):
    """other_host() -> switch this process to another "host": an empty
    ARTIFACTS_ROOT and an empty cache of the store, nothing loaded; the
    same database. Returns (root, cache)."""

    def switch(name: str = "b"):
        root, cache = tmp_path / f"{name}-artifacts", tmp_path / f"{name}-cache"
        root.mkdir()
        settings.ARTIFACTS_ROOT = root
        settings.MLSERVING = {**settings.MLSERVING, "ARTIFACT_CACHE_DIR": str(cache)}
        serving.reset()
        return root, cache

    return switch


def cached_files(cache) -> set[str]:
    return {p.name for p in cache.rglob("*") if p.is_file()}


def damage_stored(sha256: str) -> None:
    chunk = ArtifactChunk.objects.filter(artifact__sha256=sha256).first()
    data = bytearray(chunk.data)
    data[len(data) // 2] ^= 0x01
    ArtifactChunk.objects.filter(pk=chunk.pk).update(data=bytes(data))


def test_registration_writes_every_file_of_the_version_to_the_store(two_versions):
    for version in (two_versions["v1"], two_versions["v2"]):
        stored = set(ArtifactObject.objects.values_list("sha256", flat=True))
        assert {
            version.sha256,
            version.skops_sha256,
            version.compiled_sha256,
        } <= stored


def test_a_version_registered_on_one_host_is_served_by_another_from_the_store(
    client, two_versions, estimators, other_host
):
    # given: v1.0 and v2.0 registered on host A; host B has no file
    root, cache = other_host()
    assert list(root.iterdir()) == []
    # when: host B serves v2.0
    response = predict(client, model_version="v2.0")
    # then: fetched into its cache by sha256 and served
    assert response.status_code == 200, response.json()
    assert response.json()["model_version"] == "v2.0"
    assert response.json()["prediction"] == expected_label(
        estimators["rf"], SEED_FEATURES
    )
    v2 = two_versions["v2"]
    served = v2.compiled_sha256 if v2.serving_runtime == "onnx" else v2.skops_sha256
    assert served in cached_files(cache)
    assert (cache / served[:2] / served).read_bytes() == b"".join(
        store.artifact_store().chunks(served)
    )
    assert list(root.iterdir()) == []  # the artifacts root is not written
    v2.refresh_from_db()
    assert v2.status == "ready"


def test_an_upload_on_one_host_is_activated_and_served_on_another(
    client, db, artifacts_root, estimators, other_host
):
    import skops.io

    # given: a skops upload on host A
    body = skops.io.dumps(estimators["lr"])
    uploaded = client.post(
        "/models/upload?model=default&version=v5",
        body,
        content_type="application/octet-stream",
    )
    assert uploaded.status_code == 201, uploaded.json()
    # when: host B activates it and serves it
    other_host()
    assert (
        client.post(
            "/models/v5/activate", {}, content_type="application/json"
        ).status_code
        == 200
    )
    response = predict(client)
    # then
    assert response.status_code == 200
    assert response.json()["model_version"] == "v5"


def test_a_file_missing_on_this_host_and_in_the_store_never_changes_the_row(
    client, two_versions, other_host, caplog
):
    # given: host B lacks v2.0's files and the store lost them too
    v2 = two_versions["v2"]
    ArtifactObject.objects.filter(
        sha256__in=[v2.sha256, v2.skops_sha256, v2.compiled_sha256]
    ).delete()
    other_host()
    # when: host B is asked for it, checks it, verifies everything
    response = predict(client, model_version="v2.0")
    with pytest.raises(ArtifactMissing):
        services.model_version_verify(version=v2)
    report = dict((label, status) for label, status, _ in services.artifacts_verify())
    # then: refused here, reported here, and the shared row says ready
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "artifact_missing"
    assert "shared artifact store has no copy" in response.json()["error"]["message"]
    assert report == {"default:v1.0": "ready", "default:v2.0": "unavailable"}
    v2.refresh_from_db()
    assert (v2.status, v2.status_detail) == ("ready", "")
    assert any("v2.0" in line for line in client.get("/health").json()["problems"])
    # and activation from this host is refused without moving anything
    refused = client.post("/models/v2.0/activate", {}, content_type="application/json")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "artifact_missing"
    v2.refresh_from_db()
    assert v2.status == "ready"


def test_a_host_retries_a_missing_file_once_the_store_has_it(
    client, two_versions, other_host, settings
):
    # given: host B asked for v2.0 while the store lacked its files
    v2 = two_versions["v2"]
    saved = {
        sha: b"".join(store.artifact_store().chunks(sha))
        for sha in (v2.sha256, v2.skops_sha256, v2.compiled_sha256)
    }
    ArtifactObject.objects.filter(sha256__in=saved).delete()
    other_host()
    settings.MLSERVING = {**settings.MLSERVING, "ARTIFACT_MISS_RETRY": 0.0}
    assert predict(client, model_version="v2.0").status_code == 422
    # when: another host puts them back (its verify_artifacts, say)
    for data in saved.values():
        store.artifact_store().put_bytes(data)
    # then: served without any restart
    response = predict(client, model_version="v2.0")
    assert response.status_code == 200
    assert response.json()["model_version"] == "v2.0"


def test_a_damaged_store_copy_is_corruption_and_marks_the_version(
    client, two_versions, other_host
):
    # given: the store's copy of v2.0's serving file is damaged
    v2 = two_versions["v2"]
    served = v2.compiled_sha256 if v2.serving_runtime == "onnx" else v2.skops_sha256
    damage_stored(served)
    root, cache = other_host()
    # when: a host without the file loads it
    response = predict(client, model_version="v2.0")
    # then: the fetch refused it (no partial file left) and the version is
    # out of service everywhere
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "artifact_integrity_error"
    assert error["details"]["expected_sha256"] == served
    assert error["details"]["actual_sha256"] != served
    assert served not in cached_files(cache)
    assert not [name for name in cached_files(cache) if name.endswith(".part")]
    v2.refresh_from_db()
    assert v2.status == "integrity_failed"
    assert "shared store's copy" in v2.status_detail


def test_verify_finds_a_damaged_store_copy_without_loading_anything(two_versions):
    v2 = two_versions["v2"]
    damage_stored(v2.sha256)  # the registered pickle: never loaded anyway
    with pytest.raises(store.StoreObjectCorrupt):
        store.artifact_store().check(v2.sha256)
    # the host that registered it still has an intact copy: the store is
    # repaired from it and the version stays in service
    assert services.model_version_verify(version=v2).status == "ready"
    store.artifact_store().check(v2.sha256)
    # with no intact copy anywhere, it is corruption
    damage_stored(v2.sha256)
    (two_versions["root"] / v2.artifact_path).unlink()
    assert services.model_version_verify(version=v2).status == "integrity_failed"


def test_a_changed_local_file_is_not_loaded_and_not_recorded(
    client, two_versions, caplog
):
    # given: v2.0's ONNX file changes on this host only
    v2 = two_versions["v2"]
    path = artifacts.resolve(v2.compiled_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    # when
    with caplog.at_level(logging.WARNING, logger="registry"):
        response = predict(client, model_version="v2.0")
    # then: the registered bytes came from the store; nothing was marked
    assert response.status_code == 200
    assert response.json()["model_version"] == "v2.0"
    assert "changed under the artifacts root" in caplog.text
    v2.refresh_from_db()
    assert v2.status == "ready"


def test_a_damaged_cache_file_is_fetched_again(two_versions, other_host):
    _, cache = other_host()
    entry = serving.catalog.snapshot().models["default"].versions["v2.0"]
    runtime_load(entry).unload()
    cached = cache / entry.sha256[:2] / entry.sha256
    cached.write_bytes(b"damaged on this host's disk")
    serving.reset()
    runtime_load(entry).unload()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == entry.sha256


def test_a_big_file_is_stored_in_chunks_and_fetched_whole(
    db, tmp_path, settings, other_host
):
    # given: 9 MiB + 1 byte with the default 4 MiB chunks
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024 + 1))
    sha256 = store.artifact_store().put_file(big)
    # then: three rows of at most 4 MiB, in order
    stored = ArtifactObject.objects.get(sha256=sha256)
    sizes = [
        len(bytes(d))
        for d in ArtifactChunk.objects.filter(artifact=stored)
        .order_by("index")
        .values_list("data", flat=True)
    ]
    assert sizes == [4 * 1024 * 1024, 4 * 1024 * 1024, 1 + 1024 * 1024]
    assert (stored.size_bytes, stored.chunk_count) == (big.stat().st_size, 3)
    # and a host fetches it whole, under its sha256
    _, cache = other_host()
    fetched = store.cache_fetch(sha256)
    assert fetched == cache / sha256[:2] / sha256
    assert fetched.read_bytes() == big.read_bytes()
    # putting it again (or as bytes) stores nothing twice
    assert store.artifact_store().put_bytes(big.read_bytes()) == sha256
    assert ArtifactObject.objects.count() == 1


def test_a_version_stored_in_small_chunks_loads_on_another_host(
    client, db, artifacts_root, estimators, settings, other_host
):
    settings.MLSERVING = {**settings.MLSERVING, "ARTIFACT_STORE_CHUNK_BYTES": 4096}
    version = services.model_version_register(
        model_name="default",
        version="v1.0",
        source=dump(artifacts_root, "model_v1.0.pkl", estimators["rf"]),
        metadata={"feature_names": NAMES},
    )
    services.model_version_activate(version=version)
    assert ArtifactObject.objects.get(sha256=version.skops_sha256).chunk_count > 5
    other_host()
    response = predict(client)
    assert response.status_code == 200
    assert response.json()["prediction"] == expected_label(
        estimators["rf"], SEED_FEATURES
    )


def test_a_store_that_sends_more_than_it_stored_is_refused(db, other_host):
    sha256 = store.artifact_store().put_bytes(b"x" * 100)
    ArtifactObject.objects.filter(sha256=sha256).update(size_bytes=10)
    _, cache = other_host()
    with pytest.raises(store.StoreObjectCorrupt, match="longer than its stored"):
        store.cache_fetch(sha256)
    assert cached_files(cache) == set()


def test_cache_paths_are_only_ever_sha256_names(db):
    for bad in ("../../etc/passwd", "ab", "A" * 64, ""):
        with pytest.raises(ValueError):
            store.cache_path(bad)


def test_versions_registered_before_the_store_are_imported_by_the_migration(
    two_versions, other_host
):
    # given: rows whose files are only on this host's disk
    ArtifactObject.objects.all().delete()
    migration = importlib.import_module("registry.migrations.0004_artifact_store")
    # when
    migration.import_existing_files(apps, None)
    # then: another host serves them
    v2 = two_versions["v2"]
    assert (
        ArtifactObject.objects.filter(
            sha256__in=[v2.sha256, v2.skops_sha256, v2.compiled_sha256]
        ).count()
        == 3
    )
    other_host()
    entry = serving.catalog.snapshot().models["default"].versions["v2.0"]
    runtime_load(entry).unload()


def test_verify_and_sync_add_what_the_store_lacks_from_this_host(two_versions):
    ArtifactObject.objects.all().delete()
    services.artifacts_sync()
    assert ArtifactObject.objects.filter(sha256=two_versions["v1"].sha256).exists()
    report = services.artifacts_verify()
    assert {status for _, status, _ in report} == {"ready"}
    for version in ModelVersion.objects.all():
        for sha in (version.sha256, version.skops_sha256, version.compiled_sha256):
            store.artifact_store().check(sha)


def test_a_missing_row_file_is_never_marked_by_a_serving_process(
    two_versions, other_host
):
    v1 = two_versions["v1"]
    ArtifactObject.objects.all().delete()
    other_host()
    services.model_version_mark_failed_by_id(
        version_id=v1.pk, error=ArtifactMissing("not here")
    )
    v1.refresh_from_db()
    assert v1.status == "ready"
    services.model_version_mark_failed_by_id(
        version_id=v1.pk, error=ArtifactIntegrityError("damaged")
    )
    v1.refresh_from_db()
    assert v1.status == "integrity_failed"


def test_verify_artifacts_reports_a_local_miss_without_touching_the_row(
    two_versions, other_host, capsys
):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    v2 = two_versions["v2"]
    ArtifactObject.objects.filter(sha256=v2.compiled_sha256).delete()
    other_host()
    with pytest.raises(CommandError):
        call_command("verify_artifacts")
    out = capsys.readouterr().out
    assert "unavailable       default:v2.0" in out
    assert "ready             default:v1.0" in out
    v2.refresh_from_db()
    assert v2.status == "ready"


def test_the_cache_keeps_under_its_limit_removing_the_least_recently_used(
    db, settings, tmp_path
):
    cache = tmp_path / "cache"
    settings.MLSERVING = {
        **settings.MLSERVING,
        "ARTIFACT_CACHE_DIR": str(cache),
        "ARTIFACT_CACHE_MAX_BYTES": 2500,
    }
    objects = [os.urandom(1000) for _ in range(3)]
    digests = [store.artifact_store().put_bytes(data) for data in objects]
    first, second = (store.cache_fetch(d) for d in digests[:2])
    os.utime(first, (1, 1))  # used long ago
    os.utime(second, (2, 2))
    # a hit makes the first object the most recently used
    assert artifacts._cached(digests[0]) == objects[0]
    third = store.cache_fetch(digests[2])
    # 3,000 bytes > 2,500: the least recently used (second) goes
    assert cached_files(cache) == {digests[0], digests[2]}
    assert third.is_file()
    # needed again, it is fetched again (and another goes)
    assert store.cache_fetch(digests[1]).read_bytes() == objects[1]
    assert len(cached_files(cache)) == 2
