"""The scriptable commands (models, activate, rollback, alias, experiment)
as an operator's script runs them: --json output parsed, exit statuses
checked, and the changes seen through the HTTP API."""

import io
import json
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from experiments import services as experiment_services
from mlserving import errors
from mlserving.commands import ScriptableCommand, exit_status_of
from registry.models import AliasChange, ModelAlias
from tests.conftest import ROOT, flip_one_byte


def cli(*args) -> dict:
    """Run a command with --json; its one JSON object (it must succeed)."""
    out = io.StringIO()
    call_command(*args, "--json", stdout=out)
    return json.loads(out.getvalue())


def cli_fails(*args) -> tuple[int, dict]:
    """Run a command with --json that must fail: (exit status, error)."""
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(*args, "--json", stdout=out)
    return caught.value.returncode, json.loads(out.getvalue())["error"]


def cli_text(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def aliases_in_db() -> dict[str, str]:
    return dict(
        ModelAlias.objects.filter(model__name="default").values_list(
            "name", "version__version"
        )
    )


# --- aliases -----------------------------------------------------------------


def test_champion_and_challenger_set_then_moved_show_in_the_api(client, two_versions):
    # given: champion and challenger set from the command line
    first = cli("alias", "set", "default", "champion", "v2.0", "--note", "wins")
    cli("alias", "set", "default", "challenger", "v1.0")
    assert first["model"] == "default"
    assert (first["alias"], first["version"]) == ("champion", "v2.0")
    assert first["previous_version"] is None
    assert first["change"]["action"] == "set"
    assert first["change"]["actor"] == "cli:alias"
    assert first["change"]["note"] == "wins"
    # when: they swap
    moved = cli("alias", "set", "default", "champion", "v1.0")
    cli("alias", "set", "default", "challenger", "v2.0")
    # then
    assert (moved["previous_version"], moved["version"]) == ("v2.0", "v1.0")
    body = client.get("/models").json()
    assert body["aliases"] == {
        "challenger": "v2.0",
        "champion": "v1.0",
        "production": "v1.0",
    }
    by_version = {v["version"]: v["aliases"] for v in body["models"]}
    assert by_version == {"v1.0": ["champion", "production"], "v2.0": ["challenger"]}
    assert body["active_version"] == "v1.0"  # production did not move
    moves = [
        (h["alias"], h["from_version"], h["to_version"], h["actor"])
        for h in body["history"]
    ]
    assert moves[:4] == [
        ("challenger", "v1.0", "v2.0", "cli:alias"),
        ("champion", "v2.0", "v1.0", "cli:alias"),
        ("challenger", "", "v1.0", "cli:alias"),
        ("champion", "", "v2.0", "cli:alias"),
    ]


def test_setting_an_alias_where_it_points_changes_nothing(two_versions):
    cli("alias", "set", "default", "champion", "v2.0")
    again = cli("alias", "set", "default", "champion", "v2.0")
    assert again["change"] is None and again["version"] == "v2.0"
    assert AliasChange.objects.filter(alias="champion").count() == 1


def test_setting_production_is_an_activation(client, two_versions):
    result = cli("alias", "set", "default", "production", "v2.0")
    assert result["change"]["action"] == "activate"
    assert client.get("/models").json()["active_version"] == "v2.0"


def test_alias_list_and_remove(two_versions):
    cli("alias", "set", "default", "champion", "v2.0")
    listed = cli("alias", "list", "default")
    assert listed == {
        "model": "default",
        "default_alias": "production",
        "aliases": {"champion": "v2.0", "production": "v1.0"},
    }
    # when
    removed = cli("alias", "remove", "default", "champion")
    # then
    assert removed["version"] is None
    assert removed["previous_version"] == "v2.0"
    assert removed["change"]["action"] == "remove"
    assert removed["change"]["to_version"] == ""
    assert cli("alias", "list", "default")["aliases"] == {"production": "v1.0"}
    status, error = cli_fails("alias", "remove", "default", "champion")
    assert status == 3
    assert error["code"] == "alias_not_found"
    assert error["details"]["available"] == ["production"]


def test_json_may_come_before_the_subcommand(two_versions):
    out = io.StringIO()
    call_command("alias", "--json", "list", "default", stdout=out)
    assert json.loads(out.getvalue())["aliases"] == {"production": "v1.0"}


def test_production_cannot_be_removed(two_versions):
    status, error = cli_fails("alias", "remove", "default", "production")
    assert status == 4
    assert error["code"] == "alias_protected"
    assert aliases_in_db() == {"production": "v1.0"}


@pytest.mark.parametrize(
    ("args", "status", "code"),
    [
        (("alias", "set", "default", "champion", "v9.9"), 3, "model_version_not_found"),
        (("alias", "set", "nope", "champion", "v1.0"), 3, "model_not_found"),
        (("alias", "list", "nope"), 3, "model_not_found"),
        (("alias", "set", "default", "Champion!", "v2.0"), 5, "alias_invalid"),
        (("alias", "set", "default", "9lives", "v2.0"), 5, "alias_invalid"),
        (("activate", "default", "v9.9"), 3, "model_version_not_found"),
        (("rollback", "default"), 4, "no_previous_version"),
        (("models", "--model", "nope"), 3, "model_not_found"),
    ],
    ids=[
        "unknown-version",
        "unknown-model",
        "list-unknown-model",
        "invalid-alias",
        "alias-starting-with-digit",
        "activate-unknown-version",
        "rollback-nothing-earlier",
        "models-unknown-model",
    ],
)
def test_failures_have_a_code_and_an_exit_status(two_versions, args, status, code):
    got_status, error = cli_fails(*args)
    assert (got_status, error["code"]) == (status, code)
    assert error["message"]
    assert aliases_in_db() == {"production": "v1.0"}


def test_a_version_that_fails_its_check_is_refused_with_5(two_versions):
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    status, error = cli_fails("alias", "set", "default", "champion", "v2.0")
    assert status == 5
    assert error["code"] == "artifact_integrity_error"
    assert "champion" not in aliases_in_db()


def test_human_output_without_json(two_versions):
    text = cli_text("alias", "set", "default", "champion", "v2.0")
    assert text == "default@champion: - -> v2.0.\n"
    assert "champion    v2.0" in cli_text("alias", "list", "default")
    assert "production  v1.0  (default)" in cli_text("alias", "list", "default")
    with pytest.raises(CommandError, match="alias_protected") as caught:
        call_command("alias", "remove", "default", "production", stdout=io.StringIO())
    assert caught.value.returncode == 4


# --- models ------------------------------------------------------------------


def test_models_lists_versions_and_aliases(two_versions):
    cli("alias", "set", "default", "champion", "v2.0")
    result = cli("models")
    assert [m["name"] for m in result["models"]] == ["default"]
    model = result["models"][0]
    assert model["active_version"] == "v1.0"
    assert model["aliases"] == {"champion": "v2.0", "production": "v1.0"}
    v1, v2 = model["versions"]
    assert v1 == {
        "version": "v1.0",
        "status": "ready",
        "serving_runtime": two_versions["v1"].serving_runtime,
        "format": "joblib",
        "n_features": 10,
        "is_active": True,
        "aliases": ["production"],
    }
    assert (v2["version"], v2["is_active"], v2["aliases"]) == (
        "v2.0",
        False,
        ["champion"],
    )
    assert cli("models", "--model", "default") == result


def test_models_human_output_is_a_table(two_versions):
    lines = cli_text("models").splitlines()
    assert lines[0] == "default  (aliases: production -> v1.0)"
    header, v1, v2 = lines[1:4]
    assert header.split() == [
        "VERSION",
        "STATUS",
        "SERVES",
        "WITH",
        "FORMAT",
        "FEATURES",
        "ACTIVE",
        "ALIASES",
    ]
    assert v1.split()[:2] == ["v1.0", "ready"]
    assert v1.split()[-2:] == ["yes", "production"]
    assert v2.split()[-1] == "-"
    # the columns line up
    assert header.index("FEATURES") == v1.index("10") == v2.index("10")


def test_models_with_an_empty_registry(db):
    assert cli("models") == {"models": []}
    assert cli_text("models") == "No registered models.\n"


# --- activate and rollback ---------------------------------------------------


def without_time_and_actor(body: dict) -> dict:
    change = {k: v for k, v in body["change"].items() if k not in ("changed_at",)}
    change.pop("actor")
    return {**body, "change": change}


def test_activate_and_rollback_answer_what_the_api_answers(client, two_versions):
    # when: the command line activates v2.0 and rolls back...
    cli_activate = cli("activate", "default", "v2.0", "--note", "try")
    cli_rollback = cli("rollback", "default", "--note", "back")
    # ...and the API does the same from the same state
    api_activate = client.post(
        "/models/v2.0/activate",
        json.dumps({"note": "try"}),
        content_type="application/json",
    ).json()
    api_rollback = client.post(
        "/models/rollback",
        json.dumps({"note": "back"}),
        content_type="application/json",
    ).json()
    # then
    assert without_time_and_actor(cli_activate) == without_time_and_actor(api_activate)
    assert without_time_and_actor(cli_rollback) == without_time_and_actor(api_rollback)
    assert cli_activate["status"] == "activated"
    assert (cli_activate["previous_version"], cli_activate["active_version"]) == (
        "v1.0",
        "v2.0",
    )
    assert cli_rollback["status"] == "rolled_back"
    assert cli_rollback["active_version"] == "v1.0"
    history = client.get("/models").json()["history"]
    assert [(h["action"], h["actor"]) for h in history] == [
        ("rollback", "anonymous"),
        ("activate", "anonymous"),
        ("rollback", "cli:rollback"),
        ("activate", "cli:activate"),
        ("activate", "test"),
    ]


def test_activating_the_active_version_is_done_already(two_versions):
    result = cli("activate", "default", "v1.0")
    assert result["status"] == "unchanged" and result["change"] is None
    assert cli_text("activate", "default", "v1.0") == (
        "default:v1.0 was already active.\n"
    )
    assert AliasChange.objects.count() == 1


def test_activate_human_output(client, two_versions):
    assert cli_text("activate", "default", "v2.0") == (
        "default: v1.0 -> v2.0 is now active.\n"
    )
    assert client.get("/models").json()["active_version"] == "v2.0"
    assert cli_text("rollback", "default") == "default rolled back: v2.0 -> v1.0.\n"


# --- experiments -------------------------------------------------------------


@pytest.fixture
def experiment(two_versions):
    """A draft experiment of default: v1.0 (control) and v2.0, 50/50."""
    return experiment_services.ab_test_configure(
        model=two_versions["v1"].model,
        versions=[two_versions["v1"], two_versions["v2"]],
        split_ratio=0.5,
    )


def ab_status(client) -> tuple[bool, str]:
    body = client.get("/ab-test/status").json()
    return body["enabled"], body["status"]


def test_experiment_start_pause_stop_change_the_ab_test_status(client, experiment):
    assert ab_status(client) == (False, "draft")
    # start by model
    started = cli("experiment", "start", "--model", "default", "--reason", "go")
    assert started["changed"] is True
    assert started["previous_status"] == "draft"
    assert started["experiment"]["name"] == experiment.name
    assert started["experiment"]["model"] == "default"
    assert started["experiment"]["status"] == "running"
    assert started["experiment"]["arms"] == [
        {"version": "v1.0", "weight": 0.5, "paused": False},
        {"version": "v2.0", "weight": 0.5, "paused": False},
    ]
    assert ab_status(client) == (True, "running")
    # pause by name
    paused = cli("experiment", "pause", "--name", experiment.name)
    assert paused["experiment"]["status"] == "paused"
    assert ab_status(client) == (False, "paused")
    # pausing again: already so
    again = cli("experiment", "pause", "--model", "default")
    assert again["changed"] is False
    # stop
    cli("experiment", "stop", "--model", "default")
    assert ab_status(client) == (False, "completed")
    # a completed experiment does not start again
    status, error = cli_fails("experiment", "start", "--name", experiment.name)
    assert (status, error["code"]) == (4, "conflict")
    reasons = [
        h["reason"]
        for h in client.get("/ab-test/status").json()["history"]
        if h["reason"].startswith("cli:")
    ]
    assert reasons == [
        "cli:experiment stop",
        "cli:experiment pause",
        "cli:experiment start: go",
    ]


def test_experiment_list(experiment):
    cli("experiment", "start", "--name", experiment.name)
    listed = cli("experiment", "list")["experiments"]
    assert [(e["name"], e["model"], e["status"]) for e in listed] == [
        (experiment.name, "default", "running")
    ]
    assert [a["version"] for a in listed[0]["arms"]] == ["v1.0", "v2.0"]
    text = cli_text("experiment", "list")
    assert text == f"{experiment.name}  default  running  v1.0 0.5, v2.0 0.5\n"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--name", "nope"), "experiment_not_found"),
        (("--model", "nope"), "model_not_found"),
        (("--model", "default"), "experiment_not_found"),
    ],
    ids=["unknown-name", "unknown-model", "model-without-experiment"],
)
def test_experiment_not_found_is_3(two_versions, args, code):
    status, error = cli_fails("experiment", "start", *args)
    assert (status, error["code"]) == (3, code)


