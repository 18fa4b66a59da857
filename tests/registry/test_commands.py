"""The management commands, as an operator runs them."""

import json

import pytest
from django.core.management import CommandError, call_command

from registry.models import ModelAlias, ModelVersion
from tests.conftest import dump, flip_one_byte


def test_bootstrap_demo_trains_registers_and_activates_v1(db, artifacts_root, capsys):
    call_command("bootstrap_demo")
    versions = {v.version: v for v in ModelVersion.objects.all()}
    assert set(versions) == {"v1.0", "v2.0"}
    assert versions["v1.0"].model_type == "LogisticRegression"
    assert versions["v2.0"].model_type == "RandomForestClassifier"
    assert versions["v1.0"].n_features == 10
    for version in versions.values():
        assert 0.5 < version.accuracy <= 1.0
        metadata = json.loads(
            (artifacts_root / f"model_{version.version}.json").read_text()
        )
        assert set(metadata) >= {
            "version",
            "name",
            "accuracy",
            "created_at",
            "model_type",
        }
    assert ModelAlias.objects.get().version.version == "v1.0"
    assert "activated v1.0" in capsys.readouterr().err
    # a second run changes nothing
    call_command("bootstrap_demo")
    assert ModelVersion.objects.count() == 2


def test_register_model_with_activate(db, artifacts_root, estimators, tmp_path, capsys):
    path = dump(tmp_path, "clf.joblib", estimators["lr3"])
    call_command(
        "register_model", str(path), "--name", "iris", "--version", "v1", "--activate"
    )
    out = capsys.readouterr().out
    assert "registered iris:v1" in out and "activated iris:v1" in out
    assert ModelAlias.objects.get(model__name="iris").version.version == "v1"


def test_register_model_reports_errors_without_a_traceback(
    db, artifacts_root, tmp_path
):
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"junk")
    with pytest.raises(CommandError, match="neither a skops file"):
        call_command("register_model", str(junk), "--name", "m", "--version", "v1")


def test_sync_and_verify_report_a_changed_artifact(two_versions, capsys):
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    call_command("sync_artifacts")
    assert "CHANGED    default:v2.0" in capsys.readouterr().err
    with pytest.raises(CommandError):
        call_command("verify_artifacts")
    out = capsys.readouterr().out
    assert "integrity_failed  default:v2.0" in out
    assert "ready             default:v1.0" in out
