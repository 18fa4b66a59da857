"""The artifact store in object storage (ARTIFACT_STORE=s3, through
django-storages) against moto's S3 server on 127.0.0.1: the same
contract as the database store. An upload on one host is served by
another from the bucket; a damaged object marks the version failed; a
bucket that cannot be reached says nothing about the version."""

import hashlib

import boto3
import pytest

from registry import services, store
from registry.errors import ArtifactMissing
from registry.models import ArtifactObject
from tests.conftest import SEED_FEATURES, free_port

BUCKET = "mlserving-artifacts"


@pytest.fixture
def s3(settings, monkeypatch):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    settings.MLSERVING = {
        **settings.MLSERVING,
        "ARTIFACT_STORE": "s3",
        "ARTIFACT_S3_BUCKET": BUCKET,
        "ARTIFACT_S3_ENDPOINT_URL": endpoint,
        "ARTIFACT_S3_REGION": "us-east-1",
    }
    yield client
    server.stop()


def object_key(sha256: str) -> str:
    return f"artifacts/{sha256[:2]}/{sha256}"


def test_the_s3_store_keeps_objects_by_sha256_and_streams_them(s3, settings):
    settings.MLSERVING = {**settings.MLSERVING, "ARTIFACT_CACHE_DIR": "/nonexistent"}
    shared = store.artifact_store()
    data = bytes(range(256)) * 9000  # 2.3 MB: several reads
    sha256 = shared.put_bytes(data)
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert shared.has(sha256) and shared.size(sha256) == len(data)
    assert b"".join(shared.chunks(sha256)) == data
    head = s3.head_object(Bucket=BUCKET, Key=object_key(sha256))
    assert head["ContentLength"] == len(data)
    shared.check(sha256)
    assert shared.put_bytes(data) == sha256  # stored once
    shared.delete(sha256)
    assert not shared.has(sha256)
    with pytest.raises(store.StoreObjectMissing):
        shared.size(sha256)


def test_an_upload_is_served_by_another_host_from_the_bucket(
    s3, client, db, artifacts_root, estimators, settings, tmp_path
):
    import skops.io

    from mlserving.dataplane import serving

    uploaded = client.post(
        "/models/upload?model=default&version=v7",
        skops.io.dumps(estimators["lr"]),
        content_type="application/octet-stream",
    )
    assert uploaded.status_code == 201, uploaded.json()
    version = services.selectors.model_version_get(
        model=services.selectors.model_get(name="default"), version="v7"
    )
    # the files are in the bucket, not in the database store
    assert not ArtifactObject.objects.exists()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert object_key(version.skops_sha256) in keys
    # another host: empty artifacts root and cache
    (tmp_path / "b-root").mkdir()
    settings.ARTIFACTS_ROOT = tmp_path / "b-root"
    settings.MLSERVING = {
        **settings.MLSERVING,
        "ARTIFACT_CACHE_DIR": str(tmp_path / "b-cache"),
    }
    serving.reset()
    activated = client.post("/models/v7/activate", {}, content_type="application/json")
    assert activated.status_code == 200
    answer = client.post(
        "/predict", {"features": SEED_FEATURES}, content_type="application/json"
    )
    assert answer.status_code == 200 and answer.json()["model_version"] == "v7"
    assert any((tmp_path / "b-cache").rglob("*"))


def test_a_damaged_object_fails_the_version_an_unreachable_bucket_does_not(
    s3, client, db, artifacts_root, estimators, settings, tmp_path
):
    import skops.io

    client.post(
        "/models/upload?model=default&version=v8",
        skops.io.dumps(estimators["lr"]),
        content_type="application/octet-stream",
    )
    version = services.selectors.model_version_get(
        model=services.selectors.model_get(name="default"), version="v8"
    )
    # the host that uploaded it still has an intact copy: move away
    settings.ARTIFACTS_ROOT = tmp_path
    settings.MLSERVING = {
        **settings.MLSERVING,
        "ARTIFACT_CACHE_DIR": str(tmp_path / "c"),
    }
    # an unreachable bucket: nothing is said of the version
    good = settings.MLSERVING
    settings.MLSERVING = {
        **good,
        "ARTIFACT_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }
    with pytest.raises(ArtifactMissing):
        services.model_version_verify(version=version)
    version.refresh_from_db()
    assert version.status == "ready"
    # a damaged object: integrity_failed, for every host
    settings.MLSERVING = good
    s3.put_object(
        Bucket=BUCKET, Key=object_key(version.skops_sha256), Body=b"not the model"
    )
    services.model_version_verify(version=version)
    version.refresh_from_db()
    assert version.status == "integrity_failed"
    assert "shared store's copy changed" in version.status_detail