def test_experiment_needs_a_name_or_a_model(two_versions):
    with pytest.raises(CommandError, match="one of the arguments --name --model"):
        call_command("experiment", "start")


# --- the base every scriptable command shares --------------------------------


class Broken(ScriptableCommand):
    def run(self, **options):
        raise RuntimeError("disk on fire")


def test_any_other_failure_prints_an_error_object_and_exits_1(db):
    out = io.StringIO()
    # call_command lets it through; a real process exits 1 with the
    # traceback on stderr
    with pytest.raises(RuntimeError):
        call_command(Broken(), "--json", stdout=out)
    error = json.loads(out.getvalue())["error"]
    assert error == {
        "code": "internal_error",
        "message": "RuntimeError: disk on fire",
        "details": {},
    }


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.BadRequest, 5),
        (errors.NotFound, 3),
        (errors.Conflict, 4),
        (errors.PayloadTooLarge, 5),
        (errors.ValidationFailed, 5),
        (errors.Overloaded, 1),
        (errors.BodyTimeout, 1),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_exit_status_follows_the_http_status(error, status):
    assert exit_status_of(error("x")) == status


# --- a real process ----------------------------------------------------------


def manage(env: dict, *args) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def test_exit_statuses_of_a_real_process(two_versions, server_env):
    # (Each process takes seconds to start: 5 is checked in-process above.)
    # 0, with one JSON object on stdout
    status, out, _ = manage(
        server_env, "alias", "set", "default", "champion", "v2.0", "--json"
    )
    assert status == 0
    assert json.loads(out)["change"]["actor"] == "cli:alias"
    assert aliases_in_db() == {"production": "v1.0", "champion": "v2.0"}
    # 3: not found
    status, out, err = manage(
        server_env, "alias", "set", "default", "champion", "v7", "--json"
    )
    assert status == 3
    assert json.loads(out)["error"]["code"] == "model_version_not_found"
    assert "No version 'v7'" in err
    # 4: conflict
    status, out, _ = manage(server_env, "alias", "remove", "default", "production")
    assert status == 4
    assert out == ""
    # 2: bad usage, argparse's message
    status, _, err = manage(server_env, "alias", "set", "default")
    assert status == 2
    assert "the following arguments are required" in err
    assert aliases_in_db() == {"production": "v1.0", "champion": "v2.0"}
