"""Aliases in the registry admin, driven like a staff user would: set,
move and remove them through the service, see them and their history on
the model's page, and refusals as messages rather than errors."""

import io

import pytest
from django.core.management import call_command

from registry import services
from registry.models import AliasChange, ModelAlias
from tests.conftest import dump, flip_one_byte

ADD_URL = "/admin/registry/modelalias/add/"


def aliases_in_db() -> dict[str, str]:
    return dict(
        ModelAlias.objects.filter(model__name="default").values_list(
            "name", "version__version"
        )
    )


def add_alias(admin_client, model, name, version):
    return admin_client.post(
        ADD_URL,
        {"model": model.pk, "name": name, "version": version.pk},
        follow=True,
    )


def test_add_then_move_an_alias_through_the_service(admin_client, two_versions):
    v1, v2 = two_versions["v1"], two_versions["v2"]
    # when: added
    added = add_alias(admin_client, v1.model, "champion", v2)
    # then
    assert added.status_code == 200
    assert aliases_in_db() == {"production": "v1.0", "champion": "v2.0"}
    change = AliasChange.objects.first()
    assert (change.alias, change.action, change.to_label) == ("champion", "set", "v2.0")
    assert change.actor == "admin"
    # when: moved on its change page (only the version is editable there)
    alias = ModelAlias.objects.get(name="champion")
    page = admin_client.get(f"/admin/registry/modelalias/{alias.pk}/change/")
    assert page.status_code == 200
    moved = admin_client.post(
        f"/admin/registry/modelalias/{alias.pk}/change/",
        {"version": v1.pk, "name": "renamed"},
        follow=True,
    )
    # then
    assert moved.status_code == 200
    assert aliases_in_db() == {"production": "v1.0", "champion": "v1.0"}
    latest = AliasChange.objects.first()
    assert (latest.from_label, latest.to_label) == ("v2.0", "v1.0")


def test_the_model_page_shows_aliases_and_their_moves(admin_client, two_versions):
    # given: champion and challenger set from the command line, then moved
    for alias, version in [
        ("champion", "v2.0"),
        ("challenger", "v1.0"),
        ("champion", "v1.0"),
        ("challenger", "v2.0"),
    ]:
        call_command("alias", "set", "default", alias, version, stdout=io.StringIO())
    model = two_versions["v1"].model
    # when
    content = admin_client.get(
        f"/admin/registry/registeredmodel/{model.pk}/change/"
    ).content.decode()
    # then: the aliases inline and the history both show them
    assert "Aliases" in content
    assert content.count("champion") >= 3  # inline + two history rows
    assert content.count("challenger") >= 3
    assert content.count("cli:alias") == 4
    listing = admin_client.get("/admin/registry/registeredmodel/").content.decode()
    assert "challenger -&gt; v2.0, champion -&gt; v1.0, production -&gt; v1.0" in (
        listing
    )


def test_removal_shows_as_removed_in_the_history(admin_client, two_versions):
    v1, v2 = two_versions["v1"], two_versions["v2"]
    add_alias(admin_client, v1.model, "champion", v2)
    alias = ModelAlias.objects.get(name="champion")
    # when: deleted on its delete page
    done = admin_client.post(
        f"/admin/registry/modelalias/{alias.pk}/delete/", {"post": "yes"}, follow=True
    )
    # then
    assert done.status_code == 200
    assert aliases_in_db() == {"production": "v1.0"}
    change = AliasChange.objects.first()
    assert (change.action, change.from_label, change.to_label) == (
        "remove",
        "v2.0",
        "",
    )
    model_page = admin_client.get(
        f"/admin/registry/registeredmodel/{v1.model.pk}/change/"
    ).content.decode()
    assert "- (removed)" in model_page
    history = admin_client.get("/admin/registry/aliaschange/").content.decode()
    assert "- (removed)" in history


def test_bulk_delete_goes_through_the_service(admin_client, two_versions):
    v1, v2 = two_versions["v1"], two_versions["v2"]
    add_alias(admin_client, v1.model, "champion", v2)
    add_alias(admin_client, v1.model, "challenger", v1)
    selected = ModelAlias.objects.exclude(name="production")
    admin_client.post(
        "/admin/registry/modelalias/",
        {
            "action": "delete_selected",
            "_selected_action": [a.pk for a in selected],
            "post": "yes",
        },
    )
    assert aliases_in_db() == {"production": "v1.0"}
    assert AliasChange.objects.filter(action="remove").count() == 2


def test_the_default_alias_cannot_be_deleted(admin_client, two_versions):
    production = ModelAlias.objects.get(name="production")
    page = admin_client.get(f"/admin/registry/modelalias/{production.pk}/delete/")
    assert page.status_code == 403
    # the bulk action refuses as a whole while it is selected
    admin_client.post(
        "/admin/registry/modelalias/",
        {
            "action": "delete_selected",
            "_selected_action": [production.pk],
            "post": "yes",
        },
    )
    assert aliases_in_db() == {"production": "v1.0"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Champion", "lower-case letters"),
        ("production2!", "lower-case letters"),
    ],
    ids=["upper-case", "punctuation"],
)
def test_an_invalid_name_is_a_form_error(admin_client, two_versions, name, message):
    v1, v2 = two_versions["v1"], two_versions["v2"]
    response = add_alias(admin_client, v1.model, name, v2)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert aliases_in_db() == {"production": "v1.0"}


def test_a_version_of_another_model_is_a_form_error(
    admin_client, two_versions, estimators
):
    iris = services.model_version_register(
        model_name="iris",
        version="v1",
        source=dump(two_versions["root"], "iris_v1.pkl", estimators["lr3"]),
    )
    response = add_alias(admin_client, two_versions["v1"].model, "champion", iris)
    assert "iris:v1 is not a version of default." in response.content.decode()
    assert not ModelAlias.objects.filter(name="champion").exists()


def test_the_change_form_offers_only_the_models_versions(
    admin_client, two_versions, estimators
):
    services.model_version_register(
        model_name="iris",
        version="v1",
        source=dump(two_versions["root"], "iris_v1.pkl", estimators["lr3"]),
    )
    production = ModelAlias.objects.get(name="production")
    content = admin_client.get(
        f"/admin/registry/modelalias/{production.pk}/change/"
    ).content.decode()
    assert "default:v2.0" in content
    assert "iris:v1" not in content


def test_a_refused_move_is_an_error_message_not_a_500(admin_client, two_versions):
    # given: v2.0's artifact changed since registration
    flip_one_byte(two_versions["root"] / "model_v2.0.pkl")
    # when
    response = add_alias(
        admin_client, two_versions["v1"].model, "champion", two_versions["v2"]
    )
    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert "does not match its registered sha256" in content
    assert "was added successfully" not in content
    assert aliases_in_db() == {"production": "v1.0"}
    from django.contrib.admin.models import LogEntry

    assert not LogEntry.objects.exists()
