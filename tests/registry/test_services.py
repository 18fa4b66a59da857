"""Registry services and selectors, without HTTP."""

import os

import pytest

from registry import artifacts, generation, services
from registry.errors import (
    ArtifactIntegrityError,
    ArtifactLoadError,
    ArtifactPathError,
    NoPreviousVersion,
    VersionExists,
)
from registry.models import ModelVersion, RegistryState
from tests.conftest import dump, flip_one_byte


def test_register_records_digest_size_and_signature(db, artifacts_root, estimators):
    path = dump(artifacts_root, "model_v1.0.pkl", estimators["lr"])
    version = services.model_version_register(
        model_name="default",
        version="v1.0",
        source=path,
        metadata={"accuracy": 0.91, "name": "Model v1.0"},
    )
    assert version.sha256 == artifacts.file_sha256(path)
    assert version.size_bytes == path.stat().st_size
    assert version.model_type == "LogisticRegression"
    assert (version.n_features, version.classes) == (10, [0, 1])
    assert version.metrics == {"accuracy": 0.91}
    assert version.artifact_path == "model_v1.0.pkl"


def test_register_copies_files_from_outside_the_root(
    db, artifacts_root, estimators, tmp_path
):
    outside = dump(tmp_path / "elsewhere", "clf.joblib", estimators["lr3"])
    version = services.model_version_register(
        model_name="iris", version="v3", source=outside
    )
    assert version.artifact_path == "iris/v3/clf.joblib"
    assert (artifacts_root / "iris" / "v3" / "clf.joblib").is_file()
    assert version.n_features == 3


def test_register_twice_is_refused(db, artifacts_root, estimators):
    path = dump(artifacts_root, "a.pkl", estimators["lr"])
    services.model_version_register(model_name="m", version="v1", source=path)
    with pytest.raises(VersionExists):
        services.model_version_register(model_name="m", version="v1", source=path)


def test_register_refuses_a_non_model_file(db, artifacts_root):
    path = artifacts_root / "junk.pkl"
    path.write_bytes(b"definitely not a pickle")
    with pytest.raises(ArtifactLoadError):
        services.model_version_register(model_name="m", version="v1", source=path)
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize(
    "stored",
    ["../outside.pkl", "/etc/passwd", "a/../../b.pkl", ""],
    ids=["dotdot", "absolute", "nested-dotdot", "empty"],
)
def test_stored_paths_cannot_leave_the_root(artifacts_root, stored):
    with pytest.raises(ArtifactPathError):
        artifacts.resolve(stored)


def test_symlink_out_of_the_root_is_refused(artifacts_root, tmp_path):
    target = tmp_path / "secret.pkl"
    target.write_bytes(b"x")
    os.symlink(target, artifacts_root / "link.pkl")
    with pytest.raises(ArtifactPathError):
        artifacts.resolve("link.pkl")


def test_read_verified_names_the_file_and_both_digests(two_versions):
    v2 = two_versions["v2"]
    flip_one_byte(two_versions["root"] / v2.artifact_path)
    with pytest.raises(ArtifactIntegrityError) as caught:
        artifacts.read_verified(v2.artifact_path, v2.sha256)
    assert "model_v2.0.pkl" in caught.value.message
    assert caught.value.details["expected_sha256"] == v2.sha256
    assert caught.value.details["actual_sha256"] != v2.sha256


def test_every_write_moves_the_generation(two_versions):
    before = generation.registry_generation()
    services.model_version_activate(version=two_versions["v2"])
    assert generation.registry_generation() == before + 1
    assert RegistryState.objects.get().generation == before + 1


def test_rollback_skips_versions_that_can_no_longer_be_served(
    db, artifacts_root, estimators
):
    # given: v1 -> v2 -> v3 activated, and v2's file is corrupted
    versions = {}
    for name in ("v1", "v2", "v3"):
        path = dump(artifacts_root, f"{name}.pkl", estimators["lr"])
        versions[name] = services.model_version_register(
            model_name="m", version=name, source=path
        )
        services.model_version_activate(version=versions[name])
    flip_one_byte(artifacts_root / "v2.pkl")
    model = versions["v1"].model
    # when
    change = services.model_rollback(model=model)
    # then: v2 is marked and skipped, v1 serves
    assert (change.from_label, change.to_label) == ("v3", "v1")
    versions["v2"].refresh_from_db()
    assert versions["v2"].status == "integrity_failed"
    with pytest.raises(NoPreviousVersion):
        services.model_rollback(model=model)


def test_activation_stack_undoes_like_a_stack(db, artifacts_root, estimators):
    versions = {}
    for name in ("a", "b", "c"):
        path = dump(artifacts_root, f"{name}.pkl", estimators["lr"])
        versions[name] = services.model_version_register(
            model_name="m", version=name, source=path
        )
    model = versions["a"].model
    for name in ("a", "b", "c"):
        services.model_version_activate(version=versions[name])
    labels = []
    for _ in range(2):
        labels.append(services.model_rollback(model=model).to_label)
    services.model_version_activate(version=versions["c"])
    labels.append(services.model_rollback(model=model).to_label)
    assert labels == ["b", "a", "a"]


def test_verify_restores_a_repaired_artifact(two_versions):
    path = two_versions["root"] / "model_v2.0.pkl"
    original = path.read_bytes()
    flip_one_byte(path)
    v2 = services.model_version_verify(version=two_versions["v2"])
    assert v2.status == "integrity_failed"
    path.write_bytes(original)
    assert services.model_version_verify(version=v2).status == "ready"


def test_sync_registers_the_seed_convention_and_activates_default(
    db, artifacts_root, estimators, settings
):
    dump(artifacts_root, "model_v1.0.pkl", estimators["lr"])
    (artifacts_root / "model_v1.0.json").write_text(
        '{"version": "v1.0", "name": "Model v1.0", "accuracy": 0.95, '
        '"created_at": "2024-01-01T00:00:00", "model_type": "LogisticRegression"}'
    )
    dump(artifacts_root, "model_v2.0.pkl", estimators["rf"])
    report = services.artifacts_sync()
    assert sorted(report.registered) == ["default:v1.0", "default:v2.0"]
    assert report.activated == "v1.0"
    v1 = ModelVersion.objects.get(version="v1.0")
    assert v1.accuracy == 0.95
    assert v1.created_at.year == 2024
    # a second sync changes nothing; a changed file is reported, not re-registered
    flip_one_byte(artifacts_root / "model_v2.0.pkl")
    again = services.artifacts_sync()
    assert again.registered == [] and again.changed == ["default:v2.0"]


def test_a_refused_file_from_outside_leaves_no_copy(db, artifacts_root, tmp_path):
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a model")
    with pytest.raises(ArtifactLoadError):
        services.model_version_register(model_name="m", version="v1", source=junk)
    assert not (artifacts_root / "m" / "v1" / "junk.joblib").exists()


def test_sync_refuses_an_artifact_whose_metadata_is_broken(
    db, artifacts_root, estimators
):
    dump(artifacts_root, "model_v1.0.pkl", estimators["lr"])
    (artifacts_root / "model_v1.0.json").write_text('{"accuracy": 0.9,')
    report = services.artifacts_sync()
    assert report.registered == []
    assert report.failed and "model_v1.0.json" in report.failed[0]
    assert not ModelVersion.objects.exists()
